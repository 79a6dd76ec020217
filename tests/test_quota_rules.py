"""The quota decision on its own: `bot.domain.check_quota`, a pure function of the
limits, the usage the store counted and the cost of the request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    QuotaStatus,
    QuotaUnit,
    Settle,
    TaskState,
    check_quota,
    cost_of,
    settlement_for,
)
from bot.errors import GenerationDisabledError, QuotaExceededError

TOMORROW = datetime(2026, 11, 25, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 12, 1, tzinfo=UTC)


def status(
    *,
    daily: int = 10,
    monthly: int = 100,
    user_daily: int | None = 3,
    unit: QuotaUnit = QuotaUnit.VIDEOS,
    today: int = 0,
    month: int = 0,
    mine: int = 0,
) -> QuotaStatus:
    return QuotaStatus(
        limits=EffectiveLimits(daily, monthly, user_daily, unit),
        guild_used_today=today,
        guild_used_month=month,
        user_used_today=mine,
        day_resets_at=TOMORROW,
        month_resets_at=NEXT_MONTH,
    )


def test_within_every_limit_passes() -> None:
    check_quota(status(), 1)
    check_quota(status(today=9, month=99, mine=2), 1)  # the last one of each fits exactly


def test_the_members_own_cap_is_named_first() -> None:
    """The server is full too, but "you have used yours" is what the member can act on."""
    with pytest.raises(QuotaExceededError) as refused:
        check_quota(status(today=10, month=100, mine=3), 1)
    assert refused.value.user_message.startswith("You have used your 3 videos for today.")
    assert refused.value.resets_at == TOMORROW


def test_no_per_user_cap_when_it_is_none() -> None:
    check_quota(status(user_daily=None, mine=50, today=5, month=5), 1)


def test_the_servers_day_then_month() -> None:
    with pytest.raises(QuotaExceededError) as day:
        check_quota(status(today=10, month=10), 1)
    assert day.value.user_message.startswith("This server has used its 10 videos for today.")
    assert day.value.resets_at == TOMORROW
    with pytest.raises(QuotaExceededError) as month:
        check_quota(status(today=0, month=100), 1)
    assert "for this month" in month.value.user_message
    assert month.value.resets_at == NEXT_MONTH


@pytest.mark.parametrize("limits", [{"daily": 0}, {"monthly": 0}, {"user_daily": 0}])
def test_a_zero_limit_turns_generation_off(limits: dict[str, int]) -> None:
    with pytest.raises(GenerationDisabledError):
        check_quota(status(**limits), 1)  # type: ignore[arg-type]


def test_seconds_count_the_requests_length() -> None:
    seconds = status(daily=20, user_daily=None, unit=QuotaUnit.SECONDS, today=12, month=12)
    cost = cost_of(GenerationOptions(duration_seconds=8), QuotaUnit.SECONDS)
    assert cost == 8
    check_quota(seconds, cost)
    with pytest.raises(QuotaExceededError) as refused:
        check_quota(seconds, cost_of(GenerationOptions(duration_seconds=12), QuotaUnit.SECONDS))
    assert refused.value.user_message.startswith(
        "You asked for 12 s; 8 s of the server's 20 s for today are left. Try a shorter video."
    )
    assert (refused.value.cost, refused.value.remaining) == (12, 8)
    mine = status(daily=100, user_daily=10, unit=QuotaUnit.SECONDS, today=0, month=0, mine=8)
    with pytest.raises(QuotaExceededError) as refused:
        check_quota(mine, 12)
    assert refused.value.user_message.startswith(
        "You asked for 12 s; 2 s of today's 10 s are left. Try a shorter video."
    )
    full = status(daily=20, user_daily=None, unit=QuotaUnit.SECONDS, today=20, month=20)
    with pytest.raises(QuotaExceededError) as refused:
        check_quota(full, 4)
    assert "used its 20 seconds for today" in refused.value.user_message
    one = status(daily=1, user_daily=None, today=1, month=1)
    with pytest.raises(QuotaExceededError) as refused:
        check_quota(one, 1)
    assert "used its 1 video for today" in refused.value.user_message
    assert cost_of(GenerationOptions(duration_seconds=12), QuotaUnit.VIDEOS) == 1


def test_plus_is_the_status_after_a_reservation() -> None:
    after = status(today=2, month=7, mine=1).plus(1)
    assert (after.guild_used_today, after.guild_used_month, after.user_used_today) == (3, 8, 2)
    assert (after.guild_left_today, after.user_left_today) == (7, 1)
    assert status(mine=3).plus(1).user_left_today == 0  # never negative


def test_only_a_made_video_is_charged() -> None:
    assert settlement_for(TaskState.SUCCEEDED) is Settle.CHARGE
    assert settlement_for(TaskState.FAILED) is Settle.REFUND
    assert settlement_for(TaskState.EXPIRED) is Settle.REFUND
    for unfinished in (TaskState.QUEUED, TaskState.SUBMITTED, TaskState.RUNNING):
        with pytest.raises(ValueError):
            settlement_for(unfinished)
