"""What commands ask of the bot, independent of Discord: quotas, submissions, tasks.

Cogs call this instead of the store or the provider so that the rules (defaults, who
may see what, when quota is reserved and refunded) live in one place that tests can
drive without Discord.

A submission is four steps, so the caller decides what to do (defer its answer, say)
between the quick ones and the slow ones; each writing step is one store call:

    checked = await service.check(request)          # quick, nothing stored or downloaded
    if checked.needs_image:
        checked = await service.read_image(checked)  # downloads: may take seconds
    reserved = await service.reserve(checked)        # quota and task, one transaction
    result = await service.send(reserved)            # the provider; refunds if it fails

A caller that cannot go on after `reserve` gives the reservation back with `abandon`.
A remix starts with `check_remix` instead of `check`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import httpx

# AttachmentRef is part of this module's API (SubmitRequest carries one): re-exported.
from bot.attachments import IMAGE_DOWNLOAD_SECONDS, precheck, read_picture
from bot.attachments import AttachmentRef as AttachmentRef
from bot.dispatch import Dispatcher, Job
from bot.domain import (
    Aspect,
    GenerationOptions,
    Mode,
    NewTask,
    Quality,
    QuotaStatus,
    Settle,
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
    MissingPermissionError,
    ProviderAuthError,
    ProviderRefusedError,
    TaskNotFoundError,
)
from bot.governance import NotAllowedHereError, check_server_limits, contains_blocked
from bot.modlog import LogEntry, LogKind, ModLog
from bot.polling import PollPlanner, PollPlanners
from bot.providers.base import (
    FailureCode,
    ImageInput,
    VideoProvider,
    clean_prompt,
)
from bot.providers.pool import ProviderPool
from bot.settings import Settings
from bot.store import Page, Store
from bot.wording import describe_options

log = logging.getLogger(__name__)


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
    upload_limit: int | None = None
    # The member's roles (role allowances) and whether they may manage the server
    # (their requests are never held for approval).
    role_ids: frozenset[int] = frozenset()
    moderator: bool = False


@dataclass(frozen=True, slots=True)
class Checked:
    """A request that passed the quick checks, with the options the provider will get."""

    request: SubmitRequest
    options: GenerationOptions
    notes: tuple[str, ...]
    image: ImageInput | None = None  # read by `read_image` (image mode)
    remix_of: str | None = None  # the source video's provider task id (a remix)
    remix_source_id: str | None = None  # the source video's task id (a remix)
    remix_at: str | None = None  # the provider that made the source (a remix goes there)
    hold: bool = False  # approval mode: reserve, then wait for a moderator
    logged: bool = False  # the server has a moderation log: write its entries

    @property
    def needs_image(self) -> bool:
        """The picture must still be downloaded and checked (`read_image`)."""
        return self.request.mode is Mode.IMAGE and self.image is None


@dataclass(frozen=True, slots=True)
class Reserved:
    """A checked request with its quota held and its task queued, ready to send."""

    checked: Checked
    task: Task
    quota: QuotaStatus  # right after the reservation, for the submission message


@dataclass(frozen=True, slots=True)
class SubmitResult:
    task: Task
    notes: tuple[str, ...]
    quota: QuotaStatus
    expected_ready_at: datetime
    provider_name: str = ""  # the provider that took it (its display name)


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


class SoraService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: VideoProvider | ProviderPool,
        http_client: httpx.AsyncClient,
        polling: PollPlanner | PollPlanners,
        clock: Callable[[], datetime] = utc_now,
        *,
        modlog: ModLog | None = None,
        image_download_seconds: float = IMAGE_DOWNLOAD_SECONDS,
    ) -> None:
        self.modlog = modlog or ModLog(store)
        self._settings = settings
        self.image_download_seconds = image_download_seconds
        self._store = store
        # One provider (tests, the default) is a pool of one, its health kept too.
        self.providers = (
            provider
            if isinstance(provider, ProviderPool)
            else ProviderPool([provider], store=store, cooldown=settings.provider_cooldown_seconds)
        )
        self.provider = self.providers.primary
        self._http = http_client
        self._polling = polling if isinstance(polling, PollPlanners) else PollPlanners(polling)
        self._clock = clock
        self._dispatch = Dispatcher(self.providers, self._polling, settings.webhook_public_url)

    # Submissions

    async def check(self, request: SubmitRequest) -> Checked:
        """The quick checks, before anything is stored or downloaded: the channel is
        allowed, the prompt and options suit the provider, and an attached picture's
        declared type and size are acceptable. Raises a `BotError` saying what is wrong,
        so the caller can answer at once and privately."""
        guild = await self._store.guild_settings(request.guild_id)
        if guild.allowed_channel_ids and request.channel_id not in guild.allowed_channel_ids:
            raise ChannelNotAllowedError(guild.allowed_channel_ids)
        rules = guild.rules
        logged = rules.log_channel_id is not None
        if contains_blocked(request.prompt, rules.blocked_phrases):
            # The phrase is not named: the answer must not teach how to get around it.
            await self._refused(request, None, "the prompt contains a blocked phrase", logged)
            raise InvalidInputError(
                "Your prompt contains a word or phrase this server doesn't allow. "
                "Please rephrase it; nothing was charged."
            )
        base = guild.default_options or GenerationOptions()
        wanted = GenerationOptions(
            aspect=request.aspect or base.aspect,
            duration_seconds=request.duration or base.duration_seconds,
            quality=request.quality or base.quality,
        )
        # Members read "the video service", not a reseller's name. Planned for the
        # first provider that can make it; whichever takes it plans it again.
        planned = self._dispatch.plan(request.mode, request.prompt, wanted)
        try:
            check_server_limits(planned.options, rules)
        except NotAllowedHereError as exc:
            await self._refused(
                request, planned.options, f"beyond the server's limits: {exc}", logged
            )
            raise
        if request.mode is Mode.IMAGE:
            precheck(request.attachment, self.providers.capabilities.max_image_bytes)
        hold = rules.approval and not request.moderator
        return Checked(request, planned.options, planned.notes, hold=hold, logged=logged)

    async def check_remix(self, source_id: str, request: SubmitRequest) -> Checked:
        """`check` for a remix of a finished video (providers with remix only): the new
        video keeps the source's options, and `request.prompt` says what changes."""
        source = await self.find_task(request.guild_id, request.user_id, source_id, moderator=True)
        maker = self.providers.get(source.provider)
        if maker is None or not maker.capabilities.remix:
            raise InvalidInputError("The video service that made this video can't remix it.")
        if source.state is not TaskState.SUCCEEDED or source.provider_task_id is None:
            raise InvalidInputError("Only a finished video can be remixed.")
        checked = await self.check(
            replace(
                request,
                aspect=source.options.aspect,
                duration=source.options.duration_seconds,
                quality=source.options.quality,
            )
        )
        return replace(
            checked,
            remix_of=source.provider_task_id,
            remix_source_id=source.id,
            remix_at=source.provider,
        )

    async def read_image(self, checked: Checked) -> Checked:
        """Download the picture and check it by its content (image mode; otherwise, or
        once read, `checked` is returned as it is).

        This comes before `reserve`, so a bad picture costs nothing and leaves nothing to
        refund. It may take longer than Discord's 3 seconds: the cog defers privately
        first, so every refusal about the member's own picture stays private."""
        attachment = checked.request.attachment
        if not checked.needs_image or attachment is None:
            return checked
        image = await read_picture(
            self._http,
            attachment,
            max_bytes=self.providers.capabilities.max_image_bytes,
            deadline=self.image_download_seconds,
        )
        return replace(checked, image=image)

    async def reserve(self, checked: Checked) -> Reserved:
        """Reserve the quota and queue the task: one store call, which returns the quota
        status after the reservation too. Raises `QuotaExceededError` or
        `GenerationDisabledError` with nothing stored. Send it next (or `abandon` it)."""
        if checked.needs_image:
            raise ValueError("read_image() comes before reserve(): the picture is checked first")
        request = checked.request
        hold_until = (
            self._clock() + timedelta(hours=self._settings.approval_timeout_hours)
            if checked.hold
            else None
        )
        new = NewTask(
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            user_id=request.user_id,
            provider=checked.remix_at or self.provider.name,
            mode=request.mode,
            prompt=clean_prompt(request.prompt),
            options=checked.options,
            image_url=request.attachment.url if request.attachment else None,
            upload_limit=request.upload_limit,
            remix_of_task_id=checked.remix_source_id,
            role_ids=request.role_ids,
            hold_until=hold_until,
        )
        try:
            reservation = await self._store.reserve(new, self._settings.default_limits)
        except BotError as exc:
            await self._refused(request, checked.options, f"quota: {exc}", checked.logged)
            raise
        if checked.hold:
            await self._log(LogKind.HELD, reservation.task, checked.logged)
        return Reserved(checked, reservation.task, reservation.quota)

    async def send(self, reserved: Reserved, *, post_failure: bool = False) -> SubmitResult:
        """Hand the task to the provider and record its id (one store call). If the
        provider refuses or anything fails, the task is closed as failed and refunded
        (one store call, the tracker's own path) and the error raised again; the
        failure is posted in the channel only with `post_failure` (an approved request:
        its member is no longer looking at their own answer)."""
        checked, task = reserved.checked, reserved.task
        try:
            accepted = await self._dispatch.create(
                Job(task, checked.options, checked.image, checked.remix_of, checked.remix_at)
            )
        except BaseException as exc:
            await self.abandon(reserved, exc, post=post_failure)
            if isinstance(exc, ProviderAuthError | InsufficientCreditsError):
                log.error("provider problem for the owner: %s", exc)
            if isinstance(exc, BotError):
                reason = f"refused by the video service: {exc}"
                await self._log(LogKind.FAILED, task, checked.logged, reason=reason)
            raise
        now = self._clock()
        submission, name = accepted.submission, accepted.provider.name
        first = submission.status
        # The schedule counts from the task's creation, as the generation times it
        # learned from do (`bot.polling`).
        first_check = task.started_at + timedelta(seconds=self._dispatch.first_delay(name, task))
        task = await self._store.mark_submitted(
            task.id,
            submission.provider_task_id,
            TaskState.RUNNING if first.state.value == "running" else TaskState.SUBMITTED,
            first.progress,
            max(now, first_check),
            provider=name if name != task.provider else None,
        )
        expected_ready = task.started_at + timedelta(seconds=self.usual_seconds(task))
        await self._log(LogKind.SUBMITTED, task, checked.logged)
        notes = accepted.notes if accepted.passed else checked.notes
        return SubmitResult(
            task, notes, reserved.quota, expected_ready, accepted.provider.display_name
        )

    async def resubmit(self, task: Task, reason: str) -> Task | None:
        """A task its provider failed for a provider-side reason goes to the next
        provider, once, still reserved once (`Tracker(resubmit=...)`). Its picture is
        read again. None when no other provider took it: the caller fails it then."""
        if len(self.providers) < 2 or task.remix_of_task_id is not None:
            return None
        try:
            picture = None
            if task.image_url is not None:  # a picture that can't be read again: no retry
                checked = await self.read_image(
                    Checked(
                        SubmitRequest(
                            task.guild_id, task.channel_id, task.user_id, task.mode, task.prompt,
                            attachment=AttachmentRef(task.image_url, "the original picture", 0),
                        ),
                        task.options,
                        (),
                    )
                )  # fmt: skip
                picture = checked.image
            accepted = await self._dispatch.create(
                Job(task, task.options, picture), exclude={task.provider}
            )
        except BotError as exc:
            log.warning("task %s could not be retried elsewhere: %s", task.id, exc)
            return None
        name, status = accepted.provider.name, accepted.submission.status
        log.info("task %s failed at %s (%s); retried at %s", task.id, task.provider, reason, name)
        now = self._clock()
        return await self._store.move_task(
            task.id,
            name,
            accepted.submission.provider_task_id,
            TaskState.RUNNING if status.state.value == "running" else TaskState.SUBMITTED,
            now + timedelta(seconds=self._dispatch.first_delay(name, task)),
        )

    # The moderation log

    # Written only for a server with a log channel (as `check` found it), so that a
    # server without one costs no store call per request.

    async def _log(
        self, kind: LogKind, task: Task, logged: bool, *, reason: str | None = None
    ) -> None:
        if not logged:
            return
        detail = {
            "prompt": task.prompt,
            "options": describe_options(task.options),
            "provider": self.provider.display_name,
            "mode": task.mode.value,
        }
        if reason is not None:
            detail["reason"] = reason
        await self.modlog.write(
            LogEntry(task.guild_id, kind, task_id=task.id, actor_id=task.user_id, detail=detail)
        )

    async def _refused(
        self,
        request: SubmitRequest,
        options: GenerationOptions | None,
        reason: str,
        logged: bool,
    ) -> None:
        if not logged:
            return
        detail = {"prompt": request.prompt, "reason": reason, "mode": request.mode.value}
        if options is not None:
            detail["options"] = describe_options(options)
        await self.modlog.write(
            LogEntry(request.guild_id, LogKind.REFUSED, actor_id=request.user_id, detail=detail)
        )

    def usual_seconds(self, task: Task) -> float:
        """How long a video like `task` usually takes here: the median of the provider's
        recent ones of that kind, or the provider's documented figure until there are
        enough of them."""
        learned = self._polling.of(task.provider).typical_seconds(task.mode, task.options)
        provider = self.providers.of(task.provider)
        return learned if learned is not None else provider.capabilities.expected_seconds

    async def abandon(
        self, reserved: Reserved, error: BaseException, *, post: bool = False
    ) -> None:
        """Give a reservation up because of `error` (the provider refused, or the caller
        could not go on after `reserve`): the task fails, its quota is refunded, and
        nothing is posted for it, since the member's own answer shows the error."""
        if isinstance(error, BotError):
            await self._abandon(reserved.task, failure_code_for(error), str(error), post=post)
        else:
            await self._abandon(
                reserved.task, FailureCode.PROVIDER_ERROR, f"internal error: {error!r}", post=post
            )

    async def _abandon(self, task: Task, code: FailureCode, reason: str, *, post: bool) -> None:
        """The provider never took the job: close the task as failed and refund it, with
        nothing to deliver; one store call, the path the tracker finishes tasks through.
        If even that fails, the task stays queued and the tracker closes it (refunded)
        when it next starts."""
        try:
            await self._store.finish(
                task.id,
                TaskUpdate(TaskState.FAILED, failure_code=code.value, failure_reason=reason[:500]),
                settle=Settle.REFUND,
                delivered=not post,
            )
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

    # Who may act on a posted video, or look at whose history (the Discord layer passes
    # plain ids and permission booleans; the rules are here)

    async def task_to_repeat(self, guild_id: int, user_id: int, task_id: str) -> Task:
        """The task Again repeats: its result was posted publicly, so anyone in the
        server who can see it may run it again (charged to them)."""
        return await self.find_task(guild_id, user_id, task_id, moderator=True)

    async def task_for_delete(
        self, guild_id: int, user_id: int, task_id: str, *, moderator: bool
    ) -> Task:
        """The task whose posted video `user_id` may delete: their own, or anyone's for a
        `moderator` (one who may manage messages or the server)."""
        task = await self.find_task(guild_id, user_id, task_id, moderator=True)
        if task.user_id != user_id and not moderator:
            raise BotError(
                "Only the member who asked for this video, or a moderator, can delete it."
            )
        return task

    async def history(
        self,
        guild_id: int,
        viewer_id: int,
        owner_id: int,
        *,
        moderator: bool,
        page: int = 1,
        page_size: int = 10,
    ) -> Page:
        """One page of `owner_id`'s tasks, for `viewer_id`: their own, or anyone's for a
        `moderator` (Manage Server)."""

        if owner_id != viewer_id and not moderator:
            raise MissingPermissionError()
        return await self.user_tasks(guild_id, owner_id, page=page, page_size=page_size)
