"""The provider's concurrent-task cap counts unfinished tasks in the store, so no way a
task ends can leave its slot taken (issue 10, item 4).

Each test takes the one slot of a cap of 1 with a real task in a real store, ends that
task the way production does (a callback through the adapter, expiry, an unknown-task
answer), and then needs the slot back for the next submit. Before, the cap remembered
ids in memory and freed one only when a status or callback passing through it named
the same id: none of these three did.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bot.domain import GenerationOptions, Mode, NewTask, Settle, Task, TaskState, TaskUpdate
from bot.errors import ProviderBusyError, UnknownProviderTaskError
from bot.polling import PollPlanner
from bot.providers.apixo import ApixoProvider
from bot.providers.base import (
    Capabilities,
    GenerationRequest,
    Media,
    ProviderState,
    ProviderStatus,
    Submission,
)
from bot.providers.demo import DemoProvider
from bot.providers.limits import RECORD_GRACE_SECONDS, TaskCap
from bot.schedule import Schedule
from bot.store import SqliteStore
from bot.tracker import Tracker
from bot.url_policy import MediaPolicy
from tests.clock import FakeClock
from tests.conftest import running_world
from tests.fakes import FakeDiscord
from tests.fakes.providers import FakeApixo
from tests.helpers import eventually, fast_http, free_port, posts
from tests.test_callbacks_e2e import listener
from tests.test_tracker import LIMITS, Recorder

REQUEST = GenerationRequest(Mode.TEXT, "a lighthouse", GenerationOptions(duration_seconds=8))


class Numbered:
    """A provider that accepts every submit (ids p1, p2...) and answers status checks as
    the test says."""

    name = "numbered"
    display_name = "Numbered"

    def __init__(self) -> None:
        self.capabilities: Capabilities = DemoProvider().capabilities
        self.submitted = 0
        self.answers: dict[str, ProviderStatus | Exception] = {}

    async def submit(self, request: GenerationRequest) -> Submission:
        self.submitted += 1
        return Submission(f"p{self.submitted}")

    async def status(self, provider_task_id: str) -> ProviderStatus:
        answer = self.answers[provider_task_id]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise NotImplementedError

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        return Media(data=b"")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "slots.sqlite3", clock=clock)
    await db.open()
    yield db
    await db.close()


def capped(store: SqliteStore, inner: Numbered | ApixoProvider, limit: int = 1) -> TaskCap:
    """The cap as the bot wires it (`bot.discord.app`): counting this store's tasks."""
    return TaskCap(
        inner,
        limit,
        count_active=functools.partial(store.count_active_provider_tasks, inner.name),
    )


async def record(store: SqliteStore, provider: str, submission: Submission) -> Task:
    """What the service does around a submit: reserve, then record the provider's id."""
    reservation = await store.reserve(
        NewTask(1, 2, 3, provider, Mode.TEXT, "a lighthouse", GenerationOptions()), LIMITS
    )
    task = reservation.task
    return await store.mark_submitted(
        task.id, submission.provider_task_id, TaskState.SUBMITTED, None, task.created_at
    )


def tracker_for(
    store: SqliteStore, provider: TaskCap, clock: FakeClock, trusted: str = "https://cdn"
) -> Tracker:
    return Tracker(
        store=store,
        provider=provider,
        deliverer=Recorder(),
        polling=PollPlanner.fixed(Schedule(first_delay=10, interval=10)),
        max_age=timedelta(hours=1),
        clock=clock,
        media_policy=MediaPolicy([trusted]),
    )


async def test_an_apixo_task_finished_by_callback_frees_its_slot(
    store: SqliteStore, clock: FakeClock
) -> None:
    async with FakeApixo(generation_seconds=100) as fake, httpx.AsyncClient(timeout=5) as client:
        apixo = ApixoProvider(fast_http(client, "apixo", fake.base_url, fake.api_key))
        cap = capped(store, apixo)
        tracker = tracker_for(store, cap, clock, trusted=fake.base_url)
        submission = await cap.submit(REQUEST)
        task = await record(store, "apixo", submission)
        with pytest.raises(ProviderBusyError):
            await cap.submit(REQUEST)

        fake_id = submission.provider_task_id.rpartition(":")[2]
        fake.finish(fake_id)
        body = json.dumps(fake.status_body(fake.tasks[fake_id])).encode()
        status = cap.parse_callback({}, body)  # as the webhook listener does
        # The callback names the bare id; the adapter's own is `model:id`.
        assert status.provider_task_id == fake_id != submission.provider_task_id
        finished = await tracker.apply(task.id, status)
        assert finished is not None and finished.state is TaskState.SUCCEEDED

        assert await cap.active() == 0
        assert (await cap.submit(REQUEST)).provider_task_id  # the slot is free again


