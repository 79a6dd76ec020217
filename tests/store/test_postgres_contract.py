"""The PostgreSQL store (`bot.store.postgres`) against the `Store` contract the SQLite
store's tests pin down: quota, a task's life, due checks, governance, provider health,
and migrations under concurrency.

Needs a server at TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test);
without one every test is skipped, unless REQUIRE_POSTGRES=1 makes that a failure. Each
test works in a schema of its own, dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from bot.domain import (
    Approval,
    EffectiveLimits,
    GenerationOptions,
    GenerationTime,
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
from bot.errors import BotError, GenerationDisabledError, IllegalTransitionError, QuotaExceededError
from bot.modlog import LogEntry, LogKind, LogState
from bot.providers.health import PROBE_SECONDS, Availability, availability
from bot.store.postgres import PostgresStore, load_migrations, redact
from tests.clock import FakeClock

DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULTS = EffectiveLimits(daily=10, monthly=100, user_daily=3, unit=QuotaUnit.VIDEOS)
GUILD, OTHER_GUILD, MOD, LOG_CHANNEL, ARTISTS, PATRONS = 1000, 1001, 77, 3000, 502, 503
BIG_ID = 1_234_567_890_123_456_789  # Discord ids need BIGINT


@pytest.fixture(scope="module")
def server() -> str:
    async def ping() -> str | None:
        try:
            conn = await asyncpg.connect(DSN, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            return f"{type(error).__name__}: {error}"
        await conn.close()
        return None

    problem = asyncio.run(ping())
    if problem is not None:
        message = f"no PostgreSQL server at {redact(DSN)} ({problem})"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return DSN


@pytest.fixture
async def schema(server: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex}"
    yield name
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(server: str, schema: str, clock: FakeClock) -> AsyncIterator[PostgresStore]:
    db = PostgresStore(server, clock=clock, schema=schema)
    await db.open()
    yield db
    await db.close()


async def query(store: PostgresStore, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the tables behind the store's back."""
    return [tuple(r) for r in await store._all(sql, *params)]


def new_task(
    user: int = 1,
    *,
    guild: int = GUILD,
    duration: int = 8,
    provider: str = "demo",
    roles: frozenset[int] = frozenset(),
    hold_for: timedelta | None = None,
    clock: FakeClock | None = None,
) -> NewTask:
    return NewTask(
        guild_id=guild,
        channel_id=2000,
        user_id=user,
        provider=provider,
        mode=Mode.TEXT,
        prompt="a cat surfing",
        options=GenerationOptions(duration_seconds=duration),
        role_ids=roles,
        hold_until=None if hold_for is None or clock is None else clock.now + hold_for,
    )


async def reserve(
    store: PostgresStore, new: NewTask | None = None, limits: EffectiveLimits = DEFAULTS
) -> Task:
    return (await store.reserve(new or new_task(), limits)).task


async def succeed(store: PostgresStore, task_id: str, took: float | None = None) -> Task | None:
    return await store.finish(
        task_id,
        TaskUpdate(
            TaskState.SUCCEEDED,
            result_url="https://cdn.example/v.mp4",
            took=None if took is None else GenerationTime.exact(took),
        ),
        settle=Settle.CHARGE,
    )


async def fail(store: PostgresStore, task_id: str) -> Task | None:
    return await store.finish(
        task_id,
        TaskUpdate(TaskState.FAILED, failure_code="provider_error", failure_reason="boom"),
        settle=Settle.REFUND,
    )


# Connection and migrations


