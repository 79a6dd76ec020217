"""Posts each task's outcome where it was asked for, exactly once.

Results go out as the bot's own channel messages (interaction followups die with the
15-minute token). A post is first marked `posting` in the store, sent with a nonce that
Discord de-duplicates (`enforce_nonce`), then recorded with its message id; after a
crash between sending and recording, the channel's recent messages are searched for
the task before anything is sent again. If the channel is gone or closed to the bot,
the requester gets a DM; if that fails too, the result waits in `/sora status`.

Discord failing for a while (5xx, including the 503 discord.py does not retry itself,
or a dropped connection) is ridden out: the post is tried again with growing pauses for
a quarter of an hour, each time through the same look-then-send-with-the-nonce path, so
a post that Discord created before failing is never made twice. Only then does the
result go by DM (and, failing that, to `/sora status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import discord
import httpx

from bot.domain import NotifyState, Task, TaskState, utc_now
from bot.errors import ProviderError
from bot.fetch import (
    Fetcher,
    MediaFetchError,
    MediaTooLargeError,
    MediaUnresolvableError,
    Spooled,
    UnsafeMediaURLError,
    looks_like_video,
)
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
NO_FILE = "The video service didn't hand over the file; try `/sora status` later."
UNSAFE_ADDRESS = (
    "The video service's link points somewhere I won't fetch from or share, so I can't "
    "show this video here."
)
NOT_A_VIDEO = "The video service sent a file that isn't a video, so I didn't attach it."


def too_large(size: int) -> str:
    return (
        f"The video ({size / 1_048_576:.1f} MB) is larger than this server's upload limit, "
        "the video service gives no public link, and this bot has no public web address "
        "(WEBHOOK_PUBLIC_URL) to share it from, so I can't show it here."
    )


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


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Discord call may simply work later: Discord's servers failing
    (any 5xx; discord.py gives up on 500/502/504 after a few tries and raises a 503 at
    once), a rate limit it would not wait out, or the connection breaking or timing out.
    A 403 or 404 is an answer, not a hiccup: that channel will not take the post."""
    if isinstance(exc, discord.HTTPException):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, discord.RateLimited | aiohttp.ClientError | OSError | TimeoutError)


_VIDEO_LINK = re.compile(r"\]\((?P<url>https?://[^\s)]+)\)")


