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

What the posts say comes from `rendering`, their buttons from `components`, the video
file or link from `result_video`, and when to retry from `retries`: this module only
decides where and when each outcome goes, and records that it went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import discord

from bot.discord.channels import channel_for, find_result_post
from bot.discord.components import failure_view, result_view
from bot.discord.outcome_rendering import (
    card_sent_privately_line,
    direct_messaged_line,
    outcome_message,
    posted_line,
    undeliverable_line,
    video_link,
)
from bot.discord.rendering import progress_embed, result_message_url
from bot.discord.result_video import PreparedVideo, VideoAttacher
from bot.discord.retries import Retry, RetryPolicy, is_transient
from bot.domain import NotifyState, Task, TaskState, utc_now
from bot.fetch import Fetcher
from bot.media import MediaHost
from bot.metrics import Metrics
from bot.providers.base import VideoProvider
from bot.providers.pool import ProviderPool
from bot.store import Store

log = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 5.0  # how long `close` waits for posts already under way
TOKEN_LIFETIME = timedelta(minutes=14, seconds=30)  # Discord's 15, with a margin
PROGRESS_EDIT_SECONDS = 5.0
# What follows an outcome's delivery (`bot.discord.aftermath`): the message, or None.
AfterDelivery = Callable[[Task, discord.Message | None], Awaitable[None]]


def nonce_for(task: Task) -> str:
    return f"sora-{task.id}"  # <= 25 characters, the same on every attempt


