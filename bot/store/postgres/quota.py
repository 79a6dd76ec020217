"""The quota ledger on PostgreSQL: counting usage and writing its entries.

Every quota movement is a row; usage is a sum; `entry_key` makes each entry idempotent
(see `bot.store.sqlite.quota`). `lock_guild` serialises everything that decides on a
guild's usage (reservations, resets) across processes: it locks the guild's settings
row until the transaction ends. `bot.domain.check_quota` decides on the counts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.domain import (
    EffectiveLimits,
    NewTask,
    QuotaLimits,
    QuotaStatus,
    QuotaUnit,
    RoleAllowance,
    Settle,
    day_key,
    month_key,
    next_day_start,
    next_month_start,
)
from bot.governance import member_allowance
from bot.store.postgres.connection import PostgresBase


async def lock_guild(c: Any, guild_id: int, now: datetime) -> None:
    """Create the guild's settings row if missing (every default) and lock it until the
    caller's transaction ends: concurrent reservations of one guild take turns."""
    await c.execute(
        "INSERT INTO guild_settings (guild_id, updated_at) VALUES ($1, $2)"
        " ON CONFLICT (guild_id) DO NOTHING",
        guild_id,
        now,
    )
    await c.execute("SELECT 1 FROM guild_settings WHERE guild_id = $1 FOR UPDATE", guild_id)


async def read_quota(
    c: Any,
    guild_id: int,
    user_id: int,
    defaults: EffectiveLimits,
    now: datetime,
    role_ids: frozenset[int] = frozenset(),
) -> QuotaStatus:
    """The guild's limits and its usage (today, this month, the member's today) in the
    limits' unit; a role allowance among `role_ids` replaces the per-member limit. A
    moderator's reset lowers the member's count only, not the guild's."""
    day, month = day_key(now), month_key(now)
    row = await c.fetchrow(
        "SELECT g.daily_limit, g.monthly_limit, g.user_daily_limit, g.quota_unit,"
        " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
        "   WHERE guild_id = $1 AND day = $3 AND kind <> 'reset'),"
        " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
        "   WHERE guild_id = $1 AND day = $3 AND kind <> 'reset'),"
        " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
        "   WHERE guild_id = $1 AND month = $4 AND kind <> 'reset'),"
        " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
        "   WHERE guild_id = $1 AND month = $4 AND kind <> 'reset'),"
        " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
        "   WHERE guild_id = $1 AND user_id = $2 AND day = $3),"
        " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
        "   WHERE guild_id = $1 AND user_id = $2 AND day = $3)"
        " FROM (SELECT 1) AS one LEFT JOIN guild_settings g ON g.guild_id = $1",
        guild_id,
        user_id,
        day,
        month,
    )
    assert row is not None
    unit = row[3]
    limits = defaults.resolve(
        QuotaLimits(
            daily=row[0],
            monthly=row[1],
            user_daily=row[2],
            unit=None if unit is None else QuotaUnit(unit),
        )
    )
    role_id = None
    if role_ids:
        held = tuple(role_ids)
        allowances = [
            RoleAllowance(role_id=r[0], daily=r[1])
            for r in await c.fetch(
                "SELECT role_id, daily FROM role_allowances WHERE guild_id = $1"
                " AND role_id = ANY($2::bigint[]) ORDER BY role_id",
                guild_id,
                list(held),
            )
        ]
        allowance = member_allowance(limits.user_daily, allowances, held)
        limits = replace(limits, user_daily=allowance.limit)
        role_id = allowance.role_id
    videos = limits.unit is QuotaUnit.VIDEOS
    return QuotaStatus(
        limits=limits,
        guild_used_today=max(0, int(row[4] if videos else row[5])),
        guild_used_month=max(0, int(row[6] if videos else row[7])),
        user_used_today=max(0, int(row[8] if videos else row[9])),
        day_resets_at=next_day_start(now),
        month_resets_at=next_month_start(now),
        user_limit_role=role_id,
    )