async def test_schema_is_at_the_highest_migration_and_the_description_hides_secrets(
    store: PostgresStore, schema: str
) -> None:
    versions = [v for v, _, _ in load_migrations()]
    assert versions == list(range(1, 9))
    assert await store.schema_version() == 8
    rows = await query(store, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == versions
    described = PostgresStore("postgresql://bot:s3cret@db.example:5432/sora", schema=schema)
    assert "s3cret" not in described.description and "bot@db.example" in described.description
    assert "s3cret" not in redact("host=db user=bot password=s3cret dbname=sora")


async def test_two_stores_opening_at_once_apply_each_migration_once(
    server: str, schema: str, clock: FakeClock
) -> None:
    stores = [PostgresStore(server, clock=clock, schema=schema) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        rows = await query(stores[0], "SELECT version, COUNT(*) FROM schema_migrations GROUP BY 1")
        assert sorted(rows) == [(v, 1) for v in range(1, 9)]
        task = await reserve(stores[1])
        assert await stores[2].get_task(task.id) == task  # one schema, shared
    finally:
        for s in stores:
            await s.close()


async def test_a_partial_schema_is_brought_up_to_date(
    server: str, schema: str, clock: FakeClock
) -> None:
    old = PostgresStore(server, clock=clock, schema=schema)
    await old.open_at(6)
    assert await old.schema_version() == 6
    await old.close()
    store = PostgresStore(server, clock=clock, schema=schema)
    await store.open()
    try:
        assert await store.schema_version() == 8
        await store.set_approval(GUILD, True)
        assert (await store.guild_settings(GUILD)).rules.approval
    finally:
        await store.close()


# Quota


async def test_user_and_guild_limits_and_refusals_write_nothing(store: PostgresStore) -> None:
    for _ in range(3):
        await reserve(store)
    with pytest.raises(QuotaExceededError):
        await reserve(store)
    for user in range(2, 9):
        await reserve(store, new_task(user))
    with pytest.raises(QuotaExceededError):
        await reserve(store, new_task(20))  # the guild's 10 a day are spent
    assert await query(store, "SELECT COUNT(*) FROM tasks") == [(10,)]
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today, status.guild_used_month) == (3, 10, 10)
    with pytest.raises(GenerationDisabledError):
        await reserve(
            store, new_task(guild=OTHER_GUILD), EffectiveLimits(0, 100, 3, QuotaUnit.VIDEOS)
        )


async def test_seconds_unit_and_the_status_after_reserving(store: PostgresStore) -> None:
    limits = EffectiveLimits(daily=20, monthly=100, user_daily=20, unit=QuotaUnit.SECONDS)
    reservation = await store.reserve(new_task(duration=12), limits)
    assert reservation.quota.user_used_today == 12
    assert reservation.task.cost_seconds == 12
    with pytest.raises(QuotaExceededError):
        await store.reserve(new_task(duration=12), limits)
    await store.reserve(new_task(duration=8), limits)
    assert (await store.quota_status(GUILD, 1, limits)).guild_used_today == 20


async def test_periods_roll_over_and_refunds_count_against_the_reservation(
    store: PostgresStore, clock: FakeClock
) -> None:
    task = await reserve(store)
    clock.advance(days=1)
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).user_used_today == 0
    await fail(store, task.id)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_month) == (0, 0)


async def test_reset_user_clears_settled_usage_once(store: PostgresStore) -> None:
    done = await reserve(store)
    await succeed(store, done.id)
    flying = await reserve(store)
    assert await store.reset_user_usage(GUILD, 1, MOD) == (1, 8)
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today) == (1, 2)
    await fail(store, flying.id)
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).user_used_today == 0
    assert await store.reset_user_usage(GUILD, 1, MOD) == (0, 0)


async def test_fifty_concurrent_reservations_never_overspend(store: PostgresStore) -> None:
    limits = EffectiveLimits(daily=17, monthly=100, user_daily=None, unit=QuotaUnit.VIDEOS)

    async def attempt(user: int) -> bool:
        try:
            await store.reserve(new_task(user % 7), limits)
        except QuotaExceededError:
            return False
        return True

    results = await asyncio.gather(*(attempt(u) for u in range(50)))
    assert results.count(True) == 17
    assert await query(store, "SELECT COUNT(*) FROM quota_ledger") == [(17,)]


async def test_concurrent_reservations_across_stores_never_overspend(
    store: PostgresStore, server: str, schema: str, clock: FakeClock
) -> None:
    other = PostgresStore(server, clock=clock, schema=schema)  # another process
    await other.open()
    try:

        async def attempt(db: PostgresStore) -> bool:
            try:
                await reserve(db)
            except QuotaExceededError:
                return False
            return True

        results = await asyncio.gather(*(attempt(db) for _ in range(15) for db in (store, other)))
        assert results.count(True) == 3
    finally:
        await other.close()


