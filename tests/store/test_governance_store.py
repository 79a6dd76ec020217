"""The SQLite store's server governance (issue 14): the rules moderators set, role
allowances in the quota, held requests and their decisions, the moderation log's outbox,
and migration 7 on an existing database."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import (
    Approval,
    EffectiveLimits,
    GenerationOptions,
    GuildRules,
    Mode,
    NewTask,
    NotifyState,
    QuotaLimits,
    QuotaUnit,
    RoleAllowance,
    Settle,
    Task,
    TaskState,
    TaskUpdate,
)
from bot.errors import BotError, GenerationDisabledError, QuotaExceededError
from bot.modlog import LogEntry, LogKind, LogState
from bot.store import SqliteStore
from bot.store.sqlite import load_migrations
from tests.clock import FakeClock
from tests.store.test_store import query, run_sql

DEFAULTS = EffectiveLimits(daily=50, monthly=500, user_daily=2, unit=QuotaUnit.VIDEOS)
GUILD = 1000
OTHER_GUILD = 1001
MOD = 77
LOG_CHANNEL = 3000
MEMBERS, ARTISTS, PATRONS, MUTED = 501, 502, 503, 504


def new_task(
    user: int = 1,
    *,
    roles: frozenset[int] = frozenset(),
    hold: bool = False,
    clock: FakeClock | None = None,
) -> NewTask:
    return NewTask(
        guild_id=GUILD,
        channel_id=2000,
        user_id=user,
        provider="demo",
        mode=Mode.TEXT,
        prompt="a heron fishing",
        options=GenerationOptions(duration_seconds=8),
        role_ids=roles,
        hold_until=(clock.now + timedelta(hours=6)) if hold and clock else None,
    )


async def reserve(store: SqliteStore, new: NewTask, limits: EffectiveLimits = DEFAULTS) -> Task:
    return (await store.reserve(new, limits)).task


async def held(store: SqliteStore, clock: FakeClock, user: int = 1) -> Task:
    return await reserve(store, new_task(user, hold=True, clock=clock))


# The rules moderators set


async def test_a_guild_without_settings_has_the_default_rules(store: SqliteStore) -> None:
    assert (await store.guild_settings(GUILD)).rules == GuildRules()


async def test_rules_round_trip_through_guild_settings(store: SqliteStore) -> None:
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    await store.set_approval(GUILD, True)
    await store.set_server_limits(GUILD, 12, high_quality=False)
    for phrase in ("zebra", "apple pie", "mango"):
        assert await store.add_blocked_phrase(GUILD, phrase, MOD) is True
    assert await store.set_role_allowance(GUILD, PATRONS, 10, MOD) is None
    assert await store.set_role_allowance(GUILD, ARTISTS, 5, MOD) is None
    assert await store.set_role_allowance(GUILD, MEMBERS, 5, MOD) is None
    await store.add_blocked_phrase(OTHER_GUILD, "other", MOD)  # another server's own

    rules = (await store.guild_settings(GUILD)).rules
    assert rules == GuildRules(
        log_channel_id=LOG_CHANNEL,
        log_problem=None,
        approval=True,
        max_duration=12,
        high_quality=False,
        blocked_phrases=("apple pie", "mango", "zebra"),
        role_allowances=(
            RoleAllowance(PATRONS, 10),
            RoleAllowance(MEMBERS, 5),
            RoleAllowance(ARTISTS, 5),
        ),
    )

    await store.set_approval(GUILD, False)
    await store.set_server_limits(GUILD, None, high_quality=True)
    await store.set_log_channel(GUILD, None)
    rules = (await store.guild_settings(GUILD)).rules
    assert (rules.approval, rules.max_duration, rules.high_quality) == (False, None, True)
    assert rules.log_channel_id is None
    # The rest of the settings are untouched by the rules.
    assert (await store.guild_settings(GUILD)).limits == QuotaLimits()


async def test_setting_rules_keeps_quota_limits(store: SqliteStore) -> None:
    await store.update_quota_limits(GUILD, QuotaLimits(daily=7))
    await store.set_approval(GUILD, True)
    await store.set_server_limits(GUILD, 8, high_quality=True)
    settings = await store.guild_settings(GUILD)
    assert settings.limits == QuotaLimits(daily=7) and settings.rules.approval is True


async def test_role_allowances_report_what_they_replace(store: SqliteStore) -> None:
    assert await store.set_role_allowance(GUILD, ARTISTS, 4, MOD) is None
    assert await store.set_role_allowance(GUILD, ARTISTS, 9, MOD) == 4
    assert await store.clear_role_allowance(GUILD, ARTISTS) == 9
    assert await store.clear_role_allowance(GUILD, ARTISTS) is None
    assert (await store.guild_settings(GUILD)).rules.role_allowances == ()


async def test_blocked_phrases_are_added_and_removed_once(store: SqliteStore) -> None:
    assert await store.add_blocked_phrase(GUILD, "spoiler", MOD) is True
    assert await store.add_blocked_phrase(GUILD, "spoiler", MOD) is False
    assert await store.remove_blocked_phrase(GUILD, "spoiler") is True
    assert await store.remove_blocked_phrase(GUILD, "spoiler") is False
    assert (await store.guild_settings(GUILD)).rules.blocked_phrases == ()


async def test_log_problem_is_reported_once_and_cleared_by_a_new_channel(
    store: SqliteStore,
) -> None:
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    assert await store.set_log_problem(GUILD, "missing permissions") is True
    assert await store.set_log_problem(GUILD, "missing permissions") is False
    assert (await store.guild_settings(GUILD)).rules.log_problem == "missing permissions"
    assert await store.set_log_problem(GUILD, "channel deleted") is True
    assert await store.set_log_problem(GUILD, None) is True
    assert await store.set_log_problem(GUILD, None) is False

    await store.set_log_problem(GUILD, "missing permissions")
    await store.set_log_channel(GUILD, LOG_CHANNEL + 1)
    rules = (await store.guild_settings(GUILD)).rules
    assert (rules.log_channel_id, rules.log_problem) == (LOG_CHANNEL + 1, None)


# Role allowances in the quota


async def test_the_largest_allowance_among_held_roles_wins(store: SqliteStore) -> None:
    await store.set_role_allowance(GUILD, MEMBERS, 3, MOD)
    await store.set_role_allowance(GUILD, ARTISTS, 6, MOD)
    await store.set_role_allowance(GUILD, PATRONS, 40, MOD)  # not held below

    status = await store.quota_status(GUILD, 1, DEFAULTS, frozenset({MEMBERS, ARTISTS, 9}))
    assert (status.limits.user_daily, status.user_limit_role) == (6, ARTISTS)
    status = await store.quota_status(GUILD, 1, DEFAULTS, frozenset({MEMBERS}))
    assert (status.limits.user_daily, status.user_limit_role) == (3, MEMBERS)
    # No role with an allowance: the server's per-member limit, as before.
    status = await store.quota_status(GUILD, 1, DEFAULTS, frozenset({9}))
    assert (status.limits.user_daily, status.user_limit_role) == (2, None)
    assert await store.quota_status(GUILD, 1, DEFAULTS) == status
    # Another server's allowance for the same role counts for nothing here.
    await store.set_role_allowance(OTHER_GUILD, 9, 30, MOD)
    assert (await store.quota_status(GUILD, 1, DEFAULTS, frozenset({9}))).limits.user_daily == 2


async def test_reserve_applies_the_role_allowance(store: SqliteStore) -> None:
    await store.set_role_allowance(GUILD, ARTISTS, 4, MOD)
    roles = frozenset({ARTISTS, MEMBERS})
    for _ in range(4):
        reservation = await store.reserve(new_task(roles=roles), DEFAULTS)
    assert reservation.quota.user_left_today == 0
    assert reservation.quota.user_limit_role == ARTISTS
    with pytest.raises(QuotaExceededError) as exc:
        await reserve(store, new_task(roles=roles))
    assert exc.value.user_message.startswith("You have used your 4 videos for today.")
    # Without the role the same member is over the server's limit of 2.
    with pytest.raises(QuotaExceededError):
        await reserve(store, new_task(user=1))
    # The server limit still applies to members without the role.
    await reserve(store, new_task(user=2))
    await reserve(store, new_task(user=2))
    with pytest.raises(QuotaExceededError):
        await reserve(store, new_task(user=2))


async def test_an_allowance_of_zero_refuses_and_writes_nothing(
    path: Path, store: SqliteStore
) -> None:
    await store.set_role_allowance(GUILD, MUTED, 0, MOD)
    with pytest.raises(BotError, match="Your roles in this server") as exc:
        await reserve(store, new_task(roles=frozenset({MUTED})))
    assert not isinstance(exc.value, (QuotaExceededError, GenerationDisabledError))
    assert query(path, "SELECT COUNT(*) FROM tasks") == [(0,)]
    assert query(path, "SELECT COUNT(*) FROM quota_ledger") == [(0,)]
    # A larger allowance from another role replaces it.
    await store.set_role_allowance(GUILD, ARTISTS, 1, MOD)
    await reserve(store, new_task(roles=frozenset({MUTED, ARTISTS})))


async def test_server_limits_still_cap_members_with_allowances(store: SqliteStore) -> None:
    await store.set_role_allowance(GUILD, PATRONS, 100, MOD)
    await store.update_quota_limits(GUILD, QuotaLimits(daily=3))
    patrons = frozenset({PATRONS})
    for user in range(3):
        await reserve(store, new_task(user, roles=patrons))
    with pytest.raises(QuotaExceededError) as exc:
        await reserve(store, new_task(9, roles=patrons))
    assert exc.value.user_message.startswith("This server has used its 3 videos for today.")

    await store.update_quota_limits(GUILD, QuotaLimits(daily=100, monthly=4))
    await reserve(store, new_task(9, roles=patrons))
    with pytest.raises(QuotaExceededError) as exc:
        await reserve(store, new_task(9, roles=patrons))
    assert exc.value.user_message.startswith("This server has used its 4 videos for this month.")

    await store.update_quota_limits(GUILD, QuotaLimits(daily=0, monthly=100))
    with pytest.raises(GenerationDisabledError):
        await reserve(store, new_task(9, roles=patrons))


async def test_an_allowance_turns_on_a_member_the_server_caps_at_zero(
    store: SqliteStore,
) -> None:
    await store.update_quota_limits(GUILD, QuotaLimits(user_daily=0))
    with pytest.raises(GenerationDisabledError):
        await reserve(store, new_task())
    await store.set_role_allowance(GUILD, ARTISTS, 1, MOD)
    await reserve(store, new_task(roles=frozenset({ARTISTS})))


async def test_concurrent_reservations_never_exceed_the_allowance(store: SqliteStore) -> None:
    await store.set_role_allowance(GUILD, ARTISTS, 7, MOD)
    roles = frozenset({ARTISTS})

    async def attempt() -> bool:
        try:
            await reserve(store, new_task(roles=roles))
        except QuotaExceededError:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(60)))
    assert results.count(True) == 7
    status = await store.quota_status(GUILD, 1, DEFAULTS, roles)
    assert status.user_used_today == 7 and status.user_left_today == 0


# Held requests and their decisions


async def test_a_held_reservation_is_pending_and_due_when_it_expires(
    store: SqliteStore, clock: FakeClock
) -> None:
    task = await held(store, clock)
    hold_until = clock.now + timedelta(hours=6)
    assert (task.state, task.approval, task.next_check_at) == (
        TaskState.QUEUED,
        Approval.PENDING,
        hold_until,
    )
    assert await store.get_task(task.id) == task
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).user_used_today == 1  # reserved
    plain = await reserve(store, new_task(2))
    assert (plain.approval, plain.next_check_at) == (None, None)

    assert await store.claim_due_tasks(clock.now, limit=10, lease_seconds=30) == []
    claimed = await store.claim_due_tasks(hold_until, limit=10, lease_seconds=30)
    assert [(t.id, t.approval) for t in claimed] == [(task.id, Approval.PENDING)]


async def test_approving_leaves_the_task_queued_and_charged(
    path: Path, store: SqliteStore, clock: FakeClock
) -> None:
    task = await held(store, clock)
    clock.advance(minutes=3)
    approved = await store.decide(task.id, GUILD, Approval.APPROVED, MOD)
    assert approved is not None
    assert (approved.state, approved.approval, approved.decided_by) == (
        TaskState.QUEUED,
        Approval.APPROVED,
        MOD,
    )
    assert approved.next_check_at is None  # not expired by the tracker later
    assert await store.get_task(task.id) == approved
    decided_at = query(path, "SELECT decided_at FROM tasks WHERE id = ?", (task.id,))
    assert decided_at == [(clock.now.isoformat(timespec="microseconds"),)]
    assert (await store.quota_status(GUILD, 1, DEFAULTS)).user_used_today == 1
    assert await store.decide(task.id, GUILD, Approval.APPROVED, MOD) is None
    assert await store.decide(task.id, GUILD, Approval.REJECTED, MOD) is None
    assert await store.decide(task.id, GUILD, Approval.EXPIRED, None) is None
    assert await store.undelivered_tasks() == []


@pytest.mark.parametrize(
    ("decision", "actor", "code", "reason"),
    [
        (Approval.REJECTED, MOD, "rejected", "a moderator declined the request"),
        (Approval.EXPIRED, None, "approval_expired", "no moderator decided in time"),
    ],
)
async def test_rejecting_or_expiring_finishes_and_refunds_once(
    path: Path,
    store: SqliteStore,
    clock: FakeClock,
    decision: Approval,
    actor: int | None,
    code: str,
    reason: str,
) -> None:
    task = await held(store, clock)
    decided = await store.decide(task.id, GUILD, decision, actor)
    assert decided is not None
    assert (decided.state, decided.approval, decided.decided_by) == (
        TaskState.FAILED,
        decision,
        actor,
    )
    assert (decided.failure_code, decided.failure_reason) == (code, reason)
    assert decided.completed_at == clock.now and decided.next_check_at is None
    assert decided.notify_state is NotifyState.PENDING  # the notifier tells the requester
    assert [t.id for t in await store.undelivered_tasks()] == [task.id]
    status = await store.quota_status(GUILD, 1, DEFAULTS)
    assert (status.user_used_today, status.guild_used_today) == (0, 0)

    for again in (Approval.APPROVED, Approval.REJECTED, Approval.EXPIRED):
        assert await store.decide(task.id, GUILD, again, MOD) is None
    # Final: nothing settles it a second time.
    assert await store.finish(task.id, TaskUpdate(TaskState.FAILED), settle=Settle.REFUND) is None
    entries = query(
        path,
        "SELECT kind, videos, note FROM quota_ledger WHERE task_id = ? ORDER BY id",
        (task.id,),
    )
    assert entries == [("reserve", 1, None), ("refund", -1, reason)]


async def test_only_a_pending_task_of_the_same_guild_is_decided(
    store: SqliteStore, clock: FakeClock
) -> None:
    task = await held(store, clock)
    assert await store.decide(task.id, OTHER_GUILD, Approval.REJECTED, MOD) is None
    assert await store.decide("NOPE99", GUILD, Approval.REJECTED, MOD) is None
    assert await store.get_task(task.id) == task

    plain = await reserve(store, new_task(2))
    assert await store.decide(plain.id, GUILD, Approval.APPROVED, MOD) is None
    assert await store.get_task(plain.id) == plain

    with pytest.raises(ValueError):
        await store.decide(task.id, GUILD, Approval.PENDING, MOD)
    # A held task that finished some other way is not decided afterwards.
    await store.finish(task.id, TaskUpdate(TaskState.EXPIRED), settle=Settle.REFUND)
    assert await store.decide(task.id, GUILD, Approval.APPROVED, MOD) is None


async def test_concurrent_decisions_take_effect_once(store: SqliteStore, clock: FakeClock) -> None:
    task = await held(store, clock)
    decisions = [Approval.APPROVED, Approval.REJECTED, Approval.EXPIRED] * 5
    results = await asyncio.gather(*(store.decide(task.id, GUILD, d, MOD) for d in decisions))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await store.get_task(task.id) == winners[0]


async def test_a_decision_is_one_transaction(
    path: Path, store: SqliteStore, clock: FakeClock
) -> None:
    """The refund fails: the task is neither rejected nor failed, and a retry does both."""
    task = await held(store, clock)
    run_sql(
        path,
        "CREATE TRIGGER no_refund BEFORE INSERT ON quota_ledger WHEN NEW.kind = 'refund'"
        " BEGIN SELECT RAISE(ABORT, 'injected ledger failure'); END;",
    )
    with pytest.raises(sqlite3.IntegrityError, match="injected"):
        await store.decide(task.id, GUILD, Approval.REJECTED, MOD)
    assert await store.get_task(task.id) == task
    run_sql(path, "DROP TRIGGER no_refund;")
    rejected = await store.decide(task.id, GUILD, Approval.REJECTED, MOD)
    assert rejected is not None and rejected.state is TaskState.FAILED


async def test_record_card_sets_and_clears_the_message(
    store: SqliteStore, clock: FakeClock
) -> None:
    task = await held(store, clock)
    await store.record_card(task.id, 888)
    carded = await store.get_task(task.id)
    assert carded is not None and carded.card_message_id == 888
    await store.record_card(task.id, None)
    cleared = await store.get_task(task.id)
    assert cleared is not None and cleared.card_message_id is None


# The moderation log's outbox


def log_entry(kind: LogKind = LogKind.HELD, task_id: str | None = "T1") -> LogEntry:
    return LogEntry(
        GUILD,
        kind,
        task_id=task_id,
        actor_id=1,
        member_id=2,
        detail={"prompt": "a heron fishing", "options": "8 s"},
    )


async def test_without_a_log_channel_nothing_is_stored(path: Path, store: SqliteStore) -> None:
    assert await store.add_log_entry(log_entry()) is None
    await store.set_approval(GUILD, True)  # the guild has a row, but no channel
    assert await store.add_log_entry(log_entry()) is None
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    await store.set_log_channel(GUILD, None)
    assert await store.add_log_entry(log_entry()) is None
    assert query(path, "SELECT COUNT(*) FROM mod_log") == [(0,)]
    assert await store.pending_log_entries() == []


async def test_log_entries_wait_until_posted(store: SqliteStore, clock: FakeClock) -> None:
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    first_id = await store.add_log_entry(log_entry())
    await store.set_log_channel(GUILD, LOG_CHANNEL + 1)
    second_id = await store.add_log_entry(log_entry(LogKind.ACTION, task_id=None))
    assert first_id is not None and second_id is not None and second_id > first_id

    pending = await store.pending_log_entries()
    assert [(e.id, e.channel_id, e.state) for e in pending] == [
        (first_id, LOG_CHANNEL, LogState.PENDING),  # the channel when it was written
        (second_id, LOG_CHANNEL + 1, LogState.PENDING),
    ]
    assert pending[0].entry == log_entry()
    assert pending[0].created_at == clock.now and pending[0].message_id is None
    assert [e.id for e in await store.pending_log_entries(limit=1)] == [first_id]

    await store.record_log_post(first_id, LogState.POSTING)
    still = await store.pending_log_entries()
    assert [(e.id, e.state) for e in still] == [
        (first_id, LogState.POSTING),
        (second_id, LogState.PENDING),
    ]
    await store.record_log_post(first_id, LogState.POSTED, 4242)
    await store.record_log_post(second_id, LogState.DROPPED)
    assert await store.pending_log_entries() == []
    posted = await store.log_entry_for("T1", LogKind.HELD.value)
    assert posted is not None
    assert (posted.id, posted.state, posted.message_id) == (first_id, LogState.POSTED, 4242)


async def test_log_entry_for_finds_the_latest_of_its_kind(store: SqliteStore) -> None:
    await store.set_log_channel(GUILD, LOG_CHANNEL)
    await store.add_log_entry(log_entry(LogKind.HELD))
    latest = await store.add_log_entry(log_entry(LogKind.HELD))
    await store.add_log_entry(log_entry(LogKind.APPROVED))
    await store.add_log_entry(log_entry(LogKind.HELD, task_id="T2"))
    found = await store.log_entry_for("T1", LogKind.HELD.value)
    assert found is not None and found.id == latest and found.entry.kind is LogKind.HELD
    assert await store.log_entry_for("T1", LogKind.REJECTED.value) is None
    assert await store.log_entry_for("T9", LogKind.HELD.value) is None


# Migration 7


async def test_a_database_at_schema_6_is_upgraded_with_its_data(
    path: Path, clock: FakeClock
) -> None:
    old = SqliteStore(path, clock=clock)
    await old.open_at(6)
    assert await old.schema_version() == 6
    await old.update_quota_limits(GUILD, QuotaLimits(daily=9, user_daily=2))
    await old.add_allowed_channel(GUILD, 55, actor_id=MOD)
    task = await reserve(old, new_task())  # read back at schema 6: no approval columns
    assert task.approval is None and task.card_message_id is None
    await old.close()

    upgraded = SqliteStore(path, clock=clock)
    await upgraded.open()
    try:
        assert await upgraded.schema_version() == load_migrations()[-1][0] >= 7
        assert await upgraded.get_task(task.id) == task
        settings = await upgraded.guild_settings(GUILD)
        assert settings.limits == QuotaLimits(daily=9, user_daily=2)
        assert settings.allowed_channel_ids == frozenset({55})
        assert settings.rules == GuildRules()  # the new columns' defaults
        assert (await upgraded.quota_status(GUILD, 1, DEFAULTS)).guild_used_today == 1

        await upgraded.set_role_allowance(GUILD, ARTISTS, 3, MOD)
        status = await upgraded.quota_status(GUILD, 1, DEFAULTS, frozenset({ARTISTS}))
        assert (status.limits.user_daily, status.user_used_today) == (3, 1)
        later = await reserve(upgraded, replace(new_task(), hold_until=clock.now))
        assert later.approval is Approval.PENDING
    finally:
        await upgraded.close()
