"""Server governance on PostgreSQL (`bot.governance`): the rules moderators set,
decisions on held requests, and the moderation log's outbox (`bot.modlog`)."""

from __future__ import annotations

import json

from bot.domain import Approval, Settle, Task, TaskState, TaskUpdate
from bot.modlog import LogEntry, LogState, StoredLogEntry
from bot.store.postgres.connection import PostgresBase, count_of
from bot.store.postgres.guilds import ensure_guild
from bot.store.postgres.quota import write_settlement
from bot.store.postgres.rows import log_entry_from, task_from
from bot.store.postgres.tasks import UNFINISHED, write_update

# What a held task that is not approved finishes as: (failure_code, failure_reason).
REFUSALS = {
    Approval.REJECTED: ("rejected", "a moderator declined the request"),
    Approval.EXPIRED: ("approval_expired", "no moderator decided in time"),
}


class PostgresGovernance(PostgresBase):
    # Settings, one transaction each

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None:
        now = self._clock()
        async with self._transaction() as c:
            await ensure_guild(c, guild_id, now)
            await c.execute(
                "UPDATE guild_settings SET log_channel_id = $1, log_problem = NULL,"
                " updated_at = $2 WHERE guild_id = $3",
                channel_id,
                now,
                guild_id,
            )

    async def set_log_problem(self, guild_id: int, problem: str | None) -> bool:
        now = self._clock()
        async with self._transaction() as c:
            if problem is not None:
                await ensure_guild(c, guild_id, now)
            status = await c.execute(
                "UPDATE guild_settings SET log_problem = $1, updated_at = $2"
                " WHERE guild_id = $3 AND log_problem IS DISTINCT FROM $1",
                problem,
                now,
                guild_id,
            )
        return count_of(status) > 0

    async def set_approval(self, guild_id: int, on: bool) -> None:
        now = self._clock()
        async with self._transaction() as c:
            await ensure_guild(c, guild_id, now)
            await c.execute(
                "UPDATE guild_settings SET approval_mode = $1, updated_at = $2 WHERE guild_id = $3",
                int(on),
                now,
                guild_id,
            )

    async def set_server_limits(
        self, guild_id: int, max_duration: int | None, high_quality: bool
    ) -> None:
        now = self._clock()
        async with self._transaction() as c:
            await ensure_guild(c, guild_id, now)
            await c.execute(
                "UPDATE guild_settings SET max_duration = $1, high_quality = $2, updated_at = $3"
                " WHERE guild_id = $4",
                max_duration,
                int(high_quality),
                now,
                guild_id,
            )

    async def set_role_allowance(
        self, guild_id: int, role_id: int, daily: int, actor_id: int
    ) -> int | None:
        async with self._transaction() as c:
            before = await c.fetchval(
                "SELECT daily FROM role_allowances WHERE guild_id = $1 AND role_id = $2 FOR UPDATE",
                guild_id,
                role_id,
            )
            await c.execute(
                "INSERT INTO role_allowances (guild_id, role_id, daily, set_by, set_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id, role_id) DO UPDATE SET"
                " daily = excluded.daily, set_by = excluded.set_by, set_at = excluded.set_at",
                guild_id,
                role_id,
                daily,
                actor_id,
                self._clock(),
            )
        return None if before is None else int(before)

    async def clear_role_allowance(self, guild_id: int, role_id: int) -> int | None:
        async with self._transaction() as c:
            daily = await c.fetchval(
                "DELETE FROM role_allowances WHERE guild_id = $1 AND role_id = $2 RETURNING daily",
                guild_id,
                role_id,
            )
        return None if daily is None else int(daily)

    async def add_blocked_phrase(self, guild_id: int, phrase: str, actor_id: int) -> bool:
        async with self._transaction() as c:
            status = await c.execute(
                "INSERT INTO blocked_phrases (guild_id, phrase, added_by, added_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                guild_id,
                phrase,
                actor_id,
                self._clock(),
            )
        return count_of(status) > 0

    async def remove_blocked_phrase(self, guild_id: int, phrase: str) -> bool:
        async with self._transaction() as c:
            status = await c.execute(
                "DELETE FROM blocked_phrases WHERE guild_id = $1 AND phrase = $2",
                guild_id,
                phrase,
            )
        return count_of(status) > 0

    # Held requests

    async def decide(
        self, task_id: str, guild_id: int, decision: Approval, actor_id: int | None
    ) -> Task | None:
        if decision is Approval.PENDING:
            raise ValueError("a decision approves, rejects or expires a held task")
        now = self._clock()
        async with self._transaction() as c:
            # The WHERE is the guard: of two moderators deciding at once, the second
            # waits for the first's row lock, then finds the task no longer pending.
            row = await c.fetchrow(
                "UPDATE tasks SET approval = $1, decided_by = $2, decided_at = $3,"
                " next_check_at = NULL, updated_at = $3"
                " WHERE id = $4 AND guild_id = $5 AND approval = 'pending'"
                f" AND state IN {UNFINISHED} RETURNING *",
                decision.value,
                actor_id,
                now,
                task_id,
                guild_id,
            )
            if row is None:
                return None
            refusal = REFUSALS.get(decision)
            if refusal is not None:
                code, reason = refusal
                row = await write_update(
                    c,
                    task_id,
                    TaskUpdate(TaskState.FAILED, failure_code=code, failure_reason=reason),
                    now,
                )
                await write_settlement(c, task_id, Settle.REFUND, reason, now)
        return task_from(row)

    async def record_card(self, task_id: str, message_id: int | None) -> None:
        async with self._transaction() as c:
            await c.execute(
                "UPDATE tasks SET card_message_id = $1, updated_at = $2 WHERE id = $3",
                message_id,
                self._clock(),
                task_id,
            )

    # The moderation log's outbox

    async def add_log_entry(self, entry: LogEntry) -> int | None:
        async with self._transaction() as c:
            # The channel is the guild's log channel now; no channel, no row.
            entry_id = await c.fetchval(
                "INSERT INTO mod_log (guild_id, channel_id, kind, task_id, actor_id,"
                " member_id, detail_json, state, created_at)"
                " SELECT guild_id, log_channel_id, $1, $2, $3, $4, $5, 'pending', $6"
                " FROM guild_settings WHERE guild_id = $7 AND log_channel_id IS NOT NULL"
                " RETURNING id",
                entry.kind.value,
                entry.task_id,
                entry.actor_id,
                entry.member_id,
                json.dumps(dict(entry.detail)),
                self._clock(),
                entry.guild_id,
            )
        return None if entry_id is None else int(entry_id)

    async def pending_log_entries(self, limit: int = 50) -> list[StoredLogEntry]:
        rows = await self._all(
            "SELECT * FROM mod_log WHERE state IN ('pending', 'posting') ORDER BY id LIMIT $1",
            limit,
        )
        return [log_entry_from(r) for r in rows]

    async def record_log_post(
        self, entry_id: int, state: LogState, message_id: int | None = None
    ) -> None:
        async with self._transaction() as c:
            await c.execute(
                "UPDATE mod_log SET state = $1, message_id = COALESCE($2, message_id)"
                " WHERE id = $3",
                state.value,
                message_id,
                entry_id,
            )

    async def log_entry_for(self, task_id: str, kind: str) -> StoredLogEntry | None:
        row = await self._one(
            "SELECT * FROM mod_log WHERE task_id = $1 AND kind = $2 ORDER BY id DESC LIMIT 1",
            task_id,
            kind,
        )
        return None if row is None else log_entry_from(row)