async def test_role_allowances_replace_the_member_limit(store: PostgresStore) -> None:
    assert await store.set_role_allowance(GUILD, ARTISTS, 5, MOD) is None
    assert await store.set_role_allowance(GUILD, PATRONS, 4, MOD) is None
    assert await store.set_role_allowance(GUILD, PATRONS, 6, MOD) == 4
    roles = frozenset({ARTISTS, PATRONS, 999})
    status = await store.quota_status(GUILD, 1, DEFAULTS, roles)
    assert (status.limits.user_daily, status.user_limit_role) == (6, PATRONS)
    results = []
    for _ in range(7):
        try:
            await reserve(store, new_task(roles=roles))
            results.append(True)
        except QuotaExceededError:
            results.append(False)
    assert results.count(True) == 6
    assert await store.clear_role_allowance(GUILD, PATRONS) == 6
    assert await store.clear_role_allowance(GUILD, PATRONS) is None
    await store.set_role_allowance(GUILD, ARTISTS, 0, MOD)
    with pytest.raises(BotError, match="roles"):
        await reserve(store, new_task(2, roles=frozenset({ARTISTS})))
    assert await query(store, "SELECT COUNT(*) FROM tasks WHERE user_id = 2") == [(0,)]


async def test_concurrent_reservations_never_exceed_an_allowance(store: PostgresStore) -> None:
    await store.set_role_allowance(GUILD, ARTISTS, 7, MOD)
    roles = frozenset({ARTISTS})
    limits = EffectiveLimits(daily=50, monthly=500, user_daily=2, unit=QuotaUnit.VIDEOS)

    async def attempt() -> bool:
        try:
            await reserve(store, new_task(roles=roles), limits)
        except QuotaExceededError:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(30)))
    assert results.count(True) == 7


# A task's life


async def test_states_move_forward_and_finish_settles_once(
    store: PostgresStore, clock: FakeClock
) -> None:
    task = await reserve(store, new_task(BIG_ID, guild=BIG_ID))
    assert (task.guild_id, task.user_id, task.state) == (BIG_ID, BIG_ID, TaskState.QUEUED)
    submitted = await store.mark_submitted(
        task.id, "p-1", TaskState.SUBMITTED, None, clock.now + timedelta(seconds=30)
    )
    assert submitted.provider_task_id == "p-1" and submitted.provider == "demo"
    running = await store.update_task(
        task.id, TaskUpdate(TaskState.RUNNING, progress=40, next_check_at=clock.now)
    )
    assert running.progress == 40
    with pytest.raises(IllegalTransitionError):
        await store.update_task(task.id, TaskUpdate(TaskState.SUBMITTED))
    with pytest.raises(ValueError):
        await store.update_task(task.id, TaskUpdate(TaskState.SUCCEEDED))
    done = await succeed(store, task.id)
    assert done is not None and done.progress == 100 and done.completed_at == clock.now
    assert done.next_check_at is None
    assert await fail(store, task.id) is None  # final stays final
    assert await store.get_task(task.id) == done
    with pytest.raises(IllegalTransitionError):
        await store.mark_submitted(task.id, "p-2", TaskState.SUBMITTED, None, clock.now)
    rows = await query(store, "SELECT kind, videos FROM quota_ledger ORDER BY id")
    assert rows == [("reserve", 1), ("charge", 0)]
    with pytest.raises(KeyError):
        await succeed(store, "NOPE99")


async def test_concurrent_finishes_settle_once(store: PostgresStore) -> None:
    task = await reserve(store)
    results = await asyncio.gather(
        *(succeed(store, task.id) if i % 2 else fail(store, task.id) for i in range(10))
    )
    assert len([r for r in results if r is not None]) == 1
    kinds = await query(store, "SELECT kind FROM quota_ledger WHERE task_id = $1", task.id)
    assert len(kinds) == 2 and {k[0] for k in kinds} <= {"reserve", "charge", "refund"}


