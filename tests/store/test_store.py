"""The SQLite store: migrations, transitions, the quota ledger, history and due checks.

Each state change is one store call and one transaction; the tests that inject a failure
into its last statement check that nothing of it is left behind."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain import (
    Aspect,
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NewTask,
    NotifyState,
    QuotaLimits,
    QuotaUnit,
    Settle,
    Task,
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


async def reserve(store: SqliteStore, new: NewTask, limits: EffectiveLimits = DEFAULTS) -> Task:
    return (await store.reserve(new, limits)).task


async def succeed(store: SqliteStore, task_id: str) -> Task | None:
    """The video was made: final, and charged with it."""
    return await store.finish(
        task_id,
        TaskUpdate(TaskState.SUCCEEDED, result_url="https://cdn.example/v.mp4"),
        settle=Settle.CHARGE,
    )


async def fail(
    store: SqliteStore, task_id: str, reason: str = "the provider failed"
) -> Task | None:
    """Nothing was made: final, and refunded with it."""
    return await store.finish(
        task_id,
        TaskUpdate(TaskState.FAILED, failure_code="provider_error", failure_reason=reason),
        settle=Settle.REFUND,
    )


def run_sql(path: Path, sql: str) -> None:
    """Change the database behind the store's back (another connection, as an operator
    or a failing disk would)."""
    with closing(sqlite3.connect(path)) as raw:
        raw.executescript(sql)


def query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as raw:
        return list(raw.execute(sql, params))


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
    task = await reserve(old, new_task())
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


async def test_states_only_move_forward(store: SqliteStore, clock: FakeClock) -> None:
    task = await reserve(store, new_task())
    assert task.state is TaskState.QUEUED
    task = await store.mark_submitted(task.id, "p-1", TaskState.SUBMITTED, None, clock.now)
    assert task.provider_task_id == "p-1"
    task = await store.update_task(task.id, TaskUpdate(TaskState.RUNNING, progress=40))
    task = await store.update_task(task.id, TaskUpdate(TaskState.RUNNING, progress=70))
    assert task.progress == 70
    with pytest.raises(IllegalTransitionError):
        await store.update_task(task.id, TaskUpdate(TaskState.SUBMITTED))
    done = await succeed(store, task.id)
    assert done is not None and done.completed_at is not None and done.progress == 100
    assert done.next_check_at is None
    for late in (TaskState.RUNNING, TaskState.SUBMITTED):
        with pytest.raises(IllegalTransitionError):
            await store.update_task(task.id, TaskUpdate(late))
    for final_state in (TaskState.FAILED, TaskState.SUCCEEDED, TaskState.EXPIRED):
        assert await store.finish(task.id, TaskUpdate(final_state), settle=Settle.REFUND) is None
    final = await store.get_task(task.id)
    assert final is not None and final.state is TaskState.SUCCEEDED
    assert final.result_url == "https://cdn.example/v.mp4"


async def test_states_may_skip_forward(store: SqliteStore) -> None:
    task = await reserve(store, new_task())
    failed = await store.finish(
        task.id,
        TaskUpdate(TaskState.FAILED, failure_code="content_policy", failure_reason="no"),
        settle=Settle.REFUND,
    )
    assert failed is not None
    assert failed.state is TaskState.FAILED and failed.failure_code == "content_policy"


async def test_final_states_go_through_finish_only(store: SqliteStore, clock: FakeClock) -> None:
    """A final state without its settlement cannot be written."""
    task = await reserve(store, new_task())
    for final_state in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.EXPIRED):
        with pytest.raises(ValueError, match="finish"):
            await store.update_task(task.id, TaskUpdate(final_state))
    with pytest.raises(ValueError):
        await store.finish(task.id, TaskUpdate(TaskState.RUNNING), settle=Settle.NONE)
    with pytest.raises(ValueError):
        await store.mark_submitted(task.id, "p-1", TaskState.SUCCEEDED, None, clock.now)
    current = await store.get_task(task.id)
    assert current is not None and current.state is TaskState.QUEUED


async def test_finish_settles_once_and_never_both(store: SqliteStore) -> None:
    refunded = await reserve(store, new_task())
    charged = await reserve(store, new_task())
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).user_used_today == 2

    assert await fail(store, refunded.id) is not None
    assert await fail(store, refunded.id) is None
    assert await succeed(store, refunded.id) is None

    assert await succeed(store, charged.id) is not None
    assert await succeed(store, charged.id) is None
    assert await fail(store, charged.id, "late") is None

    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today, status.guild_used_month) == (1, 1, 1)
    kept = await store.get_task(charged.id)
    assert kept is not None and kept.state is TaskState.SUCCEEDED and kept.failure_reason is None


async def test_finishes_run_concurrently_only_count_once(store: SqliteStore) -> None:
    task = await reserve(store, new_task())
    results = await asyncio.gather(*(fail(store, task.id, "x") for _ in range(20)))
    assert sum(result is not None for result in results) == 1
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 0


async def test_200_concurrent_reservations_at_limit_50_get_exactly_50(
    store: SqliteStore,
) -> None:
    limits = EffectiveLimits(daily=50, monthly=1000, user_daily=None, unit=QuotaUnit.VIDEOS)

    async def attempt(user: int) -> bool:
        try:
            await reserve(store, new_task(user), limits)
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
        await reserve(store, new_task(user=1), DEFAULTS)
    with pytest.raises(QuotaExceededError) as exc:
        await reserve(store, new_task(user=1), DEFAULTS)
    assert exc.value.user_message.startswith("You have used your 3 videos for today.")
    assert exc.value.resets_at == datetime(2026, 11, 25, tzinfo=UTC)
    # Someone else may still generate: the per-user cap is per user.
    await reserve(store, new_task(user=2), DEFAULTS)


async def test_limit_zero_turns_generation_off(store: SqliteStore) -> None:
    await store.update_quota_limits(GUILD, QuotaLimits(daily=0))
    with pytest.raises(GenerationDisabledError):
        await reserve(store, new_task(), DEFAULTS)
    assert (await store.guild_tasks(GUILD)).total == 0


async def test_seconds_unit_counts_duration(store: SqliteStore) -> None:
    await store.update_quota_limits(
        GUILD, QuotaLimits(daily=20, user_daily=60, unit=QuotaUnit.SECONDS)
    )
    await reserve(store, new_task(duration=12), DEFAULTS)
    with pytest.raises(QuotaExceededError) as exc:
        await reserve(store, new_task(duration=12), DEFAULTS)
    assert exc.value.user_message.startswith(
        "You asked for 12 s; 8 s of the server's 20 s for today are left. Try a shorter video."
    )
    await reserve(store, new_task(duration=8), DEFAULTS)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.guild_used_today == 20 and status.limits.unit is QuotaUnit.SECONDS


async def test_periods_roll_over_in_utc(store: SqliteStore, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)
    for _ in range(3):
        await reserve(store, new_task(), DEFAULTS)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.user_left_today == 0
    assert status.day_resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert status.month_resets_at == datetime(2026, 12, 1, tzinfo=UTC)

    clock.advance(seconds=60)  # 00:00:30 on 1 December, UTC
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today, status.guild_used_month) == (0, 0, 0)
    assert status.month_resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    await reserve(store, new_task(), DEFAULTS)


async def test_refund_counts_against_the_reservations_period(
    store: SqliteStore, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    task = await reserve(store, new_task(), DEFAULTS)
    clock.advance(minutes=5)
    await reserve(store, new_task(), DEFAULTS)
    await fail(store, task.id, "failed after midnight")
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert status.guild_used_today == 1  # today's own reservation, untouched by yesterday's refund


async def test_reset_user_clears_member_but_not_server(store: SqliteStore) -> None:
    for _ in range(3):
        task = await reserve(store, new_task(user=7), DEFAULTS)
        await succeed(store, task.id)
    assert await store.reset_user_usage(GUILD, 7, actor_id=99) == (3, 24)
    assert await store.reset_user_usage(GUILD, 7, actor_id=99) == (0, 0)
    status = await store.quota_status(GUILD, 7, DEFAULTS)
    assert status.user_used_today == 0 and status.guild_used_today == 3
    await reserve(store, new_task(user=7), DEFAULTS)


async def test_reset_user_during_flight_credits_nothing_twice(store: SqliteStore) -> None:
    """A member reset while a task is in flight, whose task is refunded afterwards, has
    their limit back exactly once: the refund is the only credit for that task."""
    done = await reserve(store, new_task(user=7), DEFAULTS)
    await succeed(store, done.id)
    flying = await reserve(store, new_task(user=7), DEFAULTS)
    assert await store.reset_user_usage(GUILD, 7, actor_id=99) == (1, 8)  # the settled one
    status = await store.quota_status(GUILD, 7, DEFAULTS)
    assert status.user_used_today == 1  # the task in flight still counts
    await fail(store, flying.id)
    status = await store.quota_status(GUILD, 7, DEFAULTS)
    assert status.user_used_today == 0 and status.guild_used_today == 1
    for _ in range(DEFAULTS.user_daily or 0):
        await reserve(store, new_task(user=7), DEFAULTS)
    with pytest.raises(QuotaExceededError):
        await reserve(store, new_task(user=7), DEFAULTS)


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
        ids.append((await reserve(store, new_task(user=5), limits)).id)
    await reserve(store, new_task(user=6), limits)
    await reserve(store, new_task(user=5, guild=GUILD + 1), limits)

    first = await store.user_tasks(GUILD, 5, page=1, page_size=10)
    third = await store.user_tasks(GUILD, 5, page=3, page_size=10)
    assert first.total == 23 and first.pages == 3
    assert [t.id for t in first.tasks] == ids[::-1][:10]
    assert [t.id for t in third.tasks] == ids[::-1][20:]
    assert all(t.user_id == 5 and t.guild_id == GUILD for t in first.tasks + third.tasks)
    assert (await store.user_tasks(GUILD, 5, page=9)).tasks == []


async def test_task_carries_its_owner(store: SqliteStore) -> None:
    task = await reserve(store, new_task(user=42), DEFAULTS)
    found = await store.get_task(task.id)
    assert found is not None and (found.user_id, found.guild_id) == (42, GUILD)
    assert await store.get_task("NOPE99") is None


async def test_due_tasks_are_claimed_once(store: SqliteStore, clock: FakeClock) -> None:
    a = await reserve(store, new_task(), DEFAULTS)
    b = await reserve(store, new_task(), DEFAULTS)
    await store.update_task(a.id, TaskUpdate(TaskState.SUBMITTED, next_check_at=clock.now))
    later = clock.now.replace(hour=13)
    await store.update_task(b.id, TaskUpdate(TaskState.SUBMITTED, next_check_at=later))

    claimed = await store.claim_due_tasks(clock.now, limit=10, lease_seconds=30)
    assert [t.id for t in claimed] == [a.id]
    assert await store.claim_due_tasks(clock.now, limit=10, lease_seconds=30) == []
    await succeed(store, a.id)
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


# One store call per state change


async def test_reserve_returns_the_quota_status_after_it(store: SqliteStore) -> None:
    await reserve(store, new_task(user=1))
    reservation = await store.reserve(new_task(user=1, duration=12), DEFAULTS)
    assert reservation.task.state is TaskState.QUEUED and reservation.task.user_id == 1
    assert reservation.quota == await store.quota_status(GUILD, 1, DEFAULTS)
    assert (reservation.quota.user_left_today, reservation.quota.guild_left_today) == (1, 8)


async def test_reserve_in_seconds_reports_seconds(store: SqliteStore) -> None:
    await store.update_quota_limits(
        GUILD, QuotaLimits(daily=60, user_daily=60, unit=QuotaUnit.SECONDS)
    )
    reservation = await store.reserve(new_task(duration=12), DEFAULTS)
    assert reservation.quota.guild_used_today == 12 and reservation.quota.guild_left_today == 48


async def test_reserve_is_one_transaction(tmp_path: Path, store: SqliteStore) -> None:
    """The ledger entry fails: no task is left behind without its reservation."""
    run_sql(
        tmp_path / "bot.sqlite3",
        "CREATE TRIGGER no_ledger BEFORE INSERT ON quota_ledger"
        " BEGIN SELECT RAISE(ABORT, 'injected ledger failure'); END;",
    )
    with pytest.raises(sqlite3.IntegrityError, match="injected"):
        await store.reserve(new_task(), DEFAULTS)
    assert (await store.guild_tasks(GUILD)).total == 0
    run_sql(tmp_path / "bot.sqlite3", "DROP TRIGGER no_ledger;")
    await reserve(store, new_task())
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 1


async def test_a_refused_reservation_writes_nothing(tmp_path: Path, store: SqliteStore) -> None:
    await store.update_quota_limits(GUILD, QuotaLimits(user_daily=1))
    await reserve(store, new_task())
    with pytest.raises(QuotaExceededError):
        await store.reserve(new_task(), DEFAULTS)
    assert query(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM tasks") == [(1,)]
    assert query(tmp_path / "bot.sqlite3", "SELECT COUNT(*) FROM quota_ledger") == [(1,)]


async def test_reserve_stores_no_interaction_token(tmp_path: Path, store: SqliteStore) -> None:
    await reserve(store, new_task())
    rows = query(tmp_path / "bot.sqlite3", "SELECT interaction_id, interaction_token FROM tasks")
    assert rows == [(None, None)]


async def test_mark_submitted_records_the_providers_answer(
    store: SqliteStore, clock: FakeClock
) -> None:
    task = await reserve(store, new_task())
    check_at = clock.now + timedelta(seconds=30)
    sent = await store.mark_submitted(task.id, "p-9", TaskState.RUNNING, 5, check_at)
    assert (sent.state, sent.provider_task_id, sent.progress) == (TaskState.RUNNING, "p-9", 5)
    assert sent.next_check_at == check_at
    assert await store.task_by_provider_id("demo", "p-9") == sent
    await fail(store, task.id)
    with pytest.raises(IllegalTransitionError):
        await store.mark_submitted(task.id, "p-9", TaskState.SUBMITTED, None, check_at)


async def test_finish_is_one_transaction(tmp_path: Path, store: SqliteStore) -> None:
    """The refund fails to write: the task is not failed either, and a retry does both."""
    task = await reserve(store, new_task())
    run_sql(
        tmp_path / "bot.sqlite3",
        "CREATE TRIGGER no_refund BEFORE INSERT ON quota_ledger WHEN NEW.kind = 'refund'"
        " BEGIN SELECT RAISE(ABORT, 'injected ledger failure'); END;",
    )
    with pytest.raises(sqlite3.IntegrityError, match="injected"):
        await fail(store, task.id)
    unchanged = await store.get_task(task.id)
    assert unchanged == task
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 1

    run_sql(tmp_path / "bot.sqlite3", "DROP TRIGGER no_refund;")
    failed = await fail(store, task.id)
    assert failed is not None and failed.state is TaskState.FAILED
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 0
    notes = query(
        tmp_path / "bot.sqlite3",
        "SELECT kind, videos, note FROM quota_ledger WHERE task_id = ? ORDER BY id",
        (task.id,),
    )
    assert notes == [("reserve", 1, None), ("refund", -1, "the provider failed")]


async def test_finish_delivered_needs_no_post(store: SqliteStore) -> None:
    """A submission the provider refused: the member's answer said so, nothing to post."""
    task = await reserve(store, new_task())
    closed = await store.finish(
        task.id,
        TaskUpdate(TaskState.FAILED, failure_code="content_policy", failure_reason="no"),
        settle=Settle.REFUND,
        delivered=True,
    )
    assert closed is not None and closed.notify_state is NotifyState.POSTED
    assert await store.undelivered_tasks() == []
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 0
    posted = await reserve(store, new_task())
    await succeed(store, posted.id)
    assert [t.id for t in await store.undelivered_tasks()] == [posted.id]


