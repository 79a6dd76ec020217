"""Posts the moderation log's entries to each server's log channel, each once.

Entries wait in the store (`bot.modlog`, an outbox), so an entry written just before a
restart is still posted after it, by whichever process runs this. An entry is marked
`posting` before it is sent and sent with a nonce of its own, so an entry sent again
after a crash between sending and recording is not posted twice. Nobody is pinged.

A log channel that is gone or closed to the bot does not stop anything else: the entry
is dropped, the problem recorded once (for `/sora settings show`) and logged once for
the operator, and the next entry that does get through clears it. A Discord outage
(5xx, a dropped connection) only delays the entries: they are tried again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bot.discord.approval_components import approval_view
from bot.discord.modlog_rendering import decided_line, log_line
from bot.discord.retries import is_transient
from bot.modlog import LogKind, LogState, StoredLogEntry
from bot.store import Store
from bot.waiting import wake_or_timeout

if TYPE_CHECKING:
    from bot.moderation import ModerationService

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # entries written by another process are seen within this
RETRY_SECONDS = 10.0  # after Discord failed for a passing reason
BATCH = 50

NO_ACCESS = (
    "I can't post in <#{channel}>: it is gone, or I lack View Channel or Send Messages there"
)


def nonce_for(entry: StoredLogEntry) -> str:
    return f"log-{entry.id}"  # at most 25 characters, the same on every attempt


class ModLogPoster:
    def __init__(self, client: discord.Client, store: Store, moderation: ModerationService) -> None:
        self._client = client
        self._store = store
        self._moderation = moderation
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="modlog")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self) -> None:
        pause = POLL_SECONDS
        while True:
            self._wake.clear()
            try:
                pause = POLL_SECONDS if await self.post_pending() else RETRY_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("posting the moderation log failed; trying again shortly")
                pause = RETRY_SECONDS
            await wake_or_timeout(self._wake, pause)

    async def post_pending(self) -> bool:
        """Post what waits; False if Discord failed for a passing reason (try later)."""
        for entry in await self._store.pending_log_entries(BATCH):
            try:
                await self._post(entry)
            except discord.HTTPException as exc:
                if not is_transient(exc):
                    raise
                log.info("moderation log entry %s waits: %s", entry.id, exc)
                return False
            except (OSError, TimeoutError) as exc:
                log.info("moderation log entry %s waits: %s", entry.id, exc)
                return False
        return True

    async def _post(self, stored: StoredLogEntry) -> None:
        entry = stored.entry
        channel = self._client.get_partial_messageable(stored.channel_id, guild_id=entry.guild_id)
        view = None
        if entry.kind is LogKind.HELD and entry.task_id is not None:
            view = approval_view(entry.task_id)
        await self._store.record_log_post(stored.id, LogState.POSTING)
        try:
            message = await channel.send(
                log_line(entry),
                view=view or discord.utils.MISSING,
                nonce=nonce_for(stored),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            await self._store.record_log_post(stored.id, LogState.DROPPED)
            problem = NO_ACCESS.format(channel=stored.channel_id)
            if await self._moderation.log_channel_problem(entry.guild_id, problem):
                log.warning(
                    "guild %s: moderation log channel %s refuses posts (%s); entries are "
                    "dropped until it works again (see /sora settings show)",
                    entry.guild_id,
                    stored.channel_id,
                    exc.status,
                )
            return
        await self._store.record_log_post(stored.id, LogState.POSTED, message.id)
        await self._moderation.log_channel_problem(entry.guild_id, None)
        if entry.kind is LogKind.EXPIRED and entry.task_id is not None:
            await self.close_request(entry.task_id, "Expired: nobody decided in time; refunded.")

    async def first_line(
        self,
        channel: discord.TextChannel | discord.Thread | discord.VoiceChannel,
        moderator: discord.abc.User,
    ) -> str | None:
        """A new log channel's first line, sent at once: the proof that the bot can post
        there. Returns the problem (also recorded for `/sora settings show`), or None."""
        try:
            await channel.send(
                f"📋 From now on this channel is the moderation log of the video bot "
                f"(set by {moderator.mention}). Nobody is pinged by its entries.",
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException:
            problem = NO_ACCESS.format(channel=channel.id)
            await self._moderation.log_channel_problem(channel.guild.id, problem)
            return problem
        return None

    async def close_request(self, task_id: str, decision: str) -> None:
        """Disable the buttons of a held request's log message and say what became of
        it (a click on the message edits it itself; this is for expiry)."""
        held = await self._store.log_entry_for(task_id, LogKind.HELD.value)
        if held is None or held.message_id is None:
            return
        message = self._client.get_partial_messageable(held.channel_id).get_partial_message(
            held.message_id
        )
        with contextlib.suppress(discord.HTTPException):
            await message.edit(
                content=decided_line(log_line(held.entry), decision),
                view=approval_view(task_id, disabled=True),
                allowed_mentions=discord.AllowedMentions.none(),
            )
