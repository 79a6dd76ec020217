"""What commands ask of the bot, independent of Discord: quotas, submissions, tasks.

Cogs call this instead of the store or the provider so that the rules (defaults, who
may see what, when quota is reserved and refunded) live in one place that tests can
drive without Discord.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import cast

import httpx

from bot.domain import (
    Aspect,
    GenerationOptions,
    Mode,
    NewTask,
    NotifyState,
    Quality,
    QuotaLimits,
    QuotaStatus,
    QuotaUnit,
    Task,
    TaskState,
    TaskUpdate,
    normalise_task_id,
    utc_now,
)
from bot.errors import (
    BotError,
    ChannelNotAllowedError,
    InsufficientCreditsError,
    InvalidInputError,
    ProviderAuthError,
    ProviderRefusedError,
    TaskNotFoundError,
)
from bot.images import sniff_image_in_thread
from bot.providers.base import (
    FailureCode,
    GenerationRequest,
    ImageInput,
    RemixingProvider,
    VideoProvider,
    clean_prompt,
    plan_options,
)
from bot.schedule import Schedule
from bot.settings import Settings
from bot.store import Page, Store

log = logging.getLogger(__name__)
Hook = Callable[[], Awaitable[None]]
# The whole download of a member's picture, not one read: a CDN that drips bytes must not
# hold a submission (and its Discord token) for minutes.
IMAGE_DOWNLOAD_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """What Discord tells us about an uploaded file; the bytes are fetched at submit time."""

    url: str
    filename: str
    size: int
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    guild_id: int
    channel_id: int
    user_id: int
    mode: Mode
    prompt: str
    aspect: Aspect | None = None
    duration: int | None = None
    quality: Quality | None = None
    attachment: AttachmentRef | None = None
    interaction_id: int | None = None
    interaction_token: str | None = None
    upload_limit: int | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    task: Task
    notes: tuple[str, ...]
    quota: QuotaStatus
    expected_ready_at: datetime


def failure_code_for(error: BotError) -> FailureCode:
    match error:
        case ProviderRefusedError() if error.content_policy:
            return FailureCode.CONTENT_POLICY
        case InvalidInputError():
            return FailureCode.INVALID_IMAGE
        case InsufficientCreditsError():
            return FailureCode.INSUFFICIENT_CREDITS
        case _:
            return FailureCode.PROVIDER_ERROR


@dataclass(frozen=True, slots=True)
class QuotaChange:
    before: QuotaStatus
    after: QuotaStatus


class SoraService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: VideoProvider,
        http_client: httpx.AsyncClient,
        schedule: Schedule,
        clock: Callable[[], datetime] = utc_now,
        *,
        image_download_seconds: float = IMAGE_DOWNLOAD_SECONDS,
    ) -> None:
        self._settings = settings
        self.image_download_seconds = image_download_seconds
        self._store = store
        self.provider = provider
        self._http = http_client
        self._schedule = schedule
        self._clock = clock
        # Per-task callback URLs, when providers can reach the bot's listener.
        self._callback_base = (
            f"{settings.webhook_public_url}/callbacks"
            if settings.webhook_public_url and provider.capabilities.reports == "callback"
            else None
        )

    # Submissions

    async def remix(
        self, source_id: str, request: SubmitRequest, *, on_reserved: Hook | None = None
    ) -> SubmitResult:
        """A finished video changed as `request.prompt` says (providers with remix only)."""
        source = await self.find_task(request.guild_id, request.user_id, source_id, moderator=True)
        if not self.provider.capabilities.remix or not hasattr(self.provider, "remix"):
            raise InvalidInputError(f"{self.provider.display_name} can't remix videos.")
        if source.state is not TaskState.SUCCEEDED or source.provider_task_id is None:
            raise InvalidInputError("Only a finished video can be remixed.")
        return await self.submit(
            replace(
                request,
                aspect=source.options.aspect,
                duration=source.options.duration_seconds,
                quality=source.options.quality,
            ),
            on_reserved=on_reserved,
            remix_of=source.provider_task_id,
        )

    async def submit(
        self,
        request: SubmitRequest,
        *,
        on_reading_image: Hook | None = None,
        on_reserved: Hook | None = None,
        remix_of: str | None = None,
    ) -> SubmitResult:
        """Validate, read the picture, reserve quota, call the provider, record; refund
        on any failure after the reservation.

        The order decides what a member sees and pays:

        1. Quick checks (channel, prompt, options, the attachment's declared type and
           size) come first, before any hook, so the cog can answer them at once and
           privately.
        2. The picture is downloaded and checked by its content *before* quota is
           reserved, so a bad picture costs nothing and leaves nothing to refund.
           Reading may take longer than Discord's 3 seconds, so `on_reading_image` runs
           just before it (the cog defers privately there: every refusal about the
           member's own picture stays private).
        3. Quota is reserved; `on_reserved` runs before the provider call, which may be
           slow too (the cog defers there if it has not yet).
        """
        guild = await self._store.guild_settings(request.guild_id)
        if guild.allowed_channel_ids and request.channel_id not in guild.allowed_channel_ids:
            raise ChannelNotAllowedError(guild.allowed_channel_ids)
        base = guild.default_options or GenerationOptions()
        wanted = GenerationOptions(
            aspect=request.aspect or base.aspect,
            duration_seconds=request.duration or base.duration_seconds,
            quality=request.quality or base.quality,
        )
        caps = self.provider.capabilities
        planned = plan_options(
            self.provider.display_name, caps, request.mode, request.prompt, wanted
        )
        image: ImageInput | None = None
        if request.mode is Mode.IMAGE:
            self._precheck_attachment(request.attachment)
            if on_reading_image is not None:
                await on_reading_image()
            image = await self._load_image(request.attachment)
        task = await self._store.reserve(
            NewTask(
                guild_id=request.guild_id,
                channel_id=request.channel_id,
                user_id=request.user_id,
                provider=self.provider.name,
                mode=request.mode,
                prompt=clean_prompt(request.prompt),
                options=planned.options,
                image_url=request.attachment.url if request.attachment else None,
                interaction_id=request.interaction_id,
                interaction_token=request.interaction_token,
                upload_limit=request.upload_limit,
            ),
            self._settings.default_limits,
        )
        try:
            if on_reserved is not None:
                await on_reserved()
            callback = (
                f"{self._callback_base}/{task.callback_token}" if self._callback_base else None
            )
            if remix_of is not None:
                remixing = cast(RemixingProvider, self.provider)
                submission = await remixing.remix(remix_of, task.prompt)
            else:
                submission = await self.provider.submit(
                    GenerationRequest(
                        request.mode,
                        task.prompt,
                        planned.options,
                        image=image,
                        callback_url=callback,
                    )
                )
        except BotError as exc:
            await self._abandon(task, failure_code_for(exc), str(exc))
            if isinstance(exc, ProviderAuthError | InsufficientCreditsError):
                log.error("provider problem for the owner: %s", exc)
            raise
        except BaseException as exc:
            await self._abandon(task, FailureCode.PROVIDER_ERROR, f"internal error: {exc!r}")
            raise
        now = self._clock()
        next_check = now + timedelta(seconds=self._schedule.first_delay)
        expected_ready = now + timedelta(seconds=caps.expected_seconds)
        first = submission.status
        state = TaskState.RUNNING if first.state.value == "running" else TaskState.SUBMITTED
        task = await self._store.update_task(
            task.id,
            TaskUpdate(
                state,
                provider_task_id=submission.provider_task_id,
                progress=first.progress,
                next_check_at=next_check,
            ),
        )
        quota = await self.quota_status(request.guild_id, request.user_id)
        return SubmitResult(task, planned.notes, quota, expected_ready)

    def _precheck_attachment(self, attachment: AttachmentRef | None) -> None:
        if attachment is None:
            raise InvalidInputError("Please attach the picture to animate.")
        limit = self.provider.capabilities.max_image_bytes
        if attachment.size > limit:
            raise InvalidInputError(
                f"That image is {attachment.size / 1_048_576:.1f} MB; the limit is "
                f"{limit / 1_048_576:.0f} MB. Please attach a smaller picture."
            )
        declared = (attachment.content_type or "").split(";")[0].strip()
        if declared and not declared.startswith("image/"):
            raise InvalidInputError(
                f"`{attachment.filename}` isn't a picture. Please attach a PNG, JPEG or WebP image."
            )

    async def _load_image(self, attachment: AttachmentRef | None) -> ImageInput:
        """Read the attachment now: Discord's signed CDN link expires in about a day, and a
        URL provider fetches it within minutes, so the fresh link is what it gets.

        The download has a total deadline and a size cap enforced while streaming, and
        the bytes are checked (Pillow) in a worker thread, never on the event loop."""
        assert attachment is not None
        limit = self.provider.capabilities.max_image_bytes
        too_big = InvalidInputError(
            f"That image is larger than {limit / 1_048_576:.0f} MB, the limit. "
            "Please attach a smaller picture."
        )
        data = bytearray()
        try:
            async with asyncio.timeout(self.image_download_seconds):
                async with self._http.stream(
                    "GET", attachment.url, headers={"Accept-Encoding": "identity"}
                ) as response:
                    response.raise_for_status()
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise too_big
                    async for chunk in response.aiter_bytes():
                        data.extend(chunk)
                        if len(data) > limit:
                            raise too_big
        except TimeoutError:
            log.info("image download timed out after %ss", self.image_download_seconds)
            raise InvalidInputError(
                "I couldn't download that image from Discord in time. Please try again, "
                "or attach it again."
            ) from None
        except httpx.HTTPError:
            raise InvalidInputError(
                "I couldn't download that image from Discord. Please attach it again."
            ) from None
        info = await sniff_image_in_thread(bytes(data), max_bytes=limit)
        return ImageInput(
            data=bytes(data),
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            url=attachment.url,
        )

    async def _abandon(self, task: Task, code: FailureCode, reason: str) -> None:
        """The provider never took the job: refund once, close the task, nothing to deliver."""
        try:
            await self._store.refund(task.id, reason[:500])
            await self._store.update_task(
                task.id,
                TaskUpdate(TaskState.FAILED, failure_code=code.value, failure_reason=reason[:500]),
            )
            await self._store.set_notify_state(task.id, NotifyState.POSTED)
        except Exception:
            log.exception("could not record the failed submission of task %s", task.id)

    # Tasks

    async def find_task(
        self, guild_id: int, user_id: int, task_id: str, *, moderator: bool = False
    ) -> Task:
        """A task the caller may see: their own, or any in the server for a moderator.
        Someone else's task looks exactly like a missing one, so ids cannot be probed."""
        wanted = normalise_task_id(task_id)
        task = await self._store.get_task(wanted) if wanted else None
        if task is None or task.guild_id != guild_id or (task.user_id != user_id and not moderator):
            raise TaskNotFoundError(wanted or task_id)
        return task

    async def user_tasks(
        self, guild_id: int, user_id: int, *, page: int = 1, page_size: int = 10
    ) -> Page:
        return await self._store.user_tasks(guild_id, user_id, page=page, page_size=page_size)

    async def set_default_options(
        self,
        guild_id: int,
        *,
        aspect: Aspect | None,
        duration: int | None,
        quality: Quality | None,
    ) -> GenerationOptions:
        current = (
            await self._store.guild_settings(guild_id)
        ).default_options or GenerationOptions()
        wanted = replace(
            current,
            aspect=aspect or current.aspect,
            duration_seconds=duration or current.duration_seconds,
            quality=quality or current.quality,
        )
        planned = plan_options(
            self.provider.display_name, self.provider.capabilities, Mode.TEXT, "check", wanted
        )
        await self._store.set_default_options(guild_id, planned.options)
        return planned.options

    async def allowed_channels(self, guild_id: int) -> frozenset[int]:
        return (await self._store.guild_settings(guild_id)).allowed_channel_ids

    async def allow_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        return await self._store.add_allowed_channel(guild_id, channel_id, actor_id)

    async def disallow_channel(self, guild_id: int, channel_id: int) -> bool:
        return await self._store.remove_allowed_channel(guild_id, channel_id)

    async def quota_status(self, guild_id: int, user_id: int) -> QuotaStatus:
        return await self._store.quota_status(guild_id, user_id, self._settings.default_limits)

    async def set_quota(
        self,
        guild_id: int,
        user_id: int,
        *,
        daily: int | None = None,
        monthly: int | None = None,
        user_daily: int | None = None,
        unit: QuotaUnit | None = None,
    ) -> QuotaChange:
        changes = QuotaLimits(daily=daily, monthly=monthly, user_daily=user_daily, unit=unit)
        if changes == QuotaLimits():
            raise InvalidInputError(
                "Tell me what to change: give at least one of `daily`, `monthly`, "
                "`user_daily` or `unit`."
            )
        for name, value in (("daily", daily), ("monthly", monthly), ("user_daily", user_daily)):
            if value is not None and value < 0:
                raise InvalidInputError(f"`{name}` must be 0 or more (0 turns generation off).")
        before = await self.quota_status(guild_id, user_id)
        await self._store.update_quota_limits(guild_id, changes)
        after = await self.quota_status(guild_id, user_id)
        return QuotaChange(before=before, after=after)

    async def reset_user(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        return await self._store.reset_user_usage(guild_id, user_id, actor_id)
