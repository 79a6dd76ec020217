"""Provider health and failover (`bot.providers.health`): each provider's state, the
events the last day's statistics count, and a task's move to another provider.

    record_create  a create's outcome: an event and the new health, one transaction
    claim_probe    the one request that tries a provider after its cool-down
    move_task      a task its provider failed goes to another, once
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta

import aiosqlite

from bot.domain import Task, TaskState
from bot.providers.health import (
    Availability,
    Health,
    ProviderStats,
    after_create,
    availability,
    claim_probe,
    stats_from,
)
from bot.store.sqlite.connection import SqliteBase, dt, every, first, ts
from bot.store.sqlite.rows import task_from
from bot.store.sqlite.tasks import UNFINISHED

# Events are counted over the last day; older ones are pruned now and then.
EVENTS_KEPT = timedelta(days=2)
PRUNE_EVERY = 100


def health_from(provider: str, row: sqlite3.Row | None) -> Health:
    if row is None:
        return Health(provider)
    return Health(
        provider,
        failures_in_row=row["failures_in_row"],
        cooldown_until=dt(row["cooldown_until"]),
        last_reason=row["last_reason"],
        probing_until=dt(row["probing_until"]),
    )


async def read_health(db: aiosqlite.Connection, provider: str) -> Health:
    row = await first(db, "SELECT * FROM provider_health WHERE provider = ?", (provider,))
    return health_from(provider, row)


async def write_health(db: aiosqlite.Connection, health: Health, now: datetime) -> None:
    await db.execute(
        "INSERT INTO provider_health (provider, failures_in_row, cooldown_until, last_reason,"
        " probing_until, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (provider) DO UPDATE SET failures_in_row = excluded.failures_in_row,"
        " cooldown_until = excluded.cooldown_until, last_reason = excluded.last_reason,"
        " probing_until = excluded.probing_until, updated_at = excluded.updated_at",
        (
            health.provider,
            health.failures_in_row,
            ts(health.cooldown_until),
            health.last_reason,
            ts(health.probing_until),
            ts(now),
        ),
    )


class SqliteHealth(SqliteBase):
    async def provider_health(self, providers: Sequence[str]) -> dict[str, Health]:
        async with self._lock:
            rows = await every(self._conn, "SELECT * FROM provider_health")
        found = {row["provider"]: row for row in rows}
        return {name: health_from(name, found.get(name)) for name in providers}

    async def claim_probe(self, provider: str) -> bool:
        now = self._clock()
        async with self._transaction() as db:
            health = await read_health(db, provider)
            match availability(health, now):
                case Availability.OK:
                    return True
                case Availability.COOLING:
                    return False
                case Availability.PROBE:
                    await write_health(db, claim_probe(health, now), now)
                    return True

    async def record_create(
        self,
        provider: str,
        *,
        ok: bool,
        reason: str | None = None,
        failover: bool = False,
        cooldown: float,
    ) -> Health:
        now = self._clock()
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO provider_events (provider, at, ok, reason, failover)"
                " VALUES (?, ?, ?, ?, ?)",
                (provider, ts(now), int(ok), reason, int(failover)),
            )
            if (cursor.lastrowid or 0) % PRUNE_EVERY == 0:
                await db.execute(
                    "DELETE FROM provider_events WHERE at < ?", (ts(now - EVENTS_KEPT),)
                )
            health = after_create(
                await read_health(db, provider), ok=ok, reason=reason, now=now, cooldown=cooldown
            )
            await write_health(db, health, now)
        return health

    async def provider_stats(self, since: datetime) -> dict[str, ProviderStats]:
        after = ts(since)
        async with self._lock:
            db = self._conn
            tasks = await every(
                db,
                "SELECT provider, state, failure_code, COUNT(*) AS n FROM tasks"
                " WHERE created_at >= ? GROUP BY provider, state, failure_code",
                (after,),
            )
            events = await every(
                db,
                "SELECT provider, ok, reason, failover, COUNT(*) AS n FROM provider_events"
                " WHERE at >= ? GROUP BY provider, ok, reason, failover",
                (after,),
            )
            # A task moved on after its provider failed it is that provider's failure
            # (the move cleared the failure fields and names the new provider).
            moved = await every(
                db,
                "SELECT retried_from, COUNT(*) AS n FROM tasks WHERE created_at >= ?"
                " AND retried_from IS NOT NULL GROUP BY retried_from",
                (after,),
            )
            times = await every(
                db,
                "SELECT provider, (low_seconds + high_seconds) / 2 AS seconds"
                " FROM generation_times WHERE finished_at >= ?",
                (after,),
            )
        return stats_from(tasks, events, moved, times)

    async def move_task(
        self,
        task_id: str,
        provider: str,
        provider_task_id: str,
        state: TaskState,
        next_check_at: datetime,
    ) -> Task | None:
        if state not in (TaskState.SUBMITTED, TaskState.RUNNING):
            raise ValueError(f"a moved task is submitted or running, not {state.value}")
        now = self._clock()
        async with self._transaction() as db:
            row = await first(
                db,
                "UPDATE tasks SET retried_from = provider, provider = ?, provider_task_id = ?,"
                " state = ?, progress = NULL, failure_code = NULL, failure_reason = NULL,"
                " next_check_at = ?, checked_at = NULL, resubmitted_at = ?, updated_at = ?"
                f" WHERE id = ? AND retried_from IS NULL AND state IN {UNFINISHED}"
                " RETURNING *",
                (
                    provider,
                    provider_task_id,
                    state.value,
                    ts(next_check_at),
                    ts(now),
                    ts(now),
                    task_id,
                ),
            )
        return None if row is None else task_from(row)