def video_link(embed: discord.Embed) -> str | None:
    """The video link a result embed shows (its "Video" field), if any.

    The posted message is the record of what people were given: Delete reads it to find
    a self-hosted file even for results posted before the link was stored."""
    for item in embed.fields:
        if item.name == "Video" and item.value:
            found = _VIDEO_LINK.search(item.value)
            if found:
                return found["url"]
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a post that failed for a passing reason is tried again.

    The first retry comes within seconds (most 5xx are momentary), the pauses double up
    to `max_delay` so an outage is not hammered, and retries go on for `window` seconds
    from the first failure (a quarter of an hour: a short outage is ridden out, a long
    one does not leave the requester waiting with nothing) before the DM."""

    first_delay: float = 2.0
    max_delay: float = 60.0
    window: float = 15 * 60.0

    def delay(self, failures: int) -> float:
        """The pause after the `failures`-th failure in a row, with jitter so that the
        posts held up by one outage do not all come back in the same second."""
        base = min(self.max_delay, self.first_delay * 2.0 ** max(0, failures - 1))
        return base * random.uniform(0.75, 1.0)


@dataclass
class _Retry:
    """A task whose post keeps failing: when it began, how often, the pending retry."""

    first_failure: float  # time.monotonic()
    failures: int = 0
    timer: asyncio.Task[None] | None = None


@dataclass
class _TaskLock:
    """One delivery per task at a time; `users` lets the last one out free the entry."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


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
        retry_policy: RetryPolicy | None = None,
        fetcher: Fetcher,
    ) -> None:
        """`fetcher` downloads videos from provider URLs; its policy also vets every link
        the notifier shows, so it must be built with the active provider's address."""
        self._media_host = media_host
        self._fetcher = fetcher
        self._client = client
        self._store = store
        self._provider = provider
        self._http = http_client
        self._metrics = metrics or Metrics()
        self._clock = clock
        # Public so that settings (or a test) can shorten it.
        self.retry_policy = retry_policy or RetryPolicy()
        # Every per-task map below is emptied when that task's delivery ends, whichever
        # way it ends (`tracked_tasks` shows what is held).
        self._interactions: dict[str, tuple[discord.Interaction[discord.Client], float]] = {}
        self._delivering: dict[str, _TaskLock] = {}
        self._retries: dict[str, _Retry] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def tracked_tasks(self) -> set[str]:
        """Task ids the notifier holds anything for (interaction, lock, retry). Empty
        once every delivery has ended: anything left over is a leak."""
        return set(self._interactions) | set(self._delivering) | set(self._retries)

    async def close(self) -> None:
        """Cancel pending retries and checks (the bot is stopping). The store still says
        `posting`, so the next start looks in the channel and delivers what is missing.
        Call it after the tracker has stopped, and before the store closes."""
        self._closed = True
        running = [r.timer for r in self._retries.values() if r.timer is not None]
        running += self._background
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        self._retries.clear()
        self._background.clear()
        self._interactions.clear()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed", name)

        job = asyncio.create_task(run(), name=name)
        self._background.add(job)
        job.add_done_callback(self._background.discard)
        return job

    # While the interaction token lives: keep the original response current

    def remember(self, task_id: str, interaction: discord.Interaction[discord.Client]) -> None:
        self._interactions[task_id] = (interaction, 0.0)
        if not self._closed:
            # A quick task can be delivered before it is announced; then no delivery is
            # left to free this entry, so look once (after any delivery in progress).
            self._spawn(self._forget_if_delivered(task_id), f"remember-{task_id}")

    async def _forget_if_delivered(self, task_id: str) -> None:
        async with self._locked(task_id):
            task = await self._store.get_task(task_id)
            if task is None or task.notify_state not in (NotifyState.PENDING, NotifyState.POSTING):
                self._interactions.pop(task_id, None)

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
        """Post a finished task's outcome unless it is already out.

        The tracker calls this again every half minute for undelivered tasks; while a
        retry is scheduled, that call leaves it to the retry, so the backoff holds."""
        if self._waiting(task.id):
            return
        await self._attempt(task.id, scheduled=False)

    def _waiting(self, task_id: str) -> bool:
        retry = self._retries.get(task_id)
        return retry is not None and retry.timer is not None and not retry.timer.done()

    @contextlib.asynccontextmanager
    async def _locked(self, task_id: str) -> AsyncIterator[None]:
        entry = self._delivering.setdefault(task_id, _TaskLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                self._delivering.pop(task_id, None)

    async def _attempt(self, task_id: str, *, scheduled: bool) -> None:
        async with self._locked(task_id):
            # Re-checked under the lock: an attempt that just failed may have scheduled a
            # retry while this call waited for it.
            if not scheduled and self._waiting(task_id):
                return
            current = await self._store.get_task(task_id)
            if current is None or current.notify_state not in (
                NotifyState.PENDING,
                NotifyState.POSTING,
            ):
                self._finished(task_id)
                return
            await self._deliver(current)

    async def _deliver(self, task: Task) -> None:
        try:
            if await self._post(task):
                return
            await self._direct_message(task)
        except discord.HTTPException as exc:
            if is_transient(exc):
                await self._after_transient(task, exc)
                return
            # Discord answered, and not with a hiccup (a 400 or 413 about the message
            # itself): the same post will be refused every time, so it is not retried
            # forever. The result is kept for `/sora status`, and the log has the detail.
            log.error(
                "task %s: Discord refused the result post (%s %s); kept for /sora status",
                task.id,
                exc.status,
                exc.text[:200],
            )
            await self._undeliverable(task)
        except Exception as exc:
            if not is_transient(exc):
                raise
            await self._after_transient(task, exc)

    async def _after_transient(self, task: Task, exc: BaseException) -> None:
        """A hiccup: retry with backoff; after the window, the DM is the last resort."""
        if self._retry_later(task, exc):
            return
        log.warning(
            "task %s: Discord kept failing for %.0f s (%s); sending a DM instead",
            task.id,
            self.retry_policy.window,
            exc,
        )
        await self._direct_message(task, last_resort=True)

    def _retry_later(self, task: Task, exc: BaseException) -> bool:
        """Schedule the next try; False once the retry window has passed."""
        self._metrics.discord_failures.inc()
        if self._closed:
            return True  # shutting down: the store says `posting`, the next start delivers
        now = time.monotonic()
        retry = self._retries.setdefault(task.id, _Retry(first_failure=now))
        retry.failures += 1
        deadline = retry.first_failure + self.retry_policy.window
        if now >= deadline:
            return False
        delay = min(self.retry_policy.delay(retry.failures), deadline - now)
        log.warning(
            "posting task %s failed (%s: %s); trying again in %.1f s",
            task.id,
            type(exc).__name__,
            exc,
            delay,
        )
        retry.timer = asyncio.create_task(
            self._retry_after(task.id, delay), name=f"redeliver-{task.id}"
        )
        return True

    async def _retry_after(self, task_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._attempt(task_id, scheduled=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The tracker's periodic redelivery picks it up again.
            log.exception("delivering task %s failed; it will be retried", task_id)

    def _finished(self, task_id: str) -> None:
        """The delivery has ended (posted, DM'd or undeliverable): free what it held."""
        retry = self._retries.pop(task_id, None)
        timer = None if retry is None else retry.timer
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        self._interactions.pop(task_id, None)

    async def _post(self, task: Task) -> bool:
        """Post in the task's channel; False if the channel is gone or closed to the bot."""
        channel = await self._channel(task.channel_id)
        if channel is None:
            return False
        if task.notify_state is NotifyState.POSTING:
            found = await self._already_posted(channel, task)
            if found is not None:
                await self._keep_link(task, found, composed=None)
                await self._store.set_notify_state(task.id, NotifyState.POSTED, found.id)
                await self._close_response(task, f"{self._label(task)}: {found.jump_url}")
                self._finished(task.id)
                return True
        content, embed, file, view = await self._compose(task)
        await self._store.set_notify_state(task.id, NotifyState.POSTING)
        mentions = discord.AllowedMentions(
            users=[discord.Object(task.user_id)], roles=False, everyone=False
        )
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
            return False
        # The link first: once the task reads `posted`, everything about it is recorded.
        await self._keep_link(task, message, composed=video_link(embed))
        await self._store.set_notify_state(task.id, NotifyState.POSTED, message.id)
        self._observed(task)
        await self._close_response(task, f"{self._label(task)}: {message.jump_url}")
        self._finished(task.id)
        return True

    async def _direct_message(self, task: Task, *, last_resort: bool = False) -> None:
        """DM the requester. A refusal makes the task undeliverable (it stays in
        `/sora status`); so does any failure of the `last_resort` DM after the retries."""
        # No buttons in a DM: Again and Delete act in the server, and would only answer
        # "servers only" there.
        content, embed, file, _ = await self._compose(task, direct=True)
        try:
            user = self._client.get_user(task.user_id) or await self._client.fetch_user(
                task.user_id
            )
            message = await user.send(
                content=content,
                embed=embed,
                file=file or discord.utils.MISSING,
                nonce=nonce_for(task),
            )
        except Exception as exc:
            refused = isinstance(exc, discord.NotFound | discord.Forbidden)
            if not refused and not (
                last_resort and (isinstance(exc, discord.HTTPException) or is_transient(exc))
            ):
                raise
            log.warning("task %s: no channel and no DM (%s); kept for /sora status", task.id, exc)
            await self._undeliverable(task)
            return
        await self._keep_link(task, message, composed=video_link(embed))
        await self._store.set_notify_state(task.id, NotifyState.DIRECT_MESSAGED, message.id)
        self._observed(task)
        await self._close_response(
            task, f"{self._label(task)}: I couldn't post it here, so I sent it to you in a DM."
        )
        self._finished(task.id)

    async def _undeliverable(self, task: Task) -> None:
        """Neither a post nor a DM will work: `/sora status` keeps the result."""
        await self._store.set_notify_state(task.id, NotifyState.UNDELIVERABLE)
        await self._close_response(
            task,
            f"{self._label(task)}, but I couldn't post it here or send you a DM: "
            f"`/sora status {task.id}` has it.",
        )
        self._finished(task.id)

    def _observed(self, task: Task) -> None:
        if task.completed_at is not None:
            self._metrics.observe_lag.observe((self._clock() - task.completed_at).total_seconds())

    @staticmethod
    def _label(task: Task) -> str:
        return (
            "✅ Your video is ready"
            if task.state is TaskState.SUCCEEDED
            else "❌ It didn't work out"
        )

    async def _close_response(self, task: Task, text: str) -> None:
        """Point the "on its way" message at the outcome (while its token lives)."""
        interaction = self._live(task)
        self._interactions.pop(task.id, None)
        if interaction is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(content=text, embed=None)

    async def _keep_link(
        self, task: Task, message: discord.Message, *, composed: str | None
    ) -> None:
        """Store the video link the delivered message shows, so `/sora status` keeps it and
        Delete finds a file this bot serves. A file published for this attempt but not
        shown (Discord returned an earlier post for the nonce) is removed at once."""
        shown = next((link for e in message.embeds if (link := video_link(e))), None)
        if shown is not None and shown != task.result_url:
            await self._store.set_result_url(task.id, shown)
        if composed is not None and composed != shown and self._media_host is not None:
            await asyncio.to_thread(self._media_host.remove, composed)

    async def forget_video(self, task: Task, message: discord.Message | None) -> None:
        """After Delete: remove the file this bot served the video from (if it did) and
        the stored link, so neither the listener nor `/sora status` still offers a video
        its owner deleted. The link may be only in the message (older posts)."""
        links = {task.result_url}
        if message is not None:
            links.update(video_link(e) for e in message.embeds)
        if self._media_host is not None:
            for link in links:
                if link:
                    await asyncio.to_thread(self._media_host.remove, link)
        if task.result_url is not None:
            await self._store.set_result_url(task.id, None)

    async def _channel(self, channel_id: int) -> discord.abc.Messageable | None:
        channel = self._client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self._client.fetch_channel(channel_id)
            except (discord.NotFound, discord.Forbidden):
                return None
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def _already_posted(
        self, channel: discord.abc.Messageable, task: Task
    ) -> discord.Message | None:
        """After a failed or interrupted post, find this task's result in the channel.

        Only the bot's own channel message counts. The interaction's "on its way"
        response also comes from the bot and shows "Task XXXXXX" in its progress footer,
        but it is sent through the interaction's webhook, so it carries
        `interaction_metadata` and a `webhook_id`; the result's footer is exactly the
        task line. A transient failure here is raised (retry later); without the right
        to read history (403) the nonce alone prevents a duplicate."""
        me = self._client.user
        if me is None:
            return None
        expected = footer_for(task)
        try:
            async for message in channel.history(limit=HISTORY_SCAN):
                if (
                    message.author.id != me.id
                    or message.webhook_id is not None
                    or message.interaction_metadata is not None
                ):
                    continue
                if any(e.footer.text == expected for e in message.embeds):
                    return message
        except discord.HTTPException as exc:
            if is_transient(exc):
                raise
            log.info("cannot read the history of channel %s: %s", task.channel_id, exc)
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
        """(file to attach, link to show, explanation) for a finished video.

        Provider URLs are untrusted: each is vetted by the fetcher's policy before it is
        downloaded or shown (the tracker already refused bad ones, but DNS can change).
        A download has a deadline, stops at the upload limit and goes to a temporary
        file, not memory; only bytes that are a video container are attached or served.
        """
        limit = min(task.upload_limit or DEFAULT_UPLOAD_LIMIT, MAX_REQUEST_BYTES)
        policy = self._fetcher.policy
        status = ProviderStatus(ProviderState.SUCCEEDED, 100, video_url=task.result_url)
        try:
            media: Media = await self._provider.media(task.provider_task_id or "", status)
        except ProviderError as exc:
            log.warning("task %s: could not get the video: %s", task.id, exc)
            stored = await policy.safe(task.result_url)
            if stored:
                return None, stored, None
            return None, None, NO_FILE
        link = None
        if media.url:
            try:
                link = await policy.vet(media.url)
            except MediaUnresolvableError as exc:  # DNS trouble: no verdict, no link either
                log.warning("task %s: cannot check the video's address: %s", task.id, exc)
                return None, None, NO_FILE
            except MediaFetchError as exc:
                log.warning("task %s: refused the video's address: %s", task.id, exc)
                return None, None, UNSAFE_ADDRESS
        if media.data is not None:
            return await self._from_memory(task, media.data, limit, link)
        if media.path is not None:
            spooled = await asyncio.to_thread(Spooled.adopt, media.path)
        elif link is not None:
            try:
                spooled = await self._download(link, limit)
            except MediaTooLargeError:
                return None, link, None
            except UnsafeMediaURLError as exc:  # a redirect led somewhere refused
                log.warning("task %s: refused to fetch the video: %s", task.id, exc.detail)
                return None, None, UNSAFE_ADDRESS
            except MediaFetchError as exc:
                log.info("task %s: could not download the video to attach: %s", task.id, exc)
                return None, link, None
        else:
            return None, None, NO_FILE
        with spooled:  # removed on the way out unless moved to the media host
            if not spooled.is_video():
                log.warning(
                    "task %s: the provider's file is not a video (%r, %s)",
                    task.id,
                    spooled.head[:16],
                    spooled.content_type or "no content type",
                )
                return None, link, None if link else NOT_A_VIDEO
            if spooled.size <= limit:
                # discord.py opens the file now and closes it after sending; POSIX lets
                # the name go at once, so nothing is left on disk whatever the post does.
                name = f"sora-{task.id}.{spooled.extension}"
                return discord.File(str(spooled.path), filename=name), None, None
            if link:
                return None, link, None
            if self._media_host is not None:
                url = await self._media_host.publish(spooled.path, spooled.extension)
                return None, url, None
            return None, None, too_large(spooled.size)

    async def _from_memory(
        self, task: Task, data: bytes, limit: int, link: str | None
    ) -> tuple[discord.File | None, str | None, str | None]:
        """A video the provider handed over as bytes (the demo's small asset)."""
        if not looks_like_video(data):
            return None, link, None if link else NOT_A_VIDEO
        if len(data) <= limit:
            return discord.File(io.BytesIO(data), filename=f"sora-{task.id}.mp4"), None, None
        if link:
            return None, link, None
        if self._media_host is not None:
            return None, await self._media_host.publish(data), None
        return None, None, too_large(len(data))

    async def _download(self, url: str, limit: int) -> Spooled:
        """The video spooled to disk: at most `limit` bytes (larger: the caller links it
        instead), within the fetcher's deadline, every redirect vetted."""
        return await self._fetcher.download(url, limit=limit)