@dataclass
class _Live:
    """A task's interaction while its token lives: the member's private line (progress
    shows there) and the id of the public "on its way" card, removed once the outcome
    is out so the channel holds one message per video."""

    interaction: discord.Interaction[discord.Client]
    card_id: int | None = None
    last_edit: float = 0.0


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
        provider: VideoProvider | ProviderPool,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        media_host: MediaHost | None = None,
        retry_policy: RetryPolicy | None = None,
        fetcher: Fetcher,
        after_delivery: AfterDelivery | None = None,
    ) -> None:
        """`fetcher` downloads videos from provider URLs; its policy also vets every link
        the notifier shows, so it must be built with the active provider's address."""
        self._media_host = media_host
        self._after_delivery = after_delivery  # the moderation log, the held notice
        self._attacher = VideoAttacher(provider, fetcher, media_host)
        self._client = client
        self._store = store
        self._providers = ProviderPool.of_one(provider)
        self._metrics = metrics or Metrics()
        self._clock = clock
        # Public so that settings (or a test) can shorten it.
        self.retry_policy = retry_policy or RetryPolicy()
        # Every per-task map below is emptied when that task's delivery ends, whichever
        # way it ends (`tracked_tasks` shows what is held).
        self._interactions: dict[str, _Live] = {}
        self._delivering: dict[str, _TaskLock] = {}
        self._idle = asyncio.Event()  # set while no delivery holds a task lock
        self._idle.set()
        self._retries: dict[str, Retry] = {}
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
        # An attempt already under way schedules nothing more now; let it finish (bounded).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), CLOSE_GRACE_SECONDS)
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

    def remember(
        self,
        task_id: str,
        interaction: discord.Interaction[discord.Client],
        *,
        card_id: int | None = None,
    ) -> None:
        """Keep `interaction` (whose original response is the member's private line) and
        the public card `card_id` until the task's outcome is out."""
        self._interactions[task_id] = _Live(interaction, card_id)
        if not self._closed:
            # A quick task can be delivered before it is announced; then no delivery is
            # left to remove the card or free this entry, so look once (after any
            # delivery in progress).
            self._spawn(self._forget_if_delivered(task_id), f"remember-{task_id}")

    async def _forget_if_delivered(self, task_id: str) -> None:
        async with self._locked(task_id):
            task = await self._store.get_task(task_id)
            if task is None:
                self._interactions.pop(task_id, None)
            elif task.notify_state not in (NotifyState.PENDING, NotifyState.POSTING):
                direct = task.notify_state is NotifyState.DIRECT_MESSAGED
                await self._close_response(task, None, direct=direct)

    def _live(self, task: Task) -> _Live | None:
        entry = self._interactions.get(task.id)
        if entry is None:
            return None
        if self._clock() - task.created_at > TOKEN_LIFETIME:
            self._interactions.pop(task.id, None)
            return None
        return entry

    async def progress(self, task: Task) -> None:
        """Show progress on the member's private line. The public card stays as it was
        announced (it claims no progress), so a card the bot can no longer touch once
        the token expires never says something stale about the video."""
        entry = self._live(task)
        if entry is None:
            return
        now = time.monotonic()
        if now - entry.last_edit < PROGRESS_EDIT_SECONDS:
            return
        entry.last_edit = now
        try:
            await entry.interaction.edit_original_response(embed=progress_embed(task))
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
        self._idle.clear()
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                self._delivering.pop(task_id, None)
            if not self._delivering:
                self._idle.set()

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
        retry = self._retries.setdefault(task.id, Retry(first_failure=now))
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
        channel = await channel_for(self._client, task.channel_id)
        if channel is None:
            return False
        if task.notify_state is NotifyState.POSTING:
            found = await find_result_post(self._client, channel, task)
            if found is not None:
                shown = await self._link_shown(found, composed=None)
                await self._store.record_delivery(
                    task.id, NotifyState.POSTED, found.id, result_url=shown
                )
                await self._close_response(task, posted_line(task, found.jump_url))
                await self._after(task, found)
                return True
        content, embed, file, view = await self._compose(task)
        await self._store.record_delivery(task.id, NotifyState.POSTING)
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
        shown = await self._link_shown(message, composed=video_link(embed))
        await self._store.record_delivery(task.id, NotifyState.POSTED, message.id, shown)
        self._observed(task)
        await self._close_response(task, posted_line(task, message.jump_url))
        await self._after(task, message)
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
        shown = await self._link_shown(message, composed=video_link(embed))
        await self._store.record_delivery(task.id, NotifyState.DIRECT_MESSAGED, message.id, shown)
        self._observed(task)
        await self._close_response(task, direct_messaged_line(task), direct=True)
        await self._after(task, message)

    async def _undeliverable(self, task: Task) -> None:
        """Neither a post nor a DM will work: `/sora status` keeps the result."""
        await self._store.record_delivery(task.id, NotifyState.UNDELIVERABLE)
        await self._close_response(task, undeliverable_line(task))
        await self._after(task, None)

    async def _after(self, task: Task, message: discord.Message | None) -> None:
        """The outcome is out (`message`; None: kept for `/sora status` only)."""
        self._finished(task.id)
        if self._after_delivery is not None:
            try:
                await self._after_delivery(task, message)
            except Exception:
                log.exception("after delivering task %s", task.id)

    def _observed(self, task: Task) -> None:
        if task.completed_at is not None:
            self._metrics.observe_lag.observe((self._clock() - task.completed_at).total_seconds())

    async def _close_response(self, task: Task, text: str | None, *, direct: bool = False) -> None:
        """The outcome is out (while the token lives): point the member's private line
        at it (`text`) and remove the public card, so the channel holds one message per
        video; after a DM the card instead says where the video went."""
        entry = self._live(task)
        self._interactions.pop(task.id, None)
        if entry is None:
            return
        interaction = entry.interaction
        if text is not None:
            with contextlib.suppress(discord.HTTPException):
                await interaction.edit_original_response(content=text, embed=None)
        if entry.card_id is None:
            return
        try:
            if direct:
                await interaction.followup.edit_message(
                    entry.card_id,
                    content=card_sent_privately_line(task),
                    embed=None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            else:
                await interaction.followup.delete_message(entry.card_id)
        except discord.HTTPException as exc:
            log.info("could not remove the card for task %s: %s", task.id, exc)

    async def _link_shown(self, message: discord.Message, *, composed: str | None) -> str | None:
        """The video link the delivered message shows, to be recorded with the delivery
        (so `/sora status` keeps it and Delete finds a file this bot serves). A file
        published for this attempt but not shown (Discord returned an earlier post for
        the nonce) is removed at once."""
        shown = next((link for e in message.embeds if (link := video_link(e))), None)
        if composed is not None and composed != shown and self._media_host is not None:
            await asyncio.to_thread(self._media_host.remove, composed)
        return shown

    async def _compose(
        self, task: Task, *, direct: bool = False
    ) -> tuple[str, discord.Embed, discord.File | None, discord.ui.View | None]:
        """(content, embed, file, buttons) for a task's outcome; no buttons in a DM."""
        if task.state is not TaskState.SUCCEEDED:
            content, embed = outcome_message(
                task, provider_name=self._providers.made_by(task), direct=direct
            )
            return content, embed, None, None if direct else failure_view(task)
        file, link, problem = await self._video(task)
        content, embed = outcome_message(
            task,
            provider_name=self._providers.made_by(task),
            link=link,
            problem=problem,
            direct=direct,
            source_url=await self._source_url(task),
        )
        remix = self._providers.of(task.provider).capabilities.remix
        view = None if direct else result_view(task, remix=remix)
        return content, embed, file, view

    async def _source_url(self, task: Task) -> str | None:
        """A remix's source video post, if it is still there."""
        if task.remix_of_task_id is None:
            return None
        source = await self._store.get_task(task.remix_of_task_id)
        return None if source is None else result_message_url(source)

    async def _video(self, task: Task) -> PreparedVideo:
        """The finished video as a file to attach, a link to show, or why neither."""
        return await self._attacher.prepare(task)
