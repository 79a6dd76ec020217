"""The SQLite store's provider health and failover (issue 15): cool-downs shared by every
process, the one probe after a cool-down, the last day's statistics, and moving a task
its provider failed to another provider, once, without charging again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

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
from bot.providers.health import PROBE_SECONDS, Availability, availability
from bot.store import SqliteStore
from tests.clock import FakeClock

LIMITS = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)


async def fail(store: SqliteStore, provider: str = "apixo", times: int = 1) -> None:
    for _ in range(times):
        await store.record_create(
            provider, ok=False, reason="out_of_credits", failover=True, cooldown=300
        )


async def test_three_failures_in_a_row_start_a_cool_down(
    store: SqliteStore, clock: FakeClock
) -> None:
    assert (await store.provider_health(["apixo"]))["apixo"].failures_in_row == 0
    await fail(store, times=2)
    await store.record_create("apixo", ok=True, cooldown=300)  # a success in between
    await fail(store, times=2)
    health = (await store.provider_health(["apixo"]))["apixo"]
    assert health.cooldown_until is None and health.failures_in_row == 2
    await fail(store)
    health = (await store.provider_health(["apixo", "openai"]))["apixo"]
    assert health.cooldown_until == clock.now + timedelta(seconds=300)
    assert health.last_reason == "out_of_credits"
    assert availability(health, clock.now) is Availability.COOLING
    assert not await store.claim_probe("apixo")


async def test_one_probe_after_the_cool_down_then_ok_or_cooling_again(
    store: SqliteStore, clock: FakeClock
) -> None:
    await fail(store, times=3)
    clock.advance(seconds=301)
    claims = await asyncio.gather(*(store.claim_probe("apixo") for _ in range(10)))
    assert claims.count(True) == 1
    clock.advance(seconds=PROBE_SECONDS / 2)
    assert not await store.claim_probe("apixo")  # the probe is still out
    await fail(store)  # the probe failed: cooling again at once
    health = (await store.provider_health(["apixo"]))["apixo"]
    assert health.cooldown_until == clock.now + timedelta(seconds=300)
    clock.advance(seconds=301)
    assert await store.claim_probe("apixo")
    await store.record_create("apixo", ok=True, cooldown=300)
    health = (await store.provider_health(["apixo"]))["apixo"]
    assert health.cooldown_until is None and health.failures_in_row == 0
    assert await store.claim_probe("apixo")  # healthy: nothing to claim, always yes


async def test_health_survives_a_restart_and_is_shared(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "shared.sqlite3"
    one, two = SqliteStore(path, clock=clock), SqliteStore(path, clock=clock)
    await one.open()
    await two.open()
    try:
        await fail(one, times=3)
        health = (await two.provider_health(["apixo"]))["apixo"]
        assert availability(health, clock.now) is Availability.COOLING
    finally:
        await one.close()
        await two.close()


async def reserve(store: SqliteStore, provider: str = "apixo") -> str:
    new = NewTask(1, 2, 3, provider, Mode.TEXT, "p", GenerationOptions())
    return (await store.reserve(new, LIMITS)).task.id


async def test_the_last_day_statistics(store: SqliteStore, clock: FakeClock) -> None:
    old = await reserve(store)
    await store.finish(old, TaskUpdate(TaskState.SUCCEEDED), settle=Settle.CHARGE)
    await fail(store)
    clock.advance(hours=25)
    since = clock.now - timedelta(hours=24)
    for took in (30.0, 50.0, 70.0):
        task_id = await reserve(store)
        await store.mark_submitted(task_id, f"p-{took}", TaskState.SUBMITTED, None, clock.now)
        await store.finish(
            task_id,
            TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime.exact(took)),
            settle=Settle.CHARGE,
        )
    failed = await reserve(store)
    await store.finish(
        failed,
        TaskUpdate(TaskState.FAILED, failure_code="provider_error"),
        settle=Settle.REFUND,
    )
    await fail(store, times=2)
    await store.record_create("openai", ok=True, cooldown=300)
    stats = await store.provider_stats(since)
    apixo = stats["apixo"]
    assert (apixo.tasks, apixo.succeeded, apixo.failovers) == (4, 3, 2)
    assert apixo.failures == {"provider_error": 1, "out_of_credits": 2}
    assert apixo.median_seconds == 50.0
    assert apixo.success_rate == 0.5
    assert stats["openai"].tasks == 0 and stats["openai"].failures == {}


async def test_a_task_moves_to_another_provider_once_still_reserved_once(
    store: SqliteStore, clock: FakeClock
) -> None:
    task_id = await reserve(store)
    submitted = await store.mark_submitted(task_id, "a-1", TaskState.RUNNING, 40, clock.now)
    assert submitted.provider == "apixo"
    clock.advance(minutes=3)
    moved = await store.move_task(task_id, "openai", "o-1", TaskState.SUBMITTED, clock.now)
    assert moved is not None
    assert (moved.provider, moved.provider_task_id, moved.retried_from) == (
        "openai",
        "o-1",
        "apixo",
    )
    assert moved.progress is None and moved.state is TaskState.SUBMITTED
    assert moved.resubmitted_at == clock.now and moved.started_at == clock.now
    assert await store.move_task(task_id, "demo", "d-1", TaskState.SUBMITTED, clock.now) is None
    stats = await store.provider_stats(clock.now - timedelta(hours=24))
    assert stats["apixo"].failures == {"provider_error": 1} and stats["apixo"].failovers == 1
    assert (await store.quota_status(1, 3, LIMITS)).user_used_today == 1
    await store.finish(task_id, TaskUpdate(TaskState.SUCCEEDED), settle=Settle.CHARGE)
    assert (await store.quota_status(1, 3, LIMITS)).user_used_today == 1
    other = await reserve(store)
    await store.finish(other, TaskUpdate(TaskState.FAILED), settle=Settle.REFUND)
    assert await store.move_task(other, "openai", "o-2", TaskState.SUBMITTED, clock.now) is None


async def test_the_provider_that_took_it_is_recorded(store: SqliteStore, clock: FakeClock) -> None:
    task_id = await reserve(store)
    task = await store.mark_submitted(
        task_id, "o-9", TaskState.SUBMITTED, None, clock.now, provider="openai"
    )
    assert task.provider == "openai"
    assert await store.task_by_provider_id("openai", "o-9") is not None
