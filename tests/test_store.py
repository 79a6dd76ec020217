"""The SQLite store: migrations, transitions, the quota ledger, history and due checks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain import (
    Aspect,
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NewTask,
    QuotaLimits,
    QuotaUnit,
    TaskState,
    TaskUpdate,
)
from bot.errors import GenerationDisabledError, IllegalTransitionError, QuotaExceededError
from bot.store import SqliteStore, create_store
from bot.store.sqlite import load_migrations
from tests.clock import FakeClock

DEFAULTS = EffectiveLimits(daily=10, monthly=100, user_daily=3, unit=QuotaUnit.VIDEOS)
GUILD = 1000


def new_task(user: int = 1, *, guild: int = GUILD, duration: int = 8) -> NewTask:
    return NewTask(
        guild_id=guild,
        channel_id=2000,
        user_id=user,
        provider="demo",
        mode=Mode.TEXT,
        prompt="a cat surfing",
        options=GenerationOptions(duration_seconds=duration),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "bot.sqlite3", clock=clock)
    await db.open()
    yield db
    await db.close()


async def test_fresh_database_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "bot.sqlite3"
    store = create_store(f"sqlite:///{path}")
    await store.open()
    latest = load_migrations()[-1][0]
    assert await store.schema_version() == latest
    await store.close()
    # Re-opening applies nothing twice (a second CREATE TABLE would raise).
    await store.open()
    assert await store.schema_version() == latest
    await store.close()
    with sqlite3.connect(path) as raw:
        versions = [r[0] for r in raw.execute("SELECT version FROM schema_migrations")]
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
    assert versions == [v for v, _, _ in load_migrations()]
    assert mode == "wal"


async def test_old_database_is_upgraded_with_its_data(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "old.sqlite3"
    old = SqliteStore(path, clock=clock)
    await old.open_at(1)
    assert await old.schema_version() == 1
    task = await old.reserve(new_task(), DEFAULTS)
    await old.close()
    with sqlite3.connect(path) as raw:
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "tasks_user_history" not in indexes

    upgraded = SqliteStore(path, clock=clock)
    await upgraded.open()
    assert await upgraded.schema_version() == load_migrations()[-1][0]
    kept = await upgraded.get_task(task.id)
    assert kept is not None and kept.prompt == "a cat surfing"
    status = await upgraded.quota_status(GUILD, 1, DEFAULTS)
    assert status.guild_used_today == 1
    await upgraded.close()
    with sqlite3.connect(path) as raw:
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"tasks_user_history", "tasks_due"} <= indexes


async def test_states_only_move_forward(store: SqliteStore) -> None:
    task = await store.reserve(new_task(), DEFAULTS)
    assert task.state is TaskState.QUEUED
    task = await store.update_task(task.id, TaskUpdate(TaskState.SUBMITTED, provider_task_id="p-1"))
    assert task.provider_task_id == "p-1"
    task = await store.update_task(task.id, TaskUpdate(TaskState.RUNNING, progress=40))
    task = await store.update_task(task.id, TaskUpdate(TaskState.RUNNING, progress=70))
    assert task.progress == 70
    with pytest.raises(IllegalTransitionError):
        await store.update_task(task.id, TaskUpdate(TaskState.SUBMITTED))
    task = await store.update_task(
        task.id, TaskUpdate(TaskState.SUCCEEDED, result_url="https://cdn.example/v.mp4")
    )
    assert task.completed_at is not None and task.progress == 100
    for late in (TaskState.FAILED, TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.EXPIRED):
        with pytest.raises(IllegalTransitionError):
            await store.update_task(task.id, TaskUpdate(late))
    final = await store.get_task(task.id)
    assert final is not None and final.state is TaskState.SUCCEEDED
    assert final.result_url == "https://cdn.example/v.mp4"


async def test_states_may_skip_forward(store: SqliteStore) -> None:
    task = await store.reserve(new_task(), DEFAULTS)
    failed = await store.update_task(
        task.id, TaskUpdate(TaskState.FAILED, failure_code="content_policy", failure_reason="no")
    )
    assert failed.state is TaskState.FAILED and failed.failure_code == "content_policy"


async def test_refund_and_charge_are_idempotent_and_exclusive(store: SqliteStore) -> None:
    refunded = await store.reserve(new_task(), DEFAULTS)
    charged = await store.reserve(new_task(), DEFAULTS)
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).user_used_today == 2

    assert await store.refund(refunded.id, "provider refused") is True
    assert await store.refund(refunded.id, "provider refused") is False
    assert await store.charge(refunded.id) is False

    assert await store.charge(charged.id) is True
    assert await store.charge(charged.id) is False
    assert await store.refund(charged.id, "late") is False

    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today, status.guild_used_month) == (1, 1, 1)


async def test_refunds_run_concurrently_only_count_once(store: SqliteStore) -> None:
    task = await store.reserve(new_task(), DEFAULTS)
    results = await asyncio.gather(*(store.refund(task.id, "x") for _ in range(20)))
    assert results.count(True) == 1
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 0


async def test_200_concurrent_reservations_at_limit_50_get_exactly_50(
    store: SqliteStore,
) -> None:
    limits = EffectiveLimits(daily=50, monthly=1000, user_daily=None, unit=QuotaUnit.VIDEOS)

    async def attempt(user: int) -> bool:
        try:
            await store.reserve(new_task(user), limits)
        except QuotaExceededError:
            return False
        return True

    results = await asyncio.gather(*(attempt(n % 37) for n in range(200)))
    assert results.count(True) == 50
    status = await store.quota_status(GUILD, 1, limits)
    assert status.guild_used_today == 50 and status.guild_left_today == 0
    assert (await store.guild_tasks(GUILD, page_size=1)).total == 50


async def test_user_and_guild_limits_and_messages(store: SqliteStore, clock: FakeClock) -> None:
    for _ in range(3):
        await store.reserve(new_task(user=1), DEFAULTS)
    with pytest.raises(QuotaExceededError) as exc:
        await store.reserve(new_task(user=1), DEFAULTS)
    assert exc.value.user_message.startswith("You have used your 3 videos for today.")
    assert exc.value.resets_at == datetime(2026, 11, 25, tzinfo=UTC)
    # Someone else may still generate: the per-user cap is per user.
    await store.reserve(new_task(user=2), DEFAULTS)


async def test_limit_zero_turns_generation_off(store: SqliteStore) -> None:
    await store.update_quota_limits(GUILD, QuotaLimits(daily=0))
    with pytest.raises(GenerationDisabledError):
        await store.reserve(new_task(), DEFAULTS)
    assert (await store.guild_tasks(GUILD)).total == 0


async def test_seconds_unit_counts_duration(store: SqliteStore) -> None:
    await store.update_quota_limits(
        GUILD, QuotaLimits(daily=20, user_daily=60, unit=QuotaUnit.SECONDS)
    )
    await store.reserve(new_task(duration=12), DEFAULTS)
    with pytest.raises(QuotaExceededError) as exc:
        await store.reserve(new_task(duration=12), DEFAULTS)
    assert exc.value.user_message.startswith("This server has used its 20 seconds for today.")
    await store.reserve(new_task(duration=8), DEFAULTS)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.guild_used_today == 20 and status.limits.unit is QuotaUnit.SECONDS


async def test_periods_roll_over_in_utc(store: SqliteStore, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)
    for _ in range(3):
        await store.reserve(new_task(), DEFAULTS)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.user_left_today == 0
    assert status.day_resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert status.month_resets_at == datetime(2026, 12, 1, tzinfo=UTC)

    clock.advance(seconds=60)  # 00:00:30 on 1 December, UTC
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today, status.guild_used_month) == (0, 0, 0)
    assert status.month_resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    await store.reserve(new_task(), DEFAULTS)


async def test_refund_counts_against_the_reservations_period(
    store: SqliteStore, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    task = await store.reserve(new_task(), DEFAULTS)
    clock.advance(minutes=5)
    await store.reserve(new_task(), DEFAULTS)
    await store.refund(task.id, "failed after midnight")
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.guild_used_today == 1  # today's own reservation, untouched by yesterday's refund


async def test_reset_user_clears_member_but_not_server(store: SqliteStore) -> None:
    for _ in range(3):
        task = await store.reserve(new_task(user=7), DEFAULTS)
        await store.charge(task.id)
    assert await store.reset_user_usage(GUILD, 7, actor_id=99) == (3, 24)
    assert await store.reset_user_usage(GUILD, 7, actor_id=99) == (0, 0)
    status = await store.quota_status(GUILD, 7, DEFAULTS)
    assert status.user_used_today == 0 and status.guild_used_today == 3
    await store.reserve(new_task(user=7), DEFAULTS)


async def test_reset_user_during_flight_credits_nothing_twice(store: SqliteStore) -> None:
    """A member reset while a task is in flight, whose task is refunded afterwards, has
    their limit back exactly once: the refund is the only credit for that task."""
    done = await store.reserve(new_task(user=7), DEFAULTS)
    await store.charge(done.id)
    flying = await store.reserve(new_task(user=7), DEFAULTS)
    assert await store.reset_user_usage(GUILD, 7, actor_id=99) == (1, 8)  # the settled one
    status = await store.quota_status(GUILD, 7, DEFAULTS)
    assert status.user_used_today == 1  # the task in flight still counts
    await store.refund(flying.id, "the provider failed")
    status = await store.quota_status(GUILD, 7, DEFAULTS)
    assert status.user_used_today == 0 and status.guild_used_today == 1
    for _ in range(DEFAULTS.user_daily or 0):
        await store.reserve(new_task(user=7), DEFAULTS)
    with pytest.raises(QuotaExceededError):
        await store.reserve(new_task(user=7), DEFAULTS)


async def test_update_limits_returns_before_and_after(store: SqliteStore) -> None:
    before, after = await store.update_quota_limits(GUILD, QuotaLimits(daily=5))
    assert before == QuotaLimits() and after == QuotaLimits(daily=5)
    before, after = await store.update_quota_limits(GUILD, QuotaLimits(user_daily=2))
    assert before == QuotaLimits(daily=5) and after == QuotaLimits(daily=5, user_daily=2)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.limits == EffectiveLimits(5, 100, 2, QuotaUnit.VIDEOS)
    other = await store.quota_status(GUILD + 1, 1, DEFAULTS)
    assert other.limits == DEFAULTS


async def test_history_is_per_user_newest_first_and_paged(
    store: SqliteStore, clock: FakeClock
) -> None:
    limits = EffectiveLimits(daily=100, monthly=100, user_daily=None, unit=QuotaUnit.VIDEOS)
    ids = []
    for _ in range(23):
        clock.advance(seconds=1)
        ids.append((await store.reserve(new_task(user=5), limits)).id)
    await store.reserve(new_task(user=6), limits)
    await store.reserve(new_task(user=5, guild=GUILD + 1), limits)

    first = await store.user_tasks(GUILD, 5, page=1, page_size=10)
    third = await store.user_tasks(GUILD, 5, page=3, page_size=10)
    assert first.total == 23 and first.pages == 3
    assert [t.id for t in first.tasks] == ids[::-1][:10]
    assert [t.id for t in third.tasks] == ids[::-1][20:]
    assert all(t.user_id == 5 and t.guild_id == GUILD for t in first.tasks + third.tasks)
    assert (await store.user_tasks(GUILD, 5, page=9)).tasks == []


async def test_task_carries_its_owner(store: SqliteStore) -> None:
    task = await store.reserve(new_task(user=42), DEFAULTS)
    found = await store.get_task(task.id)
    assert found is not None and (found.user_id, found.guild_id) == (42, GUILD)
    assert await store.get_task("NOPE99") is None


async def test_due_tasks_are_claimed_once(store: SqliteStore, clock: FakeClock) -> None:
    a = await store.reserve(new_task(), DEFAULTS)
    b = await store.reserve(new_task(), DEFAULTS)
    await store.update_task(a.id, TaskUpdate(TaskState.SUBMITTED, next_check_at=clock.now))
    later = clock.now.replace(hour=13)
    await store.update_task(b.id, TaskUpdate(TaskState.SUBMITTED, next_check_at=later))

    claimed = await store.claim_due_tasks(clock.now, limit=10, lease_seconds=30)
    assert [t.id for t in claimed] == [a.id]
    assert await store.claim_due_tasks(clock.now, limit=10, lease_seconds=30) == []
    await store.update_task(a.id, TaskUpdate(TaskState.SUCCEEDED))
    clock.advance(hours=2)
    assert [t.id for t in await store.claim_due_tasks(clock.now, 10, 30)] == [b.id]


async def test_allowed_channels_and_default_options(store: SqliteStore) -> None:
    assert await store.add_allowed_channel(GUILD, 55, actor_id=1) is True
    assert await store.add_allowed_channel(GUILD, 55, actor_id=1) is False
    await store.set_default_options(GUILD, GenerationOptions(aspect=Aspect.PORTRAIT))
    settings = await store.guild_settings(GUILD)
    assert settings.allowed_channel_ids == frozenset({55})
    assert settings.default_options == GenerationOptions(aspect=Aspect.PORTRAIT)
    assert await store.remove_allowed_channel(GUILD, 55) is True
    assert (await store.guild_settings(GUILD)).allowed_channel_ids == frozenset()
