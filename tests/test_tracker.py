"""The tracker on its own: schedule, resilience, idempotent application of reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NewTask,
    QuotaUnit,
    Task,
    TaskState,
)
from bot.errors import ProviderUnavailableError, RateLimitedError
from bot.polling import PollPlanner
from bot.providers.base import (
    Capabilities,
    GenerationRequest,
    Media,
    ProviderState,
    ProviderStatus,
    Submission,
)
from bot.providers.demo import DemoProvider
from bot.schedule import Schedule
from bot.store import SqliteStore
from bot.tracker import Tracker
from bot.url_policy import MediaPolicy
from tests.clock import FakeClock

LIMITS = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)


class Scripted:
    """A provider whose status answers the test decides, per provider task id."""

    name = "scripted"
    display_name = "Scripted"

    def __init__(self) -> None:
        self.capabilities: Capabilities = DemoProvider().capabilities
        self.answers: dict[str, ProviderStatus | Exception | asyncio.Event] = {}
        self.calls: list[str] = []

    async def submit(self, request: GenerationRequest) -> Submission:
        raise NotImplementedError

    async def status(self, provider_task_id: str) -> ProviderStatus:
        self.calls.append(provider_task_id)
        answer = self.answers[provider_task_id]
        if isinstance(answer, asyncio.Event):
            await answer.wait()  # hangs until the test says so
            return ProviderStatus(ProviderState.SUCCEEDED, 100)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise NotImplementedError

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        return Media(data=b"")


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[Task] = []
        self.progressed: list[Task] = []

    async def deliver(self, task: Task) -> None:
        self.delivered.append(task)

    async def progress(self, task: Task) -> None:
        self.progressed.append(task)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "t.sqlite3")
    await db.open()
    yield db
    await db.close()


async def submitted(store: SqliteStore, provider_id: str, **update: object) -> Task:
    reservation = await store.reserve(
        NewTask(1, 2, 3, "scripted", Mode.TEXT, "p", GenerationOptions()), LIMITS
    )
    task = reservation.task
    return await store.mark_submitted(
        task.id, provider_id, TaskState.SUBMITTED, None, next_check_at=task.created_at
    )


def make_tracker(
    store: SqliteStore, provider: Scripted, recorder: Recorder, **kw: object
) -> Tracker:
    return Tracker(
        store=store,
        provider=provider,
        deliverer=recorder,
        polling=PollPlanner.fixed(Schedule(first_delay=0.01, interval=0.01)),
        max_age=timedelta(hours=1),
        # The scripted videos live at https://cdn/...: that origin stands in for the
        # provider's own address, so no test looks a name up in real DNS.
        **{"media_policy": MediaPolicy(["https://cdn"]), **kw},  # type: ignore[arg-type]
    )


def test_schedule_uses_progress_to_poll_less_early_and_more_near_the_end() -> None:
    schedule = Schedule(first_delay=60, interval=10)
    assert schedule.next_delay(70, None) == 10
    assert schedule.next_delay(30, None) == 30  # not before the first check
    early = schedule.next_delay(70, 10)  # 10 % after 70 s: about 630 s to go
    late = schedule.next_delay(200, 95)  # nearly done
    assert early > late and late == 10
    assert early <= 60  # never more than six intervals
    with_callbacks = Schedule(first_delay=60, interval=10, callbacks=True)
    assert with_callbacks.next_delay(30, None) >= 40  # polling is only a safety net


async def test_a_hung_provider_call_does_not_block_the_others(store: SqliteStore) -> None:
    provider, recorder = Scripted(), Recorder()
    hang = asyncio.Event()
    provider.answers["stuck"] = hang
    provider.answers["a"] = ProviderStatus(ProviderState.SUCCEEDED, 100)
    provider.answers["b"] = ProviderStatus(ProviderState.FAILED, failure_message="no")
    await submitted(store, "stuck")
    await submitted(store, "a")
    await submitted(store, "b")
    tracker = make_tracker(store, provider, recorder, concurrency=2)
    await tracker.start()
    try:
        async with asyncio.timeout(5):
            while len(recorder.delivered) < 2:
                await asyncio.sleep(0.02)
        # Both others were delivered while the stuck call still hung.
        assert {t.provider_task_id for t in recorder.delivered} == {"a", "b"}
    finally:
        hang.set()
        await tracker.stop()


async def test_the_loop_survives_a_failing_cycle(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, recorder = Scripted(), Recorder()
    provider.answers["a"] = ProviderStatus(ProviderState.SUCCEEDED, 100)
    await submitted(store, "a")
    real = store.claim_due_tasks
    failures = {"left": 3}

    async def flaky(*args: object, **kwargs: object) -> list[Task]:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("database is locked")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "claim_due_tasks", flaky)
    tracker = make_tracker(store, provider, recorder, tick_seconds=0.01)
    await tracker.start()
    try:
        async with asyncio.timeout(5):
            while not recorder.delivered:
                await asyncio.sleep(0.02)
    finally:
        await tracker.stop()
    assert failures["left"] == 0


async def test_reports_apply_once_and_never_go_backwards(store: SqliteStore) -> None:
    provider, recorder = Scripted(), Recorder()
    task = await submitted(store, "a")
    tracker = make_tracker(store, provider, recorder)
    done = ProviderStatus(ProviderState.SUCCEEDED, 100, video_url="https://cdn/v.mp4")
    await tracker.apply(task.id, ProviderStatus(ProviderState.RUNNING, 40))
    await asyncio.gather(*(tracker.apply(task.id, done) for _ in range(5)))
    await tracker.apply(task.id, ProviderStatus(ProviderState.RUNNING, 10))
    await tracker.apply(task.id, ProviderStatus(ProviderState.FAILED, failure_message="late"))
    final = await store.get_task(task.id)
    assert final is not None and final.state is TaskState.SUCCEEDED
    assert final.result_url == "https://cdn/v.mp4"
    assert len(recorder.delivered) == 1
    status = await store.quota_status(1, 3, LIMITS)
    assert status.guild_used_today == 1  # charged, not refunded by the late failure


async def test_progress_never_goes_down(store: SqliteStore) -> None:
    provider, recorder = Scripted(), Recorder()
    task = await submitted(store, "a")
    tracker = make_tracker(store, provider, recorder)
    await tracker.apply(task.id, ProviderStatus(ProviderState.RUNNING, 60))
    await tracker.apply(task.id, ProviderStatus(ProviderState.RUNNING, 30))
    current = await store.get_task(task.id)
    assert current is not None and current.progress == 60


async def test_rate_limits_and_errors_push_the_next_check_back(store: SqliteStore) -> None:
    provider, recorder = Scripted(), Recorder()
    clock = FakeClock()
    limited = await submitted(store, "limited")
    broken = await submitted(store, "broken")
    provider.answers["limited"] = RateLimitedError("scripted", retry_after=120)
    provider.answers["broken"] = ProviderUnavailableError("scripted", "502")
    tracker = make_tracker(store, provider, recorder, clock=clock)
    clock.now = limited.created_at + timedelta(seconds=1)
    assert await tracker.run_once() == 2
    await tracker.drain()
    after_limit = await store.get_task(limited.id)
    after_error = await store.get_task(broken.id)
    assert after_limit is not None and after_limit.next_check_at is not None
    assert (after_limit.next_check_at - clock.now).total_seconds() >= 120
    assert after_error is not None and after_error.next_check_at is not None
    assert after_error.next_check_at > clock.now and after_error.state is TaskState.SUBMITTED
    assert recorder.delivered == []


async def test_a_task_lost_between_reservation_and_submission_is_refunded(
    store: SqliteStore,
) -> None:
    provider, recorder = Scripted(), Recorder()
    clock = FakeClock()
    reservation = await store.reserve(
        NewTask(1, 2, 3, "scripted", Mode.TEXT, "p", GenerationOptions()), LIMITS
    )
    task = reservation.task
    clock.now = task.created_at + timedelta(minutes=10)
    tracker = make_tracker(store, provider, recorder, clock=clock)
    await tracker.recover()
    final = await store.get_task(task.id)
    assert final is not None and final.state is TaskState.FAILED
    assert (await store.quota_status(1, 3, LIMITS)).guild_used_today == 0
    assert [t.id for t in recorder.delivered] == [task.id]
