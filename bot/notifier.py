"""Posts each task's outcome where it was asked for, exactly once.

Results go out as the bot's own channel messages (interaction followups die with the
15-minute token). A post is first marked `posting` in the store, sent with a nonce that
Discord de-duplicates (`enforce_nonce`), then recorded with its message id; after a
crash between sending and recording, the channel's recent messages are searched for
the task before anything is sent again. If the channel is gone or closed to the bot,
the requester gets a DM; if that fails too, the result waits in `/sora status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import discord
import httpx

from bot.domain import NotifyState, Task, TaskState, utc_now
from bot.errors import ProviderError
from bot.media import MediaHost
from bot.metrics import Metrics
from bot.providers.base import Media, ProviderState, ProviderStatus, VideoProvider
from bot.store import Store
from bot.wording import (
    describe_options,
    failure_sentence,
    next_step,
    short_prompt,
    state_label,
)

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_REQUEST_BYTES = 25 * 1024 * 1024
TOKEN_LIFETIME = timedelta(minutes=14, seconds=30)  # Discord's 15, with a margin
PROGRESS_EDIT_SECONDS = 5.0
HISTORY_SCAN = 50
SUCCESS = discord.Colour.green()
FAILURE = discord.Colour.red()
WORKING = discord.Colour.blurple()


AGAIN_PREFIX = "sora:again:"
DELETE_PREFIX = "sora:delete:"
REMIX_PREFIX = "sora:remix:"


def nonce_for(task: Task) -> str:
    return f"sora-{task.id}"  # <= 25 characters, the same on every attempt


def footer_for(task: Task) -> str:
    return f"Task {task.id}"


def result_buttons(task: Task, *, remix: bool = False) -> discord.ui.View:
    """Custom ids the video cog's persistent handlers answer, even after a restart."""
    view = discord.ui.View(timeout=None)
    view.add_item(
        discord.ui.Button(
            label="Again",
            emoji="🔁",
            style=discord.ButtonStyle.primary,
            custom_id=f"{AGAIN_PREFIX}{task.id}",
        )
    )
    if remix:
        view.add_item(
            discord.ui.Button(
                label="Remix",
                emoji="🎛️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"{REMIX_PREFIX}{task.id}",
            )
        )
    view.add_item(
        discord.ui.Button(
            label="Delete",
            emoji="🗑️",
            style=discord.ButtonStyle.secondary,
            custom_id=f"{DELETE_PREFIX}{task.id}",
        )
    )
    return view


