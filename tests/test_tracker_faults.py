"""The tracker under a failing provider and slow posts (issue 10, items 5 and the tests
section): it backs off from a failing provider, obeys (bounded) Retry-After, and a slow
download or post never holds up other tasks' checks, the loop, or the start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import NotifyState, Settle, Task, TaskState, TaskUpdate
from bot.errors import ProviderUnavailableError, RateLimitedError
from bot.polling import PollPlanner
from bot.providers.base import ProviderState, ProviderStatus
from bot.schedule import Schedule
from bot.store import SqliteStore
from bot.tracker import MAX_RETRY_AFTER_SECONDS, REDELIVER_EVERY, Tracker
from bot.url_policy import MediaPolicy
from tests.clock import FakeClock
from tests.test_tracker import Recorder, Scripted, submitted

INTERVAL = 10.0  # the claim alone moves a task's next check this far
DONE = ProviderStatus(ProviderState.SUCCEEDED, 100, video_url="https://cdn/v.mp4")


class Gated(Recorder):
    """Posts instantly (and records it, as the notifier does), except for the tasks named
    in `held`: those hang (a video dripping in at a few KB/s) until the test opens `gate`."""

    def __init__(self, store: SqliteStore, *held: str) -> None:
        super().__init__()
        self.store = store
        self.held = set(held)
        self.gate = asyncio.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def deliver(self, task: Task) -> None:
        self.started.append(task.provider_task_id or task.id)
        if (task.provider_task_id or task.id) in self.held:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(task.provider_task_id or task.id)
                raise
        await self.store.record_delivery(task.id, NotifyState.POSTED)
        await super().deliver(task)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "faults.sqlite3")
    await db.open()
    yield db
    await db.close()


def tracker_for(
    store: SqliteStore,
    provider: Scripted,
    deliverer: Recorder,
    clock: FakeClock,
    *,
    concurrency: int = 16,
) -> Tracker:
    return Tracker(
        store=store,
        provider=provider,
        deliverer=deliverer,
        polling=PollPlanner.fixed(Schedule(first_delay=INTERVAL, interval=INTERVAL)),
        max_age=timedelta(hours=1),
        concurrency=concurrency,
        clock=clock,
        media_policy=MediaPolicy(["https://cdn"]),
    )


async def seconds_to_next_check(store: SqliteStore, task: Task, clock: FakeClock) -> float:
    current = await store.get_task(task.id)
    assert current is not None and current.next_check_at is not None
    return (current.next_check_at - clock.now).total_seconds()


async def finished_unposted(store: SqliteStore, provider_id: str) -> Task:
    """A task that ended before a crash (or a failed post): final, still `pending`."""
    task = await submitted(store, provider_id)
    done = await store.finish(
        task.id,
        TaskUpdate(TaskState.SUCCEEDED, result_url="https://cdn/v.mp4"),
        settle=Settle.CHARGE,
    )
    assert done is not None and done.notify_state is NotifyState.PENDING
    return done


# Backoff from a failing provider


async def test_the_wait_doubles_after_one_and_after_two_errors(store: SqliteStore) -> None:
    """Without the backoff the next check would be the claim's one interval away."""
    provider, clock = Scripted(), FakeClock()
    task = await submitted(store, "broken")
    provider.answers["broken"] = ProviderUnavailableError("scripted", "502 Bad Gateway")
    tracker = tracker_for(store, provider, Recorder(), clock)

    clock.now = task.created_at + timedelta(seconds=1)
    assert await tracker.run_once() == 1
    await tracker.drain()
    first = await seconds_to_next_check(store, task, clock)
    assert 2 * INTERVAL * 0.8 <= first <= 2 * INTERVAL * 1.2  # 2 intervals, +-20 % jitter

    clock.now += timedelta(seconds=first)
    assert await tracker.run_once() == 1
    await tracker.drain()
    second = await seconds_to_next_check(store, task, clock)
    assert 4 * INTERVAL * 0.8 <= second <= 4 * INTERVAL * 1.2
    assert provider.calls == ["broken", "broken"]