async def test_delivery_queries_and_lookups(store: PostgresStore, clock: FakeClock) -> None:
    one = await reserve(store)
    clock.advance(seconds=1)
    two = await reserve(store, new_task(2))
    await store.mark_submitted(one.id, "p-1", TaskState.RUNNING, 10, clock.now)
    assert [t.id for t in await store.unfinished_tasks()] == [one.id, two.id]
    assert await store.unfinished_tasks("openai") == []
    assert await store.count_active_provider_tasks("demo") == 1
    assert await store.count_active_provider_tasks("demo", ["p-1", "p-9"]) == 2
    found = await store.task_by_provider_id("demo", "p-1")
    assert found is not None and found.id == one.id
    assert one.callback_token is not None
    by_token = await store.task_by_callback_token(one.callback_token)
    assert by_token is not None and by_token.id == one.id
    await store.finish(two.id, TaskUpdate(TaskState.FAILED), settle=Settle.REFUND, delivered=True)
    await succeed(store, one.id)
    assert [t.id for t in await store.undelivered_tasks()] == [one.id]
    await store.record_delivery(one.id, NotifyState.POSTED, 555, "https://x/v.mp4")
    await store.record_delivery(one.id, NotifyState.POSTED)
    got = await store.get_task(one.id)
    assert got is not None and (got.result_message_id, got.result_url) == (555, "https://x/v.mp4")
    await store.forget_result_url(one.id)
    got = await store.get_task(one.id)
    assert got is not None and (got.result_message_id, got.result_url) == (None, None)
    assert await store.undelivered_tasks() == []
    assert await store.task_counts() == {"succeeded": 1, "failed": 1}
    page = await store.user_tasks(GUILD, 1)
    assert [t.id for t in page.tasks] == [one.id] and page.total == 1
    page = await store.guild_tasks(GUILD, page=2, page_size=1)
    assert [t.id for t in page.tasks] == [one.id] and (page.total, page.pages) == (2, 2)


async def test_due_tasks_are_claimed_once_as_they_were(
    store: PostgresStore, clock: FakeClock
) -> None:
    due = clock.now
    ids = []
    for user in range(1, 4):
        task = await reserve(store, new_task(user))
        await store.mark_submitted(task.id, f"p-{user}", TaskState.SUBMITTED, None, due)
        ids.append(task.id)
    await store.set_next_check(ids[2], due + timedelta(hours=1))
    clock.advance(seconds=5)
    claimed = await store.claim_due_tasks(clock.now, limit=10, lease_seconds=60)
    assert sorted(t.id for t in claimed) == sorted(ids[:2])
    assert all(t.next_check_at == due and t.checked_at is None for t in claimed)
    after = await store.get_task(ids[0])
    assert after is not None
    assert (after.next_check_at, after.checked_at) == (due + timedelta(seconds=60), clock.now)
    assert await store.claim_due_tasks(clock.now, limit=10, lease_seconds=60) == []
    # Far behind: at least half a lease after now.
    clock.advance(hours=2)
    again = await store.claim_due_tasks(clock.now, limit=10, lease_seconds=60)
    assert len(again) == 3
    after = await store.get_task(ids[0])
    assert after is not None and after.next_check_at == clock.now + timedelta(seconds=30)
    await succeed(store, ids[0])
    await store.set_next_check(ids[0], clock.now)  # final: left alone
    got = await store.get_task(ids[0])
    assert got is not None and got.next_check_at is None


async def test_concurrent_claimers_never_get_the_same_task(
    store: PostgresStore, server: str, schema: str, clock: FakeClock
) -> None:
    limits = EffectiveLimits(daily=100, monthly=100, user_daily=None, unit=QuotaUnit.VIDEOS)
    for user in range(40):
        task = await reserve(store, new_task(user), limits)
        await store.mark_submitted(task.id, f"p-{user}", TaskState.SUBMITTED, None, clock.now)
    other = PostgresStore(server, clock=clock, schema=schema)
    await other.open()
    try:
        batches = await asyncio.gather(
            *(db.claim_due_tasks(clock.now, 7, 60) for _ in range(4) for db in (store, other))
        )
    finally:
        await other.close()
    claimed = [t.id for batch in batches for t in batch]
    assert len(claimed) == len(set(claimed)) == 40


async def test_generation_times_are_kept_per_kind_and_pruned(store: PostgresStore) -> None:
    limits = EffectiveLimits(daily=100, monthly=100, user_daily=None, unit=QuotaUnit.VIDEOS)
    for took in (30.0, 50.0):
        task = await reserve(store, new_task(), limits)
        await succeed(store, task.id, took)
    long = await reserve(store, new_task(duration=12), limits)
    await succeed(store, long.id, 90.0)
    found = await store.generation_times("demo")
    assert sorted(len(v) for v in found.values()) == [1, 2]
    assert [g.low for g in max(found.values(), key=len)] == [30.0, 50.0]
    assert await store.generation_times("openai") == {}
    newest = await store.generation_times("demo", per_kind=1)
    assert sorted(len(v) for v in newest.values()) == [1, 1]
    await store._one(
        "INSERT INTO generation_times (provider, kind, low_seconds, high_seconds, finished_at)"
        " SELECT 'demo', 'k', 1, 1, now() FROM generate_series(1, 600)"
    )
    task = await reserve(store, new_task(), limits)
    await store._one("SELECT setval('generation_times_id_seq', 1599)")  # next id prunes
    await store.finish(
        task.id,
        TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime.exact(1)),
        settle=Settle.CHARGE,
    )
    kind = next(k for k in found if len(found[k]) == 2)
    assert len((await store.generation_times("demo"))[kind]) == 3
    assert await query(store, "SELECT COUNT(*) FROM generation_times WHERE kind = 'k'") == [(600,)]


