"""The tracker and held requests (approval mode): a held request is neither lost in a
restart nor checked with the provider; it expires when due, refunded; once approved,
its age and timings count from the approval, not from the request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import (
    Approval,
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NewTask,
    QuotaUnit,
    TaskState,
)
from bot.providers.base import ProviderState, ProviderStatus
from bot.store import SqliteStore
from tests.clock import FakeClock
from tests.test_tracker import Recorder, Scripted, make_tracker

LIMITS = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "t.sqlite3", clock=clock)
    await db.open()
    yield db
    await db.close()


async def held(store: SqliteStore, clock: FakeClock, hours: float = 24) -> str:
    new = NewTask(
        1, 2, 3, "scripted", Mode.TEXT, "p", GenerationOptions(),
        hold_until=clock.now + timedelta(hours=hours),
    )  # fmt: skip
    return (await store.reserve(new, LIMITS)).task.id


async def used(store: SqliteStore) -> int:
    return (await store.quota_status(1, 3, LIMITS)).user_used_today


async def test_a_restart_leaves_a_held_request_waiting(
    store: SqliteStore, clock: FakeClock
) -> None:
    task_id = await held(store, clock)
    clock.advance(hours=2)  # far past the grace for requests lost between reserve and send
    provider, recorder = Scripted(), Recorder()
    tracker = make_tracker(store, provider, recorder, clock=clock)
    await tracker.recover()
    assert await tracker.run_once() == 0
    await tracker.drain()
    task = await store.get_task(task_id)
    assert task is not None and task.state is TaskState.QUEUED
    assert task.approval is Approval.PENDING and await used(store) == 1
    assert not recorder.delivered and not provider.calls


async def test_an_undecided_request_expires_when_due_refunded(
    store: SqliteStore, clock: FakeClock
) -> None:
    task_id = await held(store, clock, hours=1)
    provider, recorder = Scripted(), Recorder()
    tracker = make_tracker(store, provider, recorder, clock=clock)
    clock.advance(minutes=59)
    assert await tracker.run_once() == 0
    clock.advance(minutes=2)
    assert await tracker.run_once() == 1
    await tracker.drain()
    task = await store.get_task(task_id)
    assert task is not None and task.state is TaskState.FAILED
    assert task.approval is Approval.EXPIRED and task.failure_code == "approval_expired"
    assert [t.id for t in recorder.delivered] == [task_id]
    assert await used(store) == 0 and not provider.calls


async def test_an_approved_request_counts_its_age_from_the_approval(
    store: SqliteStore, clock: FakeClock
) -> None:
    task_id = await held(store, clock)
    clock.advance(hours=3)  # the tracker's maximum age is one hour
    approved = await store.decide(task_id, 1, Approval.APPROVED, 99)
    assert approved is not None and approved.started_at == clock.now
    assert approved.started_at - approved.created_at == timedelta(hours=3)
    await store.mark_submitted(task_id, "a", TaskState.SUBMITTED, None, clock.now)
    provider, recorder = Scripted(), Recorder()
    provider.answers["a"] = ProviderStatus(ProviderState.RUNNING, 40)
    tracker = make_tracker(store, provider, recorder, clock=clock)
    assert await tracker.run_once() == 1
    await tracker.drain()
    task = await store.get_task(task_id)
    assert task is not None and task.state is TaskState.RUNNING  # not expired
    assert provider.calls == ["a"]