async def test_finish_without_settling_leaves_the_ledger(store: SqliteStore) -> None:
    task = await reserve(store, new_task())
    expired = await store.finish(
        task.id, TaskUpdate(TaskState.EXPIRED, failure_reason="too old"), settle=Settle.NONE
    )
    assert expired is not None and expired.state is TaskState.EXPIRED
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 1


async def test_finish_an_unknown_task_raises(store: SqliteStore) -> None:
    with pytest.raises(KeyError):
        await fail(store, "NOPE99")


async def test_record_delivery_writes_state_message_and_link_together(
    store: SqliteStore,
) -> None:
    task = await reserve(store, new_task())
    await succeed(store, task.id)
    await store.record_delivery(task.id, NotifyState.POSTING)
    posting = await store.get_task(task.id)
    assert posting is not None and posting.notify_state is NotifyState.POSTING
    assert posting.result_url == "https://cdn.example/v.mp4"  # None keeps the link

    shown = "https://bot.example/media/v.mp4"
    await store.record_delivery(task.id, NotifyState.POSTED, 555, result_url=shown)
    posted = await store.get_task(task.id)
    assert posted is not None
    assert (posted.notify_state, posted.result_message_id, posted.result_url) == (
        NotifyState.POSTED,
        555,
        shown,
    )
    assert await store.undelivered_tasks() == []

    await store.forget_result_url(task.id)
    forgotten = await store.get_task(task.id)
    assert forgotten is not None and forgotten.result_url is None
    assert forgotten.result_message_id is None  # the post was deleted too