# Guild settings and governance


async def test_guild_settings_round_trip(store: PostgresStore) -> None:
    empty = await store.guild_settings(GUILD)
    assert empty.limits == QuotaLimits() and empty.allowed_channel_ids == frozenset()
    before, after = await store.update_quota_limits(GUILD, QuotaLimits(daily=5))
    assert (before, after) == (QuotaLimits(), QuotaLimits(daily=5))
    _, after = await store.update_quota_limits(GUILD, QuotaLimits(unit=QuotaUnit.SECONDS))
    assert after == QuotaLimits(daily=5, unit=QuotaUnit.SECONDS)
    assert await store.add_allowed_channel(GUILD, BIG_ID, MOD)
    assert not await store.add_allowed_channel(GUILD, BIG_ID, MOD)
    options = GenerationOptions(duration_seconds=12)
    await store.set_default_options(GUILD, options)
    await store.set_server_limits(GUILD, 8, False)
    assert await store.add_blocked_phrase(GUILD, "gore", MOD)
    assert not await store.add_blocked_phrase(GUILD, "gore", MOD)
    settings = await store.guild_settings(GUILD)
    assert settings.allowed_channel_ids == frozenset({BIG_ID})
    assert settings.default_options == options and settings.limits.daily == 5
    assert (settings.rules.max_duration, settings.rules.high_quality) == (8, False)
    assert settings.rules.blocked_phrases == ("gore",)
    assert await store.remove_allowed_channel(GUILD, BIG_ID)
    assert not await store.remove_allowed_channel(GUILD, BIG_ID)
    assert await store.remove_blocked_phrase(GUILD, "gore")
    await store.set_default_options(GUILD, None)
    settings = await store.guild_settings(GUILD)
    assert settings.default_options is None and settings.allowed_channel_ids == frozenset()


async def test_log_problem_is_reported_once(store: PostgresStore) -> None:
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    assert await store.set_log_problem(GUILD, "missing access")
    assert not await store.set_log_problem(GUILD, "missing access")
    assert (await store.guild_settings(GUILD)).rules.log_problem == "missing access"
    await store.set_log_channel(GUILD, LOG_CHANNEL + 1)
    assert (await store.guild_settings(GUILD)).rules.log_problem is None
    assert not await store.set_log_problem(GUILD, None)


