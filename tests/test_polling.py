"""The learned polling schedule: the pure rule (`Schedule.from_history`), the planner that
keeps the history per kind, the store's generation-time table, and how the tracker
measures a generation time.

The rule is checked by replaying it on fresh draws from many spreads, none of them
special: the same code must meet "95 % noticed within the lag target, with at most
three quarters of an every-3-s poller's requests" wherever generations take between a
value and about three times it (beyond that, no schedule can do both; see the note on
`test_the_rule_meets_the_target_on_any_spread_it_can`).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    GenerationTime,
    Mode,
    NewTask,
    Quality,
    QuotaUnit,
    Settle,
    Task,
    TaskState,
    TaskUpdate,
    kind_of,
)
from bot.polling import MIN_SAMPLES, PollPlanner, generation_time
from bot.providers.apixo import CAPABILITIES as APIXO
from bot.providers.base import ProviderState, ProviderStatus
from bot.schedule import (
    CHECK_HEADROOM_SECONDS,
    EARLY_SHARE,
    Schedule,
    early_quantile,
    quantile,
)
from bot.store import SqliteStore
from bot.tracker import TICK_SECONDS

LAG = 2.0
T0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
ROOMY = EffectiveLimits(10_000, 10_000, None, QuotaUnit.VIDEOS)
TEXT8 = GenerationOptions()


def uniform(low: float, high: float, count: int, seed: int) -> list[GenerationTime]:
    rng = random.Random(seed)
    return [GenerationTime.exact(rng.uniform(low, high)) for _ in range(count)]


def on_tick(seconds: float) -> float:
    """The tracker claims due checks on a 0.1 s tick: a check happens at the first tick
    at or after it is due."""
    return math.ceil(round(seconds / TICK_SECONDS, 6)) * TICK_SECONDS


def replay(schedule: Schedule, durations: list[float]) -> tuple[float, float]:
    """(p95 lag, mean checks per task) of `schedule` on tasks taking `durations`: the
    first check at `first_delay`, then one `interval` after each, on the tracker's tick
    (no latency: this tests the rule, the benchmark measures the real thing)."""
    lags, checks = [], []
    for took in durations:
        at, count = on_tick(schedule.first_delay), 1
        while at < took:
            at, count = on_tick(at + schedule.interval), count + 1
        lags.append(at - took)
        checks.append(count)
    return sorted(lags)[int(0.95 * len(lags))], sum(checks) / len(checks)


def poller_checks(durations: list[float], every: float = 3.0) -> float:
    return sum(math.ceil(d / every) for d in durations) / len(durations)


# The pure rule


def test_quantile_errs_early_below_the_median_and_late_above() -> None:
    ordered = [10.0, 20.0, 30.0, 40.0]
    assert quantile(ordered, 0.01) == 10.0
    assert quantile(ordered, 0.4) == 20.0  # position 1.2: the lower neighbour
    assert quantile(ordered, 0.5) == 30.0  # position 1.5: the higher one
    assert quantile(ordered, 0.99) == 40.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_from_history_checks_first_just_after_the_fastest_then_at_the_lag_target() -> None:
    times = [GenerationTime.exact(40 + 80 * i / 499) for i in range(500)]
    schedule = Schedule.from_history(times, lag=LAG)
    assert schedule.interval == pytest.approx(LAG - CHECK_HEADROOM_SECONDS)
    # About 15 of 500 lie below the 3 % quantile, give or take 3.9: the 11th fastest
    # (41.60) is taken, and the first check comes one interval after it.
    assert EARLY_SHARE == 0.03
    assert early_quantile([t.seconds for t in times], EARLY_SHARE) == pytest.approx(
        41.603, abs=1e-3
    )
    assert schedule.first_delay == pytest.approx(41.603 + schedule.interval, abs=1e-3)
    assert not schedule.callbacks


def test_from_history_with_callbacks_waits_for_nearly_all_to_call_back() -> None:
    times = [GenerationTime.exact(40 + 80 * i / 499) for i in range(500)]
    schedule = Schedule.from_history(times, lag=LAG, callbacks=True)
    # The 99 % quantile (erring late: 119.36) plus a quarter of what lies between it and
    # the first check's low end (41.60).
    assert schedule.first_delay == pytest.approx(119.359 + (119.359 - 41.603) / 4, abs=1e-3)
    assert schedule.next_delay(schedule.first_delay, None) == pytest.approx(4 * schedule.interval)


def test_with_little_history_the_first_check_reaches_below_the_fastest() -> None:
    few = [60.0, 64.0, 68.0, 72.0, 76.0] + [80.0] * 15  # 20 samples: too few for 3 %
    assert early_quantile(few, EARLY_SHARE) == pytest.approx(56.0)  # one typical gap below
    assert early_quantile([60.0], EARLY_SHARE) == 60.0
    many = sorted(t.seconds for t in uniform(40, 120, 500, seed=11))
    assert early_quantile(many, EARLY_SHARE) < quantile(many, EARLY_SHARE)


def test_from_history_reads_bounded_times_by_their_middle() -> None:
    times = [GenerationTime(50.0, 54.0)] * 20
    assert Schedule.from_history(times, lag=LAG).first_delay == pytest.approx(
        52.0 + LAG - CHECK_HEADROOM_SECONDS
    )


@pytest.mark.parametrize(
    ("shortest", "longest"),
    [(40, 120), (30, 80), (60, 170), (10, 25), (200, 560), (90, 100)],
)
def test_the_rule_meets_the_target_on_named_spreads(shortest: float, longest: float) -> None:
    learned = Schedule.from_history(uniform(shortest, longest, 500, seed=1), lag=LAG)
    fresh = [t.seconds for t in uniform(shortest, longest, 2000, seed=2)]
    p95, checks = replay(learned, fresh)
    assert p95 <= LAG
    assert checks <= 0.75 * poller_checks(fresh)


def draw(shape: str, shortest: float, longest: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    a, b = shortest, longest
    if shape == "uniform":
        return [rng.uniform(a, b) for _ in range(count)]
    if shape == "triangular":
        return [rng.triangular(a, b, a + (b - a) / 4) for _ in range(count)]
    return [  # two humps: a fast and a slow lane
        rng.uniform(a, a + (b - a) / 5) if rng.random() < 0.5 else rng.uniform(b - (b - a) / 5, b)
        for _ in range(count)
    ]


def test_the_rule_meets_the_target_on_any_spread_it_can() -> None:
    """Random spreads, random shapes. Checking every 2 s from the first check on costs
    1.5 times a 3-s poller over the part it covers, so the savings must come from not
    checking before the fastest videos: with generations from `a` to `b`, that is enough
    only while b <= about 3a. Wider spreads are held to the lag target alone."""
    rng = random.Random(20261204)
    for case in range(60):
        shape = rng.choice(["uniform", "triangular", "two humps"])
        shortest = rng.uniform(15, 300)
        longest = shortest * rng.uniform(1.05, 2.8)
        history = [GenerationTime.exact(s) for s in draw(shape, shortest, longest, 500, case)]
        learned = Schedule.from_history(history, lag=LAG)
        fresh = draw(shape, shortest, longest, 2000, 10_000 + case)
        p95, checks = replay(learned, fresh)
        label = (case, shape, round(shortest), round(longest))
        assert p95 <= LAG, label
        assert checks <= 0.75 * poller_checks(fresh), label
    for case in range(20):
        shortest = rng.uniform(5, 60)
        longest = shortest * rng.uniform(3, 20)
        history = [GenerationTime.exact(s) for s in draw("uniform", shortest, longest, 200, case)]
        learned = Schedule.from_history(history, lag=LAG)
        assert replay(learned, draw("uniform", shortest, longest, 2000, 99 + case))[0] <= LAG


def test_progress_still_spaces_checks_out_when_the_provider_reports_it() -> None:
    learned = Schedule.from_history(uniform(40, 120, 50, seed=3), lag=LAG)
    assert learned.next_delay(60, 10) > learned.interval  # 10 % after 60 s: far to go
    assert learned.next_delay(60, None) == learned.interval


# The planner


def planner(store: SqliteStore | None = None, **overrides: float) -> PollPlanner:
    return PollPlanner(
        provider="apixo",
        capabilities=APIXO,
        lag=LAG,
        callbacks=False,
        store=store,
        first_delay=overrides.get("first_delay"),
        interval=overrides.get("interval"),
    )


def test_the_documented_guidance_until_there_is_enough_history() -> None:
    plans = planner()
    guidance = Schedule.for_provider(APIXO, first_delay=None, interval=None, callbacks=False)
    for took in uniform(40, 120, MIN_SAMPLES - 1, seed=4):
        plans.learn(Mode.TEXT, TEXT8, took)
    assert plans.schedule_for(Mode.TEXT, TEXT8) == guidance
    assert plans.typical_seconds(Mode.TEXT, TEXT8) is None
    plans.learn(Mode.TEXT, TEXT8, GenerationTime.exact(80))
    learned = plans.schedule_for(Mode.TEXT, TEXT8)
    assert learned != guidance and 30 < learned.first_delay < 50
    assert plans.lease == pytest.approx(learned.interval)
    assert 60 < (plans.typical_seconds(Mode.TEXT, TEXT8) or 0) < 100


def test_kinds_are_learned_apart() -> None:
    plans = planner()
    pro12 = GenerationOptions(duration_seconds=12, quality=Quality.HIGH)
    for took in uniform(200, 400, MIN_SAMPLES, seed=5):
        plans.learn(Mode.IMAGE, pro12, took)
    assert plans.schedule_for(Mode.IMAGE, pro12).first_delay > 180  # near 200, erring early
    assert plans.schedule_for(Mode.TEXT, TEXT8).first_delay == APIXO.expected_seconds / 2
    assert plans.typical_seconds(Mode.TEXT, pro12) is None  # text and image are apart too


def test_the_operators_settings_win_over_what_was_learned() -> None:
    plans = planner(first_delay=30.0, interval=7.0)
    for took in uniform(40, 120, 50, seed=6):
        plans.learn(Mode.TEXT, TEXT8, took)
    assert plans.schedule_for(Mode.TEXT, TEXT8) == Schedule(first_delay=30.0, interval=7.0)
    only_first = planner(first_delay=30.0)
    for took in uniform(40, 120, 50, seed=6):
        only_first.learn(Mode.TEXT, TEXT8, took)
    mixed = only_first.schedule_for(Mode.TEXT, TEXT8)
    assert mixed.first_delay == 30.0 and mixed.interval == pytest.approx(1.95)


def test_a_provider_that_doubles_its_time_is_followed_within_a_window() -> None:
    plans = planner()
    for took in uniform(40, 120, 500, seed=7):
        plans.learn(Mode.TEXT, TEXT8, took)
    assert plans.schedule_for(Mode.TEXT, TEXT8).first_delay < 45
    for took in uniform(80, 240, 500, seed=8):
        plans.learn(Mode.TEXT, TEXT8, took)
    assert plans.schedule_for(Mode.TEXT, TEXT8).first_delay > 80
    assert 140 < (plans.typical_seconds(Mode.TEXT, TEXT8) or 0) < 180


# The store's history


async def finished_task(store: SqliteStore, took: GenerationTime | None, n: int = 0) -> Task:
    reserved = await store.reserve(
        NewTask(1, 10, 100 + n, "apixo", Mode.TEXT, f"clip {n}", TEXT8), ROOMY
    )
    await store.mark_submitted(reserved.task.id, f"p-{n}", TaskState.SUBMITTED, None, T0)
    done = await store.finish(
        reserved.task.id,
        TaskUpdate(TaskState.SUCCEEDED, result_url="https://cdn.example/v.mp4", took=took),
        settle=Settle.CHARGE,
    )
    assert done is not None
    return done


async def test_history_is_kept_per_kind_survives_a_restart_and_is_shared(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.sqlite3"
    first = SqliteStore(path)
    await first.open()
    for n, took in enumerate(uniform(50, 70, MIN_SAMPLES, seed=9)):
        await finished_task(first, took, n)
    await finished_task(first, None, 99)  # a success with no time adds nothing
    history = await first.generation_times("apixo")
    assert list(history) == [kind_of(Mode.TEXT, TEXT8)]
    assert len(history[kind_of(Mode.TEXT, TEXT8)]) == MIN_SAMPLES
    assert await first.generation_times("openai") == {}
    # A second process on the same database, and this one after a restart, plan alike.
    second = SqliteStore(path)
    await second.open()
    other = planner(second)
    await other.load()
    assert 50 < other.schedule_for(Mode.TEXT, TEXT8).first_delay < 55
    await second.close()
    await first.close()


async def test_a_task_finished_twice_adds_one_time_and_the_window_is_bounded(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "bot.sqlite3")
    await store.open()
    task = await finished_task(store, GenerationTime.exact(60))
    again = await store.finish(
        task.id,
        TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime.exact(61)),
        settle=Settle.CHARGE,
    )
    assert again is None
    assert len((await store.generation_times("apixo"))[kind_of(Mode.TEXT, TEXT8)]) == 1
    for n in range(520):
        await finished_task(store, GenerationTime.exact(100 + n), n + 1)
    kept = (await store.generation_times("apixo"))[kind_of(Mode.TEXT, TEXT8)]
    assert len(kept) == 500 and kept[-1].seconds == 619 and kept[0].seconds == 120
    assert [t.seconds for t in (await store.generation_times("apixo", 3))["standard-8s-text"]] == [
        617,
        618,
        619,
    ]
    async with store._lock:
        rows = await (await store._conn.execute("SELECT COUNT(*) FROM generation_times")).fetchone()
    assert rows is not None and rows[0] <= 500 + 16  # pruned as it goes
    await store.close()


async def test_a_claim_hands_out_tasks_as_they_were_and_stamps_the_check(
    tmp_path: Path,
) -> None:
    now = [T0]
    store = SqliteStore(tmp_path / "bot.sqlite3", clock=lambda: now[0])
    await store.open()
    reserved = await store.reserve(NewTask(1, 10, 100, "apixo", Mode.TEXT, "p", TEXT8), ROOMY)
    due = T0 + timedelta(seconds=40)
    await store.mark_submitted(reserved.task.id, "p-1", TaskState.SUBMITTED, None, due)
    (claimed,) = await store.claim_due_tasks(due + timedelta(seconds=0.1), 10, 2.0)
    assert claimed.next_check_at == due and claimed.checked_at is None
    later = due + timedelta(seconds=2.2)
    (again,) = await store.claim_due_tasks(later, 10, 2.0)
    assert again.checked_at == due + timedelta(seconds=0.1)  # the previous check
    stored = await store.get_task(reserved.task.id)
    assert stored is not None and stored.checked_at == later
    # One lease after it was due (due + 4.0), not after the late claim (due + 4.2): a
    # tracker running late does not stretch every gap by its delay.
    assert stored.next_check_at == due + timedelta(seconds=4.0)
    (behind,) = await store.claim_due_tasks(due + timedelta(seconds=30), 10, 2.0)
    assert behind.next_check_at == due + timedelta(seconds=4.0)  # was due 26 s ago
    stored = await store.get_task(reserved.task.id)
    assert stored is not None  # far behind: at least half a lease from now, not in the past
    assert stored.next_check_at == due + timedelta(seconds=31.0)
    await store.close()


# How the tracker measures one


def running_task(created: datetime = T0) -> Task:
    return Task(
        id="K7M3QX",
        guild_id=1,
        channel_id=10,
        user_id=100,
        provider="apixo",
        mode=Mode.TEXT,
        prompt="p",
        options=TEXT8,
        state=TaskState.RUNNING,
        created_at=created,
        updated_at=created,
    )


def test_the_providers_own_time_is_taken_but_never_longer_than_since_submission() -> None:
    done = ProviderStatus(ProviderState.SUCCEEDED, generation_seconds=61.5)
    now = T0 + timedelta(seconds=64)
    assert generation_time(running_task(), done, now, None) == GenerationTime.exact(61.5)
    assert generation_time(
        running_task(), ProviderStatus(ProviderState.SUCCEEDED, generation_seconds=500), now, None
    ) == GenerationTime.exact(64)


def test_without_the_providers_time_it_is_bounded_by_the_checks() -> None:
    done = ProviderStatus(ProviderState.SUCCEEDED)
    now = T0 + timedelta(seconds=64)
    seen = T0 + timedelta(seconds=62)
    assert generation_time(running_task(), done, now, seen) == GenerationTime(62, 64)
    assert generation_time(running_task(), done, now, None) == GenerationTime(0, 64)
    assert generation_time(running_task(now), done, now, None) is None  # no time passed


def test_a_task_checked_before_the_schedule_now_says_waits_for_the_new_first_check() -> None:
    """Planned when the provider was quick, checked at 45 s; the provider has since
    slowed to 100 s or more: no checks until the new first one."""
    slower = Schedule.from_history(uniform(100, 200, 500, seed=12), lag=LAG)
    assert slower.next_delay(45, None) == pytest.approx(slower.first_delay - 45)
    assert slower.next_delay(slower.first_delay + 1, None) == slower.interval


def test_checks_that_run_late_leave_that_much_room_in_the_interval() -> None:
    plans = planner()
    for took in uniform(40, 120, 50, seed=13):
        plans.learn(Mode.TEXT, TEXT8, took)
    assert plans.schedule_for(Mode.TEXT, TEXT8).interval == pytest.approx(1.95)
    for n in range(500):  # a busy process: answers come 0-0.3 s after they were due
        plans.checked_late(0.3 * n / 499)
    assert plans.schedule_for(Mode.TEXT, TEXT8).interval == pytest.approx(2 - 0.27, abs=0.01)
    for _ in range(500):  # far behind: never less than three quarters of the target
        plans.checked_late(5.0)
    assert plans.schedule_for(Mode.TEXT, TEXT8).interval == pytest.approx(1.5)
    assert plans.lease == pytest.approx(1.5)


def test_a_claim_lasts_at_most_the_task_lease() -> None:
    """A task claimed by a process that then died comes due for the others within
    TASK_LEASE_SECONDS, even when its plan checks less often (here an operator's
    POLL_INTERVAL_SECONDS of a minute)."""
    from bot.polling import MAX_LEASE_SECONDS
    from bot.providers.demo import DemoProvider

    caps = DemoProvider().capabilities
    slow = {"provider": "demo", "capabilities": caps, "lag": 2.0, "callbacks": False}
    default = PollPlanner(**slow, interval=60.0)  # type: ignore[arg-type]
    capped = PollPlanner(**slow, interval=60.0, max_lease=5.0)  # type: ignore[arg-type]
    assert default.lease == MAX_LEASE_SECONDS == 30.0
    assert capped.lease == 5.0
    assert PollPlanner(**slow).lease == 2.0  # type: ignore[arg-type]  # shorter: its own