# Migrations 3 and 4


async def test_upgrade_forgets_stored_interaction_tokens(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "old.sqlite3"
    old = SqliteStore(path, clock=clock)
    await old.open_at(2)
    task = await reserve(old, new_task())
    await old.close()
    run_sql(
        path,
        "UPDATE tasks SET interaction_id = 42, interaction_token = 'secret'"
        f" WHERE id = '{task.id}';",
    )

    upgraded = SqliteStore(path, clock=clock)
    await upgraded.open()
    await upgraded.close()
    assert query(path, "SELECT interaction_id, interaction_token FROM tasks") == [(42, None)]


async def test_upgrade_settles_tasks_a_crash_left_final_but_unsettled(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Before `finish`, the charge or refund followed the final state in a transaction of
    its own; migration 4 does what the tracker's retry after a restart would have done."""
    path = tmp_path / "old.sqlite3"
    old = SqliteStore(path, clock=clock)
    await old.open_at(3)
    made, failed, settled, running = [await reserve(old, new_task(user)) for user in range(4)]
    await fail(old, settled.id, "settled before")
    await old.close()
    run_sql(
        path,
        f"UPDATE tasks SET state = 'succeeded' WHERE id = '{made.id}';"
        f"UPDATE tasks SET state = 'failed', failure_reason = 'gone' WHERE id = '{failed.id}';",
    )

    upgraded = SqliteStore(path, clock=clock)
    await upgraded.open()
    try:
        entries = query(
            path,
            "SELECT task_id, kind, videos, seconds, note FROM quota_ledger"
            " WHERE kind != 'reserve' ORDER BY task_id, kind",
        )
        assert sorted(entries) == sorted(
            [
                (made.id, "charge", 0, 0, None),
                (failed.id, "refund", -1, -8, "gone"),
                (settled.id, "refund", -1, -8, "settled before"),
            ]
        )
        status = await upgraded.quota_status(GUILD, 1, DEFAULTS)
        assert status.guild_used_today == 2  # the made video and the one still running
        assert await fail(upgraded, made.id) is None  # final stays final, not refunded
        assert await fail(upgraded, running.id) is not None
        assert (await upgraded.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 1
    finally:
        await upgraded.close()