async def test_held_tasks_are_decided_once(store: PostgresStore, clock: FakeClock) -> None:
    held = await reserve(store, new_task(hold_for=timedelta(hours=6), clock=clock))
    assert (held.approval, held.next_check_at) == (Approval.PENDING, clock.now + timedelta(hours=6))
    assert await store.decide(held.id, OTHER_GUILD, Approval.REJECTED, MOD) is None
    results = await asyncio.gather(
        *(
            store.decide(held.id, GUILD, d, MOD)
            for d in [Approval.APPROVED, Approval.REJECTED, Approval.EXPIRED] * 4
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and await store.get_task(held.id) == winners[0]

    rejected = await reserve(store, new_task(2, hold_for=timedelta(hours=1), clock=clock))
    with pytest.raises(ValueError):
        await store.decide(rejected.id, GUILD, Approval.PENDING, MOD)
    decided = await store.decide(rejected.id, GUILD, Approval.REJECTED, MOD)
    assert decided is not None and decided.state is TaskState.FAILED
    assert (decided.failure_code, decided.decided_by, decided.next_check_at) == (
        "rejected",
        MOD,
        None,
    )
    assert (await store.quota_status(GUILD, 2, DEFAULTS)).user_used_today == 0
    assert (
        await store.finish(decided.id, TaskUpdate(TaskState.FAILED), settle=Settle.REFUND) is None
    )
    rows = await query(
        store, "SELECT kind FROM quota_ledger WHERE task_id = $1 ORDER BY id", rejected.id
    )
    assert rows == [("reserve",), ("refund",)]
    await store.record_card(rejected.id, 4242)
    got = await store.get_task(rejected.id)
    assert got is not None and got.card_message_id == 4242


async def test_log_outbox(store: PostgresStore, clock: FakeClock) -> None:
    entry = LogEntry(GUILD, LogKind.HELD, task_id="T1", actor_id=1, member_id=2, detail={"a": "b"})
    assert await store.add_log_entry(entry) is None  # no log channel
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    first = await store.add_log_entry(entry)
    second = await store.add_log_entry(entry)
    assert first is not None and second is not None and second > first
    pending = await store.pending_log_entries()
    assert [(e.id, e.channel_id, e.state) for e in pending] == [
        (first, LOG_CHANNEL, LogState.PENDING),
        (second, LOG_CHANNEL, LogState.PENDING),
    ]
    assert pending[0].entry == entry and pending[0].created_at == clock.now
    await store.record_log_post(first, LogState.POSTED, 99)
    await store.record_log_post(second, LogState.DROPPED)
    assert await store.pending_log_entries() == []
    latest = await store.log_entry_for("T1", LogKind.HELD.value)
    assert latest is not None and latest.id == second
    assert await store.log_entry_for("T1", LogKind.APPROVED.value) is None


# Provider health


async def fail_create(store: PostgresStore, provider: str = "apixo", times: int = 1) -> None:
    for _ in range(times):
        await store.record_create(
            provider, ok=False, reason="out_of_credits", failover=True, cooldown=300
        )


async def test_cool_down_and_one_probe_under_concurrency(
    store: PostgresStore, clock: FakeClock
) -> None:
    assert (await store.provider_health(["apixo"]))["apixo"].failures_in_row == 0
    assert await store.claim_probe("apixo")  # never recorded: healthy
    await asyncio.gather(*(fail_create(store) for _ in range(3)))  # no failure lost
    health = (await store.provider_health(["apixo", "openai"]))["apixo"]
    assert health.failures_in_row == 3
    assert health.cooldown_until == clock.now + timedelta(seconds=300)
    assert availability(health, clock.now) is Availability.COOLING
    assert not await store.claim_probe("apixo")
    clock.advance(seconds=301)
    claims = await asyncio.gather(*(store.claim_probe("apixo") for _ in range(10)))
    assert claims.count(True) == 1
    clock.advance(seconds=PROBE_SECONDS / 2)
    assert not await store.claim_probe("apixo")
    await store.record_create("apixo", ok=True, cooldown=300)
    health = (await store.provider_health(["apixo"]))["apixo"]
    assert health.cooldown_until is None and health.failures_in_row == 0


async def test_statistics_and_moving_a_task_once(store: PostgresStore, clock: FakeClock) -> None:
    old = await reserve(store, new_task(provider="apixo"))
    await succeed(store, old.id)
    clock.advance(hours=25)
    since = clock.now - timedelta(hours=24)
    for took in (30.0, 50.0, 70.0):
        task = await reserve(store, new_task(provider="apixo", duration=4))
        await store.mark_submitted(task.id, f"p-{took}", TaskState.SUBMITTED, None, clock.now)
        await succeed(store, task.id, took)
    await fail_create(store, times=2)
    await store.record_create("openai", ok=True, cooldown=300)
    moving = await reserve(store, new_task(2, provider="apixo"))
    await store.mark_submitted(moving.id, "a-1", TaskState.RUNNING, 40, clock.now)
    moves = await asyncio.gather(
        *(
            store.move_task(moving.id, "openai", f"o-{i}", TaskState.SUBMITTED, clock.now)
            for i in range(5)
        )
    )
    moved = [m for m in moves if m is not None]
    assert len(moved) == 1
    assert (moved[0].provider, moved[0].retried_from, moved[0].progress) == (
        "openai",
        "apixo",
        None,
    )
    assert moved[0].resubmitted_at == clock.now
    stats = await store.provider_stats(since)
    apixo = stats["apixo"]
    assert (apixo.tasks, apixo.succeeded, apixo.failovers) == (3, 3, 3)
    assert apixo.failures == {"out_of_credits": 2, "provider_error": 1}
    assert apixo.median_seconds == 50.0
    assert (stats["openai"].tasks, stats["openai"].failures) == (1, {})
    await fail(store, moving.id)
    assert await store.move_task(moving.id, "demo", "d-1", TaskState.SUBMITTED, clock.now) is None
    assert (await store.quota_status(GUILD, 2, DEFAULTS)).user_used_today == 0