async def test_a_good_answer_ends_the_backoff(store: SqliteStore) -> None:
    provider, clock = Scripted(), FakeClock()
    task = await submitted(store, "flaky")
    provider.answers["flaky"] = ProviderUnavailableError("scripted", "503")
    tracker = tracker_for(store, provider, Recorder(), clock)
    clock.now = task.created_at + timedelta(seconds=1)
    await tracker.run_once()
    await tracker.drain()
    clock.now += timedelta(seconds=await seconds_to_next_check(store, task, clock))
    provider.answers["flaky"] = ProviderStatus(ProviderState.RUNNING, 30)
    await tracker.run_once()
    await tracker.drain()
    provider.answers["flaky"] = ProviderUnavailableError("scripted", "503")
    clock.now += timedelta(seconds=await seconds_to_next_check(store, task, clock))
    await tracker.run_once()
    await tracker.drain()
    # The first error since the good answer: two intervals again, not eight.
    assert await seconds_to_next_check(store, task, clock) <= 2 * INTERVAL * 1.2


async def test_a_retry_after_on_a_5xx_is_obeyed_and_a_huge_one_is_bounded(
    store: SqliteStore,
) -> None:
    provider, clock = Scripted(), FakeClock()
    maintenance = await submitted(store, "maintenance")
    bogus = await submitted(store, "bogus")
    provider.answers["maintenance"] = ProviderUnavailableError(
        "scripted", "HTTP 503 with an HTML page", retry_after=900
    )
    provider.answers["bogus"] = RateLimitedError("scripted", retry_after=10**9)
    tracker = tracker_for(store, provider, Recorder(), clock)
    clock.now = maintenance.created_at + timedelta(seconds=1)
    assert await tracker.run_once() == 2
    await tracker.drain()
    assert await seconds_to_next_check(store, maintenance, clock) >= 900
    # Parked no further than the bound: it must still be claimed to expire in time.
    assert await seconds_to_next_check(store, bogus, clock) <= MAX_RETRY_AFTER_SECONDS


# Slow posts stay out of the way


async def test_a_slow_post_does_not_hold_a_check_slot(store: SqliteStore) -> None:
    """One check slot: with the post inside it, the second task was never even asked."""
    provider, clock = Scripted(), FakeClock()
    slow = await submitted(store, "slow")
    await submitted(store, "quick")
    provider.answers["slow"] = DONE
    provider.answers["quick"] = DONE
    posts = Gated(store, "slow")
    tracker = tracker_for(store, provider, posts, clock, concurrency=1)
    clock.now = slow.created_at + timedelta(seconds=1)
    try:
        assert await tracker.run_once() == 2
        async with asyncio.timeout(5):
            while [t.provider_task_id for t in posts.delivered] != ["quick"]:
                await asyncio.sleep(0.01)
        assert "slow" in posts.started and sorted(provider.calls) == ["quick", "slow"]
        posts.gate.set()
        await tracker.drain()
        assert sorted(t.provider_task_id or "" for t in posts.delivered) == ["quick", "slow"]
    finally:
        posts.gate.set()
        await tracker.stop()


async def test_redelivery_runs_beside_the_loop_once_per_task(store: SqliteStore) -> None:
    provider, clock = Scripted(), FakeClock()
    stuck = await finished_unposted(store, "stuck")
    due = await submitted(store, "due")
    provider.answers["due"] = DONE
    posts = Gated(store, "stuck")
    tracker = tracker_for(store, provider, posts, clock)
    clock.now = stuck.created_at + REDELIVER_EVERY + timedelta(seconds=1)
    try:
        # The pass that retries the stuck post still claims and checks the due task.
        async with asyncio.timeout(5):
            assert await tracker.run_once() == 1
            while not posts.delivered:
                await asyncio.sleep(0.01)
        assert [t.id for t in posts.delivered] == [due.id]
        # Passes while it is still posting leave it alone: never two posts at once.
        clock.now += REDELIVER_EVERY
        async with asyncio.timeout(5):
            await tracker.run_once()
        assert posts.started.count("stuck") == 1
        # drain waits for that post too.
        posts.gate.set()
        async with asyncio.timeout(5):
            await tracker.drain()
        assert sorted(t.provider_task_id or "" for t in posts.delivered) == ["due", "stuck"]
    finally:
        posts.gate.set()
        await tracker.stop()


async def test_start_does_not_wait_for_old_posts_and_stop_cancels_them(
    store: SqliteStore,
) -> None:
    provider, clock = Scripted(), FakeClock()
    await finished_unposted(store, "stuck")
    posts = Gated(store, "stuck")
    tracker = tracker_for(store, provider, posts, clock)
    async with asyncio.timeout(5):
        await tracker.start()  # recover() posts in the background
        while "stuck" not in posts.started:
            await asyncio.sleep(0.01)
        await tracker.stop()
    assert posts.cancelled == ["stuck"] and posts.delivered == []