async def test_a_task_expired_at_its_maximum_age_frees_its_slot(
    store: SqliteStore, clock: FakeClock
) -> None:
    inner = Numbered()
    cap = capped(store, inner)
    tracker = tracker_for(store, cap, clock)
    submission = await cap.submit(REQUEST)
    task = await record(store, inner.name, submission)
    inner.answers[submission.provider_task_id] = ProviderStatus(ProviderState.RUNNING, 10)
    with pytest.raises(ProviderBusyError):
        await cap.submit(REQUEST)

    clock.advance(hours=2)  # past max_age: the tracker expires it without asking
    assert await tracker.run_once() == 1
    await tracker.drain()
    expired = await store.get_task(task.id)
    assert expired is not None and expired.state is TaskState.EXPIRED

    assert (await cap.submit(REQUEST)).provider_task_id == "p2"


async def test_a_task_the_provider_no_longer_knows_frees_its_slot(
    store: SqliteStore, clock: FakeClock
) -> None:
    inner = Numbered()
    cap = capped(store, inner)
    tracker = tracker_for(store, cap, clock)
    submission = await cap.submit(REQUEST)
    task = await record(store, inner.name, submission)
    inner.answers[submission.provider_task_id] = UnknownProviderTaskError(
        inner.name, submission.provider_task_id, "404 task not found"
    )
    with pytest.raises(ProviderBusyError):
        await cap.submit(REQUEST)

    clock.advance(minutes=5)  # old enough that "unknown" is not "not listed yet"
    assert await tracker.run_once() == 1
    await tracker.drain()
    failed = await store.get_task(task.id)
    assert failed is not None and failed.state is TaskState.FAILED

    assert (await cap.submit(REQUEST)).provider_task_id == "p2"


async def test_unfinished_tasks_hold_their_slots_across_a_restart(store: SqliteStore) -> None:
    first = Numbered()
    await record(store, first.name, await capped(store, first, limit=2).submit(REQUEST))
    await record(store, first.name, await capped(store, first, limit=2).submit(REQUEST))
    # A new process: nothing in memory, the store still says two are running.
    with pytest.raises(ProviderBusyError):
        await capped(store, Numbered(), limit=2).submit(REQUEST)
    other = await store.reserve(
        NewTask(1, 2, 3, "another", Mode.TEXT, "x", GenerationOptions()), LIMITS
    )
    await store.update_task(other.task.id, TaskUpdate(TaskState.SUBMITTED, provider_task_id="p1"))
    assert await store.count_active_provider_tasks("numbered") == 2  # only its own provider's


async def test_a_task_counts_once_before_and_after_its_id_is_recorded(
    store: SqliteStore,
) -> None:
    """Between a submit returning and the caller recording the id, the store cannot see the
    task; the cap still counts it, and once recorded it is not counted twice."""
    now = [0.0]
    inner = Numbered()
    cap = TaskCap(
        inner,
        2,
        count_active=functools.partial(store.count_active_provider_tasks, inner.name),
        clock=lambda: now[0],
    )
    first = await cap.submit(REQUEST)
    assert await cap.active() == 1  # not recorded yet, still counted
    task = await record(store, inner.name, first)
    assert await cap.active() == 1  # recorded: counted by the store, not twice
    await cap.submit(REQUEST)
    with pytest.raises(ProviderBusyError):
        await cap.submit(REQUEST)
    # The second was never recorded (the caller failed): it is let go after the grace.
    now[0] += RECORD_GRACE_SECONDS + 1
    assert await cap.active() == 1
    await store.finish(
        task.id,
        TaskUpdate(TaskState.SUCCEEDED, result_url="https://x/v"),
        settle=Settle.CHARGE,
    )
    assert await cap.active() == 0


async def test_concurrent_submits_cannot_overshoot_while_the_store_is_asked(
    store: SqliteStore,
) -> None:
    inner = Numbered()
    cap = capped(store, inner, limit=3)
    results = await asyncio.gather(*(cap.submit(REQUEST) for _ in range(8)), return_exceptions=True)
    assert sum(isinstance(r, Submission) for r in results) == 3
    assert sum(isinstance(r, ProviderBusyError) for r in results) == 5
    assert inner.submitted == 3


async def test_the_bot_frees_a_slot_when_a_callback_ends_the_task(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real bot, its listener and APIXO (cap lowered to 1): the first video ends by
    callback only (polling is a minute away), and the next command is accepted."""
    one = dataclasses.replace(ApixoProvider.capabilities, max_concurrent_tasks=1)
    monkeypatch.setattr(ApixoProvider, "capabilities", one)
    port = free_port()
    async with FakeApixo(generation_seconds=0.3) as fake:
        async with running_world(
            fake_discord, tmp_path, **listener(port), **fake.settings_overrides()
        ) as world:
            for number, prompt in enumerate(["a kite over the sea", "a kite at night"], 1):
                answer = await world.fake.send_command(
                    world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
                )
                await answer.wait_final()
                assert "on its way" in answer.text(), answer.all_text()
                await eventually(lambda n=number: len(posts(world)) == n)  # type: ignore[misc]
    assert len(fake.requests_for("create")) == 2
    assert fake.requests_for("status") == []  # ended by callbacks alone
