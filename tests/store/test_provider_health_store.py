"""The SQLite store's provider health and failover, beyond `test_health_store.py`: what
an unknown provider reads as, the stored rows behind `record_create`, a cool-down and a
probe seen by another store on the same file and after a restart, what the last day's
statistics leave out, and a moved task's columns and quota ledger."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    GenerationTime,
    Mode,
    NewTask,
    QuotaUnit,
    Settle,
    TaskState,
    TaskUpdate,
)
from bot.providers.health import Availability, Health, ProviderStats, availability
from bot.store import SqliteStore
from tests.clock import FakeClock

LIMITS = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)
COOLDOWN = 300.0


def query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as raw:
        return list(raw.execute(sql, params))


async def fail(
    store: SqliteStore, provider: str = "apixo", times: int = 1, reason: str = "unavailable"
) -> Health:
    health = Health(provider)
    for _ in range(times):
        health = await store.record_create(
            provider, ok=False, reason=reason, failover=True, cooldown=COOLDOWN
        )
    return health


async def reserve(store: SqliteStore, provider: str = "apixo") -> str:
    new = NewTask(1, 2, 3, provider, Mode.TEXT, "p", GenerationOptions())
    return (await store.reserve(new, LIMITS)).task.id


# Health


async def test_every_name_asked_for_is_answered_and_unknown_ones_are_healthy(
    store: SqliteStore,
) -> None:
    assert await store.provider_health([]) == {}
    cooling = await fail(store, times=3)
    health = await store.provider_health(["openai", "apixo", "demo"])
    assert set(health) == {"openai", "apixo", "demo"}
    assert health["openai"] == Health("openai")
    assert health["demo"] == Health("demo")
    assert health["apixo"] == cooling  # what record_create returned is what it stored
    assert await store.claim_probe("openai")  # never recorded: healthy, no probe needed


async def test_record_create_writes_one_event_per_create(
    store: SqliteStore, path: Path, clock: FakeClock
) -> None:
    await store.record_create("apixo", ok=False, reason="rate_limited", cooldown=COOLDOWN)
    clock.advance(seconds=5)
    await store.record_create(
        "apixo", ok=False, reason="out_of_credits", failover=True, cooldown=COOLDOWN
    )
    health = await store.record_create("openai", ok=True, cooldown=COOLDOWN)
    assert health == Health("openai")
    assert query(
        path, "SELECT provider, ok, reason, failover FROM provider_events ORDER BY id"
    ) == [
        ("apixo", 0, "rate_limited", 0),
        ("apixo", 0, "out_of_credits", 1),
        ("openai", 1, None, 0),
    ]
    stored = query(
        path, "SELECT failures_in_row, last_reason FROM provider_health WHERE provider = 'apixo'"
    )
    assert stored == [(2, "out_of_credits")]


async def test_a_cool_down_and_its_probe_are_shared_and_survive_a_restart(
    path: Path, clock: FakeClock
) -> None:
    one = SqliteStore(path, clock=clock)
    await one.open()
    cooling = await fail(one, times=3)
    await one.close()

    restarted, other = SqliteStore(path, clock=clock), SqliteStore(path, clock=clock)
    await restarted.open()
    await other.open()
    try:
        assert (await restarted.provider_health(["apixo"]))["apixo"] == cooling
        assert not await restarted.claim_probe("apixo")
        clock.advance(seconds=COOLDOWN + 1)
        # Two processes after the cool-down: exactly one of them probes.
        claims = await asyncio.gather(
            *(store.claim_probe("apixo") for store in (restarted, other) for _ in range(5))
        )
        assert claims.count(True) == 1
        seen = (await other.provider_health(["apixo"]))["apixo"]
        assert seen.probing_until is not None and seen.probing_until > clock.now
        assert availability(seen, clock.now) is Availability.COOLING
        # The probe succeeded in one process: the other sees the provider healthy.
        await restarted.record_create("apixo", ok=True, cooldown=COOLDOWN)
        assert (await other.provider_health(["apixo"]))["apixo"] == Health("apixo")
    finally:
        await restarted.close()
        await other.close()


# The last day's statistics


async def test_statistics_count_only_what_happened_since(
    store: SqliteStore, clock: FakeClock
) -> None:
    old = await reserve(store)
    await store.finish(
        old, TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime.exact(1000)), settle=Settle.CHARGE
    )
    slow = await reserve(store, "openai")  # created before `since`, finished after it
    await fail(store, reason="out_of_credits")
    clock.advance(hours=25)
    since = clock.now - timedelta(hours=24)

    await store.finish(
        slow, TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime.exact(90)), settle=Settle.CHARGE
    )
    done = await reserve(store)
    await store.finish(
        done, TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime(10, 30)), settle=Settle.CHARGE
    )
    expired = await reserve(store)
    await store.finish(expired, TaskUpdate(TaskState.EXPIRED), settle=Settle.REFUND)
    failed = await reserve(store)
    await store.finish(
        failed, TaskUpdate(TaskState.FAILED, failure_code="provider_error"), settle=Settle.REFUND
    )
    await reserve(store)  # still queued: taken, not finished
    await store.record_create("apixo", ok=False, reason="rate_limited", cooldown=COOLDOWN)
    await store.record_create("apixo", ok=True, cooldown=COOLDOWN)
    await fail(store)  # unavailable, and the job went on to the next provider

    stats = await store.provider_stats(since)
    assert set(stats) == {"apixo", "openai"}
    assert stats["apixo"] == ProviderStats(
        "apixo",
        tasks=4,
        succeeded=1,
        failures={"expired": 1, "provider_error": 1, "rate_limited": 1, "unavailable": 1},
        median_seconds=20.0,  # the middle of 10..30; the video before `since` is left out
        failovers=1,
    )
    # Only its finished video is this day's: the task itself was taken before.
    assert stats["openai"] == ProviderStats("openai", failures={}, median_seconds=90.0)
    assert await store.provider_stats(clock.now + timedelta(seconds=1)) == {}


# Submitting to and moving to another provider


async def test_mark_submitted_keeps_the_provider_unless_told(
    store: SqliteStore, clock: FakeClock
) -> None:
    kept = await store.mark_submitted(
        await reserve(store), "a-1", TaskState.SUBMITTED, None, clock.now
    )
    assert kept.provider == "apixo" and kept.provider_task_id == "a-1"
    task_id = await reserve(store)
    moved = await store.mark_submitted(
        task_id, "o-1", TaskState.RUNNING, 10, clock.now, provider="openai"
    )
    assert (moved.provider, moved.state, moved.progress) == ("openai", TaskState.RUNNING, 10)
    assert moved.retried_from is None and moved.resubmitted_at is None
    assert await store.get_task(task_id) == moved


async def test_a_moved_task_starts_afresh_at_its_new_provider(
    store: SqliteStore, path: Path, clock: FakeClock
) -> None:
    task_id = await reserve(store)
    created = clock.now
    await store.mark_submitted(task_id, "a-1", TaskState.RUNNING, 60, clock.now)
    clock.advance(minutes=2)
    claimed = await store.claim_due_tasks(clock.now, 10, 30)
    assert [t.id for t in claimed] == [task_id]
    clock.advance(minutes=1)
    check = clock.now + timedelta(seconds=20)

    with pytest.raises(ValueError):
        await store.move_task(task_id, "openai", "o-1", TaskState.FAILED, check)
    moves = await asyncio.gather(
        *(
            store.move_task(task_id, "openai", f"o-{n}", TaskState.SUBMITTED, check)
            for n in range(5)
        )
    )
    winners = [m for m in moves if m is not None]
    assert len(winners) == 1
    moved = winners[0]
    assert moved == await store.get_task(task_id)
    assert (moved.provider, moved.retried_from, moved.state) == (
        "openai",
        "apixo",
        TaskState.SUBMITTED,
    )
    assert moved.progress is None and moved.checked_at is None
    assert moved.failure_code is None and moved.failure_reason is None
    assert moved.next_check_at == check
    assert moved.created_at == created and moved.resubmitted_at == clock.now
    assert moved.started_at == clock.now and moved.updated_at == clock.now
    assert await store.task_by_provider_id("apixo", "a-1") is None
    assert moved.provider_task_id is not None
    assert await store.task_by_provider_id("openai", moved.provider_task_id) == moved

    ledger = "SELECT kind, videos FROM quota_ledger WHERE task_id = ? ORDER BY id"
    assert query(path, ledger, (task_id,)) == [("reserve", 1)]
    await store.finish(task_id, TaskUpdate(TaskState.SUCCEEDED), settle=Settle.CHARGE)
    assert query(path, ledger, (task_id,)) == [("reserve", 1), ("charge", 0)]
    assert (await store.quota_status(1, 3, LIMITS)).user_used_today == 1
    finished = await store.get_task(task_id)
    assert finished is not None
    assert finished.retried_from == "apixo" and finished.resubmitted_at == moved.resubmitted_at
