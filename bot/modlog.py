"""The moderation log's entries: what happened in a server, for its moderators.

The service and the notifier write an entry to the store (an outbox) whenever something
worth a moderator's eye happens; `bot.discord.modlog` posts each entry once to the
server's log channel. A server without a log channel stores nothing.

Entries carry facts (ids, the prompt, the reason), never rendered text: what they look
like is `bot.discord.modlog_rendering`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store import Store


log = logging.getLogger(__name__)


class LogKind(StrEnum):
    SUBMITTED = "submitted"  # the provider took a request
    HELD = "held"  # a request waits for a moderator (the entry carries the buttons)
    DONE = "done"  # a video was posted
    FAILED = "failed"  # a task ended without a video
    REFUSED = "refused"  # refused before anything was charged (blocklist, limits, quota)
    ACTION = "action"  # a moderator changed something
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"  # a held request nobody decided in time


class LogState(StrEnum):
    PENDING = "pending"
    POSTING = "posting"  # sent once: send again only with the same nonce
    POSTED = "posted"
    DROPPED = "dropped"  # the channel was gone or closed to the bot


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event. `actor_id` did it (a moderator, or the member who asked); `member_id`
    is who it is about, when that is someone else. `detail` holds the facts the
    rendering shows: prompt, options, provider, reason, link, what changed."""

    guild_id: int
    kind: LogKind
    task_id: str | None = None
    actor_id: int | None = None
    member_id: int | None = None
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredLogEntry:
    id: int
    entry: LogEntry
    channel_id: int  # the log channel when the entry was written
    state: LogState
    created_at: datetime
    message_id: int | None = None


class ModLog:
    """Writes entries (one store call each) and wakes whoever posts them."""

    def __init__(self, store: Store, wake: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self.wake = wake

    async def write(self, entry: LogEntry) -> None:
        """Store `entry` if its server has a log channel. A failure here never stops what
        was being logged: the log is a record, not a gate."""
        try:
            if await self._store.add_log_entry(entry) is not None:
                self.wake()
        except Exception:
            log.exception("could not write a moderation log entry")