async def write_reservation(c: Any, task_id: str, new: NewTask, now: datetime) -> None:
    """Hold one video and its seconds for `task_id` until it is charged or refunded."""
    await c.execute(
        "INSERT INTO quota_ledger (entry_key, guild_id, user_id, task_id, kind, videos,"
        " seconds, day, month, created_at) VALUES ($1, $2, $3, $4, 'reserve', 1, $5, $6, $7, $8)",
        f"reserve:{task_id}",
        new.guild_id,
        new.user_id,
        task_id,
        new.options.duration_seconds,
        day_key(now),
        month_key(now),
        now,
    )


async def write_settlement(
    c: Any, task_id: str, settle: Settle, note: str | None, now: datetime
) -> bool:
    """Charge or refund a task's reservation: at most one of them, once (the caller holds
    the task's row lock). A refund counts against the reservation's period."""
    if settle is Settle.NONE:
        return False
    entries = {
        row["kind"]: row
        for row in await c.fetch(
            "SELECT * FROM quota_ledger WHERE task_id = $1 AND kind IN"
            " ('reserve', 'charge', 'refund')",
            task_id,
        )
    }
    reserve = entries.get("reserve")
    if reserve is None or "charge" in entries or "refund" in entries:
        return False
    sign = -1 if settle is Settle.REFUND else 0
    status = await c.execute(
        "INSERT INTO quota_ledger (entry_key, guild_id, user_id, task_id, kind, videos,"
        " seconds, day, month, note, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (entry_key) DO NOTHING",
        f"{settle.value}:{task_id}",
        reserve["guild_id"],
        reserve["user_id"],
        task_id,
        settle.value,
        sign * reserve["videos"],
        sign * reserve["seconds"],
        reserve["day"],
        reserve["month"],
        note,
        now,
    )
    return bool(status.endswith(" 1"))


class PostgresQuota(PostgresBase):
    async def quota_status(
        self,
        guild_id: int,
        user_id: int,
        defaults: EffectiveLimits,
        role_ids: frozenset[int] = frozenset(),
    ) -> QuotaStatus:
        now = self._clock()
        async with self._transaction() as c:
            return await read_quota(c, guild_id, user_id, defaults, now, role_ids)

    async def reset_user_usage(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        now = self._clock()
        day = day_key(now)
        async with self._transaction() as c:
            await lock_guild(c, guild_id, now)
            # Only settled usage is cleared: a reservation in flight settles itself.
            row = await c.fetchrow(
                "SELECT COALESCE(SUM(l.videos), 0), COALESCE(SUM(l.seconds), 0),"
                " (SELECT COUNT(*) FROM quota_ledger"
                "   WHERE guild_id = $1 AND user_id = $2 AND day = $3)"
                " FROM quota_ledger l WHERE l.guild_id = $1 AND l.user_id = $2 AND l.day = $3"
                " AND NOT (l.kind = 'reserve' AND NOT EXISTS (SELECT 1 FROM quota_ledger s"
                "   WHERE s.entry_key IN ('charge:' || l.task_id, 'refund:' || l.task_id)))",
                guild_id,
                user_id,
                day,
            )
            assert row is not None
            videos, seconds, entries = max(0, int(row[0])), max(0, int(row[1])), int(row[2])
            if videos == 0 and seconds == 0:
                return 0, 0
            await c.execute(
                "INSERT INTO quota_ledger (entry_key, guild_id, user_id, kind, videos, seconds,"
                " day, month, actor_id, note, created_at)"
                " VALUES ($1, $2, $3, 'reset', $4, $5, $6, $7, $8, 'moderator reset', $9)",
                f"reset:{guild_id}:{user_id}:{day}:{entries}",
                guild_id,
                user_id,
                -videos,
                -seconds,
                day,
                month_key(now),
                actor_id,
                now,
            )
        return videos, seconds
