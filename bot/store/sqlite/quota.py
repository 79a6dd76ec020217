"""The quota ledger: counting usage and writing its entries.

Every quota movement is a row; usage is a sum. Each entry's `entry_key` makes it
idempotent: reserve:<task>, charge:<task>, refund:<task>, reset:<guild>:<user>:<day>:<n>.
Whether a request fits is not decided here but by `bot.domain.check_quota`, on the
counts `read_quota` returns; the functions taking a `db` run inside the caller's
transaction (`tasks.py` reserves and settles with them).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import aiosqlite

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
from bot.store.sqlite.connection import SqliteBase, every, first, ts


async def read_quota(
    db: aiosqlite.Connection,
    guild_id: int,
    user_id: int,
    defaults: EffectiveLimits,
    now: datetime,
    role_ids: frozenset[int] = frozenset(),
) -> QuotaStatus:
    """The guild's limits and its usage (today, this month, the member's today) in the
    limits' unit, read in one round trip to the connection's thread (and one more for
    the allowances of `role_ids`, when the member has roles: the largest replaces the
    per-member limit, `bot.governance.member_allowance`).

    A moderator's reset of one member lowers that member's count only: the server
    really did spend those videos with its provider, so its own totals keep them.
    """
    day, month = day_key(now), month_key(now)
    row = await first(
        db,
        "SELECT g.daily_limit, g.monthly_limit, g.user_daily_limit, g.quota_unit,"
        " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
        "   WHERE guild_id = :g AND day = :d AND kind != 'reset'),"
        " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
        "   WHERE guild_id = :g AND day = :d AND kind != 'reset'),"
        " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
        "   WHERE guild_id = :g AND month = :m AND kind != 'reset'),"
        " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
        "   WHERE guild_id = :g AND month = :m AND kind != 'reset'),"
        " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
        "   WHERE guild_id = :g AND user_id = :u AND day = :d),"
        " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
        "   WHERE guild_id = :g AND user_id = :u AND day = :d)"
        " FROM (SELECT 1) LEFT JOIN guild_settings g ON g.guild_id = :g",
        {"g": guild_id, "u": user_id, "d": day, "m": month},
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
            for r in await every(
                db,
                "SELECT role_id, daily FROM role_allowances WHERE guild_id = ?"
                f" AND role_id IN ({', '.join('?' * len(held))}) ORDER BY role_id",
                (guild_id, *held),
            )
        ]
        allowance = member_allowance(limits.user_daily, allowances, held)
        limits = replace(limits, user_daily=allowance.limit)
        role_id = allowance.role_id
    videos = limits.unit is QuotaUnit.VIDEOS
    return QuotaStatus(
        limits=limits,
        guild_used_today=max(0, row[4] if videos else row[5]),
        guild_used_month=max(0, row[6] if videos else row[7]),
        user_used_today=max(0, row[8] if videos else row[9]),
        day_resets_at=next_day_start(now),
        month_resets_at=next_month_start(now),
        user_limit_role=role_id,
    )


async def write_reservation(
    db: aiosqlite.Connection, task_id: str, new: NewTask, now: datetime
) -> None:
    """Hold one video and its seconds for `task_id` until it is charged or refunded."""
    await db.execute(
        "INSERT INTO quota_ledger (entry_key, guild_id, user_id, task_id, kind, videos,"
        " seconds, day, month, created_at) VALUES (?, ?, ?, ?, 'reserve', 1, ?, ?, ?, ?)",
        (
            f"reserve:{task_id}",
            new.guild_id,
            new.user_id,
            task_id,
            new.options.duration_seconds,
            day_key(now),
            month_key(now),
            ts(now),
        ),
    )


async def write_settlement(
    db: aiosqlite.Connection, task_id: str, settle: Settle, note: str | None, now: datetime
) -> bool:
    """Charge or refund a task's reservation: at most one of them, once. A refund counts
    against the period of the reservation it undoes. False if there was nothing to do."""
    if settle is Settle.NONE:
        return False
    entries = {
        row["kind"]: row
        for row in await every(
            db,
            "SELECT * FROM quota_ledger WHERE task_id = ? AND kind IN"
            " ('reserve', 'charge', 'refund')",
            (task_id,),
        )
    }
    reserve = entries.get("reserve")
    if reserve is None or "charge" in entries or "refund" in entries:
        return False
    sign = -1 if settle is Settle.REFUND else 0
    await db.execute(
        "INSERT INTO quota_ledger (entry_key, guild_id, user_id, task_id, kind, videos,"
        " seconds, day, month, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
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
            ts(now),
        ),
    )
    return True


class SqliteQuota(SqliteBase):
    async def quota_status(
        self,
        guild_id: int,
        user_id: int,
        defaults: EffectiveLimits,
        role_ids: frozenset[int] = frozenset(),
    ) -> QuotaStatus:
        now = self._clock()
        async with self._lock:
            return await read_quota(self._conn, guild_id, user_id, defaults, now, role_ids)

    async def reset_user_usage(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        now = self._clock()
        day = day_key(now)
        async with self._transaction() as db:
            # Only settled usage is cleared. A reservation still in flight is left alone: if
            # it were cleared now, its later refund would credit the member a second time.
            row = await first(
                db,
                "SELECT COALESCE(SUM(l.videos), 0), COALESCE(SUM(l.seconds), 0),"
                " (SELECT COUNT(*) FROM quota_ledger"
                "   WHERE guild_id = :g AND user_id = :u AND day = :d)"
                " FROM quota_ledger l WHERE l.guild_id = :g AND l.user_id = :u AND l.day = :d"
                " AND NOT (l.kind = 'reserve' AND NOT EXISTS (SELECT 1 FROM quota_ledger s"
                "   WHERE s.entry_key IN ('charge:' || l.task_id, 'refund:' || l.task_id)))",
                {"g": guild_id, "u": user_id, "d": day},
            )
            assert row is not None
            videos, seconds, entries = max(0, row[0]), max(0, row[1]), row[2]
            if videos == 0 and seconds == 0:
                return 0, 0
            await db.execute(
                "INSERT INTO quota_ledger (entry_key, guild_id, user_id, kind, videos, seconds,"
                " day, month, actor_id, note, created_at)"
                " VALUES (?, ?, ?, 'reset', ?, ?, ?, ?, ?, 'moderator reset', ?)",
                (
                    f"reset:{guild_id}:{user_id}:{day}:{entries}",
                    guild_id,
                    user_id,
                    -videos,
                    -seconds,
                    day,
                    month_key(now),
                    actor_id,
                    ts(now),
                ),
            )
        return int(videos), int(seconds)
