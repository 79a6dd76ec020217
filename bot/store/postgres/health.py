"""Provider health and failover on PostgreSQL (`bot.providers.health`): each provider's
state shared by every process, the events the statistics count, and moving a task.

The read-decide-write of `claim_probe` and `record_create` holds the provider's row
lock, so concurrent processes see each other's outcome (one probe, no lost failure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

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
from bot.store.postgres.connection import PostgresBase
from bot.store.postgres.rows import health_from, task_from
from bot.store.postgres.tasks import UNFINISHED

# Events are counted over the last day; older ones are pruned now and then.
EVENTS_KEPT = timedelta(days=2)
PRUNE_EVERY = 100


async def locked_health(c: Any, provider: str) -> Health:
    row = await c.fetchrow("SELECT * FROM provider_health WHERE provider = $1 FOR UPDATE", provider)
    return health_from(provider, row)


async def write_health(c: Any, health: Health, now: datetime) -> None:
    await c.execute(
        "INSERT INTO provider_health (provider, failures_in_row, cooldown_until, last_reason,"
        " probing_until, updated_at) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (provider) DO UPDATE SET failures_in_row = excluded.failures_in_row,"
        " cooldown_until = excluded.cooldown_until, last_reason = excluded.last_reason,"
        " probing_until = excluded.probing_until, updated_at = excluded.updated_at",
        health.provider,
        health.failures_in_row,
        health.cooldown_until,
        health.last_reason,
        health.probing_until,
        now,
    )


class PostgresHealth(PostgresBase):
    async def provider_health(self, providers: Sequence[str]) -> dict[str, Health]:
        rows = await self._all(
            "SELECT * FROM provider_health WHERE provider = ANY($1::text[])", list(providers)
        )
        found = {row["provider"]: row for row in rows}
        return {name: health_from(name, found.get(name)) for name in providers}

    async def claim_probe(self, provider: str) -> bool:
        now = self._clock()
        async with self._transaction() as c:
            # No row: never recorded, healthy; a row is locked so one claimer probes.
            health = await locked_health(c, provider)
            match availability(health, now):
                case Availability.OK:
                    return True
                case Availability.COOLING:
                    return False
                case Availability.PROBE:
                    await write_health(c, claim_probe(health, now), now)
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
        async with self._transaction() as c:
            # A row to lock (a healthy default when new), so concurrent outcomes queue.
            await c.execute(
                "INSERT INTO provider_health (provider, updated_at) VALUES ($1, $2)"
                " ON CONFLICT (provider) DO NOTHING",
                provider,
                now,
            )
            health = after_create(
                await locked_health(c, provider), ok=ok, reason=reason, now=now, cooldown=cooldown
            )
            event_id = await c.fetchval(
                "INSERT INTO provider_events (provider, at, ok, reason, failover)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                provider,
                now,
                int(ok),
                reason,
                int(failover),
            )
            if int(event_id) % PRUNE_EVERY == 0:
                await c.execute("DELETE FROM provider_events WHERE at < $1", now - EVENTS_KEPT)
            await write_health(c, health, now)
        return health

    async def provider_stats(self, since: datetime) -> dict[str, ProviderStats]:
        async with self._transaction() as c:
            tasks = await c.fetch(
                "SELECT provider, state, failure_code, COUNT(*) AS n FROM tasks"
                " WHERE created_at >= $1 GROUP BY provider, state, failure_code",
                since,
            )
            events = await c.fetch(
                "SELECT provider, ok, reason, failover, COUNT(*) AS n FROM provider_events"
                " WHERE at >= $1 GROUP BY provider, ok, reason, failover",
                since,
            )
            # A task moved on after its provider failed it is that provider's failure.
            moved = await c.fetch(
                "SELECT retried_from, COUNT(*) AS n FROM tasks WHERE created_at >= $1"
                " AND retried_from IS NOT NULL GROUP BY retried_from",
                since,
            )
            times = await c.fetch(
                "SELECT provider, (low_seconds + high_seconds) / 2 AS seconds"
                " FROM generation_times WHERE finished_at >= $1",
                since,
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
        async with self._transaction() as c:
            row = await c.fetchrow(
                "UPDATE tasks SET retried_from = provider, provider = $1, provider_task_id = $2,"
                " state = $3, progress = NULL, failure_code = NULL, failure_reason = NULL,"
                " next_check_at = $4, checked_at = NULL, resubmitted_at = $5, updated_at = $5"
                f" WHERE id = $6 AND retried_from IS NULL AND state IN {UNFINISHED}"
                " RETURNING *",
                provider,
                provider_task_id,
                state.value,
                next_check_at,
                now,
                task_id,
            )
        return None if row is None else task_from(row)