def _duration(task: Task) -> str:
    if task.completed_at is None:
        return "?"
    seconds = int((task.completed_at - task.created_at).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


class Notifier:
    def __init__(
        self,
        *,
        client: discord.Client,
        store: Store,
        provider: VideoProvider,
        http_client: httpx.AsyncClient,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        media_host: MediaHost | None = None,
    ) -> None:
        self._media_host = media_host
        self._client = client
        self._store = store
        self._provider = provider
        self._http = http_client
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._interactions: dict[str, tuple[discord.Interaction[discord.Client], float]] = {}
        self._delivering: dict[str, asyncio.Lock] = {}

    # While the interaction token lives: keep the original response current

    def remember(self, task_id: str, interaction: discord.Interaction[discord.Client]) -> None:
        self._interactions[task_id] = (interaction, 0.0)

    def _live(self, task: Task) -> discord.Interaction[discord.Client] | None:
        entry = self._interactions.get(task.id)
        if entry is None:
            return None
        if self._clock() - task.created_at > TOKEN_LIFETIME:
            self._interactions.pop(task.id, None)
            return None
        return entry[0]

    async def progress(self, task: Task) -> None:
        interaction = self._live(task)
        if interaction is None:
            return
        last = self._interactions[task.id][1]
        now = time.monotonic()
        if now - last < PROGRESS_EDIT_SECONDS:
            return
        self._interactions[task.id] = (interaction, now)
        embed = discord.Embed(
            title=f"🎬 {state_label(task)}",
            description=f"> {short_prompt(task.prompt, 1000)}",
            colour=WORKING,
        )
        embed.add_field(name="Options", value=describe_options(task.options))
        embed.set_footer(text=f"{footer_for(task)} · I'll post the video here when it's ready.")
        try:
            await interaction.edit_original_response(embed=embed)
        except discord.HTTPException as exc:
            log.info("could not update the response for task %s: %s", task.id, exc)
            self._interactions.pop(task.id, None)

    # The outcome

    async def deliver(self, task: Task) -> None:
        lock = self._delivering.setdefault(task.id, asyncio.Lock())
        async with lock:
            current = await self._store.get_task(task.id)
            if current is None or current.notify_state not in (
                NotifyState.PENDING,
                NotifyState.POSTING,
            ):
                return
            await self._deliver(current)
        self._delivering.pop(task.id, None)

    async def _deliver(self, task: Task) -> None:
        channel = await self._channel(task.channel_id)
        if task.notify_state is NotifyState.POSTING and channel is not None:
            found = await self._already_posted(channel, task)
            if found is not None:
                await self._store.set_notify_state(task.id, NotifyState.POSTED, found)
                return
        content, embed, file, view = await self._compose(task)
        await self._store.set_notify_state(task.id, NotifyState.POSTING)
        mentions = discord.AllowedMentions(
            users=[discord.Object(task.user_id)], roles=False, everyone=False
        )
        if channel is not None:
            try:
                message = await channel.send(
                    content=content,
                    embed=embed,
                    file=file or discord.utils.MISSING,
                    view=view or discord.utils.MISSING,
                    nonce=nonce_for(task),
                    allowed_mentions=mentions,
                )
            except (discord.NotFound, discord.Forbidden) as exc:
                log.warning(
                    "cannot post task %s in channel %s (%s); trying a DM",
                    task.id,
                    task.channel_id,
                    exc,
                )
            else:
                await self._store.set_notify_state(task.id, NotifyState.POSTED, message.id)
                self._observed(task)
                await self._close_response(task, message)
                return
        await self._direct_message(task)

    async def _direct_message(self, task: Task) -> None:
        content, embed, file, view = await self._compose(task, direct=True)
        try:
            user = self._client.get_user(task.user_id) or await self._client.fetch_user(
                task.user_id
            )
            message = await user.send(
                content=content,
                embed=embed,
                file=file or discord.utils.MISSING,
                view=view or discord.utils.MISSING,
            )
        except (discord.NotFound, discord.Forbidden) as exc:
            log.warning("task %s: no channel and no DM (%s); kept for /sora status", task.id, exc)
            await self._store.set_notify_state(task.id, NotifyState.UNDELIVERABLE)
            return
        await self._store.set_notify_state(task.id, NotifyState.DIRECT_MESSAGED, message.id)
        self._observed(task)

    def _observed(self, task: Task) -> None:
        if task.completed_at is not None:
            self._metrics.observe_lag.observe((self._clock() - task.completed_at).total_seconds())

    async def _close_response(self, task: Task, message: discord.Message) -> None:
        interaction = self._live(task)
        self._interactions.pop(task.id, None)
        if interaction is None:
            return
        label = (
            "✅ Your video is ready"
            if task.state is TaskState.SUCCEEDED
            else "❌ It didn't work out"
        )
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(
                content=f"{label}: {message.jump_url}", embed=None
            )

    async def _channel(self, channel_id: int) -> discord.abc.Messageable | None:
        channel = self._client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self._client.fetch_channel(channel_id)
            except (discord.NotFound, discord.Forbidden):
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def _already_posted(self, channel: discord.abc.Messageable, task: Task) -> int | None:
        """After a crash mid-post, look for our own message about this task."""
        me = self._client.user
        try:
            async for message in channel.history(limit=HISTORY_SCAN):
                if me is not None and message.author.id != me.id:
                    continue
                if any(footer_for(task) in (e.footer.text or "") for e in message.embeds):
                    return message.id
        except discord.HTTPException:
            return None
        return None

    async def _compose(
        self, task: Task, *, direct: bool = False
    ) -> tuple[str, discord.Embed, discord.File | None, discord.ui.View | None]:
        where = f" (I couldn't post in <#{task.channel_id}>)" if direct else ""
        if task.state is not TaskState.SUCCEEDED:
            embed = discord.Embed(
                title="❌ Your video couldn't be made",
                description=(
                    f"{failure_sentence(task)}\n**Your quota was refunded.** {next_step(task)}"
                ),
                colour=FAILURE,
            )
            embed.add_field(name="Prompt", value=short_prompt(task.prompt, 1000), inline=False)
            embed.add_field(name="Options", value=describe_options(task.options))
            embed.set_footer(text=footer_for(task))
            return f"<@{task.user_id}> sorry{where}.", embed, None, None

        embed = discord.Embed(
            title="✅ Your video is ready",
            description=f"> {short_prompt(task.prompt, 1000)}",
            colour=SUCCESS,
        )
        embed.add_field(name="Options", value=describe_options(task.options))
        embed.add_field(
            name="Model", value=f"{self._provider.display_name} · {task.options.quality.value}"
        )
        embed.add_field(name="Took", value=_duration(task))
        embed.set_footer(text=footer_for(task))
        file, link, problem = await self._video(task)
        if link:
            embed.add_field(name="Video", value=f"[Open the video]({link})", inline=False)
        if problem:
            embed.add_field(name="Video", value=problem, inline=False)
        return (
            f"<@{task.user_id}> your video is ready{where}!",
            embed,
            file,
            result_buttons(task, remix=self._provider.capabilities.remix),
        )

    async def _video(self, task: Task) -> tuple[discord.File | None, str | None, str | None]:
        """(file to attach, link to show, explanation) for a finished video."""
        limit = min(task.upload_limit or DEFAULT_UPLOAD_LIMIT, MAX_REQUEST_BYTES)
        status = ProviderStatus(ProviderState.SUCCEEDED, 100, video_url=task.result_url)
        try:
            media: Media = await self._provider.media(task.provider_task_id or "", status)
        except ProviderError as exc:
            log.warning("task %s: could not get the video: %s", task.id, exc)
            if task.result_url:
                return None, task.result_url, None
            return (
                None,
                None,
                "The video service didn't hand over the file; try `/sora status` later.",
            )
        data = media.data
        if data is None and media.url:
            data = await self._download(media.url, limit)
        if data is not None and len(data) <= limit:
            return discord.File(io.BytesIO(data), filename=f"sora-{task.id}.mp4"), None, None
        if media.url:
            return None, media.url, None
        if data and self._media_host is not None:
            return None, await self._media_host.publish(data), None
        size = f"{len(data) / 1_048_576:.1f} MB" if data else "too large"
        explanation = (
            f"The video ({size}) is larger than this server's upload limit, the video "
            "service gives no public link, and this bot has no public web address "
            "(WEBHOOK_PUBLIC_URL) to share it from, so I can't show it here."
        )
        return None, None, explanation

    async def _download(self, url: str, limit: int) -> bytes | None:
        """The video bytes, or None when larger than `limit` or unreachable (then: link)."""
        try:
            async with self._http.stream("GET", url) as response:
                response.raise_for_status()
                declared = int(response.headers.get("content-length") or 0)
                if declared > limit:
                    return None
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > limit:
                        return None
                return bytes(data)
        except httpx.HTTPError as exc:
            log.info("could not download %s for attaching: %s", url.split("?")[0], exc)
            return None
