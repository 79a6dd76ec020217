"""Background loops stop when asked, even when woken in the same moment.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` swallows a cancellation that lands
in the same loop iteration as the event being set, so a loop waiting that way ran on
and `stop()` hung (a test run hung in teardown this way). These fail with the old wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.discord.modlog import ModLogPoster
from bot.store import SqliteStore
from bot.waiting import wake_or_timeout
from tests.test_tracker import Recorder, Scripted, make_tracker


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "t.sqlite3")
    await db.open()
    yield db
    await db.close()


async def test_a_cancellation_is_kept_when_the_event_is_set_at_the_same_moment() -> None:
    for _ in range(50):
        event = asyncio.Event()

        async def loop(event: asyncio.Event) -> None:
            while True:
                event.clear()
                await wake_or_timeout(event, 10)

        runner = asyncio.create_task(loop(event))
        await asyncio.sleep(0)
        event.set()
        runner.cancel()
        done, _ = await asyncio.wait({runner}, timeout=1)
        assert done, "the loop swallowed its cancellation"


async def stops_promptly(stop: Any, runner: asyncio.Task[None] | None) -> bool:
    """Whether `stop()` returns within 2 s; if not, cancel the runner again (no longer
    racing a wake-up) so the test still ends."""
    stopping = asyncio.create_task(stop())
    done, _ = await asyncio.wait({stopping}, timeout=2)
    if not done and runner is not None:
        runner.cancel()
        await stopping
    return bool(done)


async def test_the_tracker_stops_when_woken_as_it_stops(store: SqliteStore) -> None:
    tracker = make_tracker(store, Scripted(), Recorder(), tick_seconds=30)
    await tracker.start()
    await asyncio.sleep(0.1)  # parked in its wait
    runner = tracker._runner
    tracker.wake()
    assert await stops_promptly(tracker.stop, runner)


async def test_the_log_poster_stops_when_woken_as_it_stops(store: SqliteStore) -> None:
    moderation: Any = object()  # nothing is pending: the poster never needs it
    poster = ModLogPoster(client=object(), store=store, moderation=moderation)  # type: ignore[arg-type]
    await poster.start()
    await asyncio.sleep(0.1)
    runner = poster._runner
    poster.wake()
    assert await stops_promptly(poster.stop, runner)
