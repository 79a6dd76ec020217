"""Server governance (`bot.governance`): the rules moderators set, decisions on held
requests, and the moderation log's outbox (`bot.modlog`).

    set_*, add_/remove_/clear_*  one setting each; `guild_settings` reads them back
    decide          a held task approved (stays queued) or rejected/expired (finished
                    and refunded, as `finish` would, in the same transaction)
    add_log_entry   an entry for the guild's log channel, or nothing without one
"""

from __future__ import annotations

import json

from bot.domain import Approval, Settle, Task, TaskState, TaskUpdate
from bot.modlog import LogEntry, LogState, StoredLogEntry
from bot.store.sqlite.connection import SqliteBase, every, first, ts
from bot.store.sqlite.guilds import ensure_guild
from bot.store.sqlite.quota import write_settlement
from bot.store.sqlite.rows import log_entry_from, task_from
from bot.store.sqlite.tasks import UNFINISHED, write_update

# What a held task that is not approved finishes as: (failure_code, failure_reason).
REFUSALS = {
    Approval.REJECTED: ("rejected", "a moderator declined the request"),
    Approval.EXPIRED: ("approval_expired", "no moderator decided in time"),
}


class SqliteGovernance(SqliteBase):
    # Settings, one transaction each

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None:
        now = self._clock()
        async with self._transaction() as db:
            await ensure_guild(db, guild_id, now)
            await db.execute(
                "UPDATE guild_settings SET log_channel_id = ?, log_problem = NULL,"
                " updated_at = ? WHERE guild_id = ?",
                (channel_id, ts(now), guild_id),
            )

    async def set_log_problem(self, guild_id: int, problem: str | None) -> bool:
        now = self._clock()
        async with self._transaction() as db:
            if problem is not None:
                await ensure_guild(db, guild_id, now)
            cursor = await db.execute(
                "UPDATE guild_settings SET log_problem = ?, updated_at = ?"
                " WHERE guild_id = ? AND log_problem IS NOT ?",
                (problem, ts(now), guild_id, problem),
            )
            return cursor.rowcount > 0

    async def set_approval(self, guild_id: int, on: bool) -> None:
        now = self._clock()
        async with self._transaction() as db:
            await ensure_guild(db, guild_id, now)
            await db.execute(
                "UPDATE guild_settings SET approval_mode = ?, updated_at = ? WHERE guild_id = ?",
                (int(on), ts(now), guild_id),
            )

    async def set_server_limits(
        self, guild_id: int, max_duration: int | None, high_quality: bool
    ) -> None:
        now = self._clock()
        async with self._transaction() as db:
            await ensure_guild(db, guild_id, now)
            await db.execute(
                "UPDATE guild_settings SET max_duration = ?, high_quality = ?, updated_at = ?"
                " WHERE guild_id = ?",
                (max_duration, int(high_quality), ts(now), guild_id),
            )

    async def set_role_allowance(
        self, guild_id: int, role_id: int, daily: int, actor_id: int
    ) -> int | None:
        async with self._transaction() as db:
            before = await first(
                db,
                "SELECT daily FROM role_allowances WHERE guild_id = ? AND role_id = ?",
                (guild_id, role_id),
            )
            await db.execute(
                "INSERT INTO role_allowances (guild_id, role_id, daily, set_by, set_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, role_id) DO UPDATE SET"
                " daily = excluded.daily, set_by = excluded.set_by, set_at = excluded.set_at",
                (guild_id, role_id, daily, actor_id, ts(self._clock())),
            )
        return None if before is None else int(before[0])

    async def clear_role_allowance(self, guild_id: int, role_id: int) -> int | None:
        async with self._transaction() as db:
            row = await first(
                db,
                "DELETE FROM role_allowances WHERE guild_id = ? AND role_id = ? RETURNING daily",
                (guild_id, role_id),
            )
        return None if row is None else int(row[0])

    async def add_blocked_phrase(self, guild_id: int, phrase: str, actor_id: int) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO blocked_phrases (guild_id, phrase, added_by, added_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, phrase, actor_id, ts(self._clock())),
            )
            return cursor.rowcount > 0

    async def remove_blocked_phrase(self, guild_id: int, phrase: str) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM blocked_phrases WHERE guild_id = ? AND phrase = ?",
                (guild_id, phrase),
            )
            return cursor.rowcount > 0

    # Held requests

    async def decide(
        self, task_id: str, guild_id: int, decision: Approval, actor_id: int | None
    ) -> Task | None:
        if decision is Approval.PENDING:
            raise ValueError("a decision approves, rejects or expires a held task")
        now = self._clock()
        async with self._transaction() as db:
            # The WHERE is the guard: of two moderators deciding at once, one finds the
            # task no longer pending and changes nothing.
            row = await first(
                db,
                "UPDATE tasks SET approval = ?, decided_by = ?, decided_at = ?,"
                " next_check_at = NULL, updated_at = ?"
                " WHERE id = ? AND guild_id = ? AND approval = 'pending'"
                f" AND state IN {UNFINISHED} RETURNING *",
                (decision.value, actor_id, ts(now), ts(now), task_id, guild_id),
            )
            if row is None:
                return None
            refusal = REFUSALS.get(decision)
            if refusal is not None:
                # Exactly what `finish` does for a failure: final state and refund, with
                # the notify state left pending so the notifier tells the requester.
                code, reason = refusal
                row = await write_update(
                    db,
                    task_id,
                    TaskUpdate(TaskState.FAILED, failure_code=code, failure_reason=reason),
                    now,
                )
                await write_settlement(db, task_id, Settle.REFUND, reason, now)
        return task_from(row)

    async def record_card(self, task_id: str, message_id: int | None) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tasks SET card_message_id = ?, updated_at = ? WHERE id = ?",
                (message_id, ts(self._clock()), task_id),
            )

    # The moderation log's outbox

    async def add_log_entry(self, entry: LogEntry) -> int | None:
        async with self._transaction() as db:
            # The channel is the guild's log channel now; no channel, no row.
            row = await first(
                db,
                "INSERT INTO mod_log (guild_id, channel_id, kind, task_id, actor_id,"
                " member_id, detail_json, state, created_at)"
                " SELECT guild_id, log_channel_id, ?, ?, ?, ?, ?, 'pending', ?"
                " FROM guild_settings WHERE guild_id = ? AND log_channel_id IS NOT NULL"
                " RETURNING id",
                (
                    entry.kind.value,
                    entry.task_id,
                    entry.actor_id,
                    entry.member_id,
                    json.dumps(dict(entry.detail)),
                    ts(self._clock()),
                    entry.guild_id,
                ),
            )
        return None if row is None else int(row[0])

    async def pending_log_entries(self, limit: int = 50) -> list[StoredLogEntry]:
        async with self._lock:
            rows = await every(
                self._conn,
                "SELECT * FROM mod_log WHERE state IN ('pending', 'posting') ORDER BY id LIMIT ?",
                (limit,),
            )
        return [log_entry_from(r) for r in rows]

    async def record_log_post(
        self, entry_id: int, state: LogState, message_id: int | None = None
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE mod_log SET state = ?, message_id = COALESCE(?, message_id) WHERE id = ?",
                (state.value, message_id, entry_id),
            )

    async def log_entry_for(self, task_id: str, kind: str) -> StoredLogEntry | None:
        row = await self._one(
            "SELECT * FROM mod_log WHERE task_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
            (task_id, kind),
        )
        return None if row is None else log_entry_from(row)
