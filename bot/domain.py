"""The bot's vocabulary: tasks, their states, generation options and quotas.

Pure data and rules, no I/O, so the store, the service, the tracker and the cogs all
agree on one meaning of "a task moved forward", "this request fits the quota" or "the
quota resets at".
"""

from __future__ import annotations

import calendar
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.errors import BotError, GenerationDisabledError, QuotaExceededError


class TaskState(StrEnum):
    """Where a generation is in its life. The order of members is the order of life."""

    QUEUED = "queued"  # reserved quota, not yet sent to the provider
    SUBMITTED = "submitted"  # the provider accepted it and gave us its task id
    RUNNING = "running"  # the provider reports work in progress
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"  # never finished within the maximum age

    @property
    def is_terminal(self) -> bool:
        match self:
            case TaskState.SUCCEEDED | TaskState.FAILED | TaskState.EXPIRED:
                return True
            case TaskState.QUEUED | TaskState.SUBMITTED | TaskState.RUNNING:
                return False

    @property
    def rank(self) -> int:
        match self:
            case TaskState.QUEUED:
                return 0
            case TaskState.SUBMITTED:
                return 1
            case TaskState.RUNNING:
                return 2
            case TaskState.SUCCEEDED | TaskState.FAILED | TaskState.EXPIRED:
                return 3


def can_transition(current: TaskState, new: TaskState) -> bool:
    """Whether a task may go from `current` to `new`.

    States only move forward, and may skip steps (a callback can report success
    before we ever saw "running"). Staying in a non-terminal state is allowed so that
    progress updates can be recorded; a terminal state is final, because a late or
    duplicated provider answer must never turn a delivered video into a failure.
    """
    if current.is_terminal:
        return False
    if new == current:
        return True
    return new.rank > current.rank


class Mode(StrEnum):
    TEXT = "text"
    IMAGE = "image"


class Aspect(StrEnum):
    LANDSCAPE = "landscape"
    PORTRAIT = "portrait"
    SQUARE = "square"


class Quality(StrEnum):
    STANDARD = "standard"
    HIGH = "high"


class QuotaUnit(StrEnum):
    """What a guild's limits count: finished videos, or seconds of video."""

    VIDEOS = "videos"
    SECONDS = "seconds"


class NotifyState(StrEnum):
    """How far delivering a task's outcome to Discord has got."""

    PENDING = "pending"
    POSTING = "posting"  # a post was attempted: on restart, look before posting again
    POSTED = "posted"
    DIRECT_MESSAGED = "direct_messaged"
    UNDELIVERABLE = "undeliverable"  # kept for /sora status


class LedgerKind(StrEnum):
    RESERVE = "reserve"
    CHARGE = "charge"
    REFUND = "refund"
    RESET = "reset"


class Settle(StrEnum):
    """What finishing a task does with its reservation, in the same transaction."""

    CHARGE = "charge"  # the video was made: the reservation becomes final usage
    REFUND = "refund"  # nothing was made: the reservation is given back
    NONE = "none"  # leave the ledger alone


def settlement_for(state: TaskState) -> Settle:
    """The settlement a final state calls for: only a made video is paid for."""
    match state:
        case TaskState.SUCCEEDED:
            return Settle.CHARGE
        case TaskState.FAILED | TaskState.EXPIRED:
            return Settle.REFUND
        case TaskState.QUEUED | TaskState.SUBMITTED | TaskState.RUNNING:
            raise ValueError(f"{state.value} is not a final state")


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    aspect: Aspect = Aspect.LANDSCAPE
    duration_seconds: int = 8
    quality: Quality = Quality.STANDARD


# Task ids are read out and typed by people: no 0/O, 1/I/L, no vowels that spell words.
TASK_ID_ALPHABET = "23456789BCDFGHJKMNPQRSTVWXYZ"
TASK_ID_LENGTH = 6


def new_task_id() -> str:
    return "".join(secrets.choice(TASK_ID_ALPHABET) for _ in range(TASK_ID_LENGTH))


def normalise_task_id(text: str) -> str:
    """Accept what people type: lower case, spaces, a leading '#'."""
    return text.strip().lstrip("#").replace(" ", "").replace("-", "").upper()


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a submission knows before the store gives it an id and a reservation."""

    guild_id: int
    channel_id: int
    user_id: int
    provider: str
    mode: Mode
    prompt: str
    options: GenerationOptions
    image_url: str | None = None
    upload_limit: int | None = None  # bytes, as Discord reported for the channel
    remix_of_task_id: str | None = None  # the task whose video this one remixes
    # The member's roles: a role allowance may replace the server's per-member limit.
    role_ids: frozenset[int] = frozenset()
    # Approval mode: the task is held for a moderator until then (then it expires).
    hold_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    guild_id: int
    channel_id: int
    user_id: int
    provider: str
    mode: Mode
    prompt: str
    options: GenerationOptions
    state: TaskState
    created_at: datetime
    updated_at: datetime
    image_url: str | None = None
    provider_task_id: str | None = None
    progress: int | None = None
    result_url: str | None = None
    thumbnail_url: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    cost_videos: int = 1
    cost_seconds: int = 0
    completed_at: datetime | None = None
    next_check_at: datetime | None = None
    notify_state: NotifyState = NotifyState.PENDING
    result_message_id: int | None = None
    callback_token: str | None = None
    upload_limit: int | None = None
    remix_of_task_id: str | None = None
    # When the tracker last claimed it for a status check (the previous one, on a task
    # handed out by `claim_due_tasks`): a check that finds the video done bounds its
    # generation time between that earlier "not yet" and now.
    checked_at: datetime | None = None
    # Approval mode: None for a task that was never held.
    approval: Approval | None = None
    decided_by: int | None = None
    decided_at: datetime | None = None
    # The bot's own public message about the task in its channel (the "waits for a
    # moderator" notice, then the card), removed once the outcome is posted.
    card_message_id: int | None = None
    # Failover: the provider that failed this task before it was sent to `provider`
    # (once), and when that happened.
    retried_from: str | None = None
    resubmitted_at: datetime | None = None

    @property
    def started_at(self) -> datetime:
        """When the work at its provider began: the request, or for a held one its
        approval, or for one retried elsewhere that resubmission. Schedules, generation
        times and the maximum age count from here; a request that waited a day for a
        moderator is not a day-long generation."""
        if self.resubmitted_at is not None:
            return self.resubmitted_at
        if self.approval is Approval.APPROVED and self.decided_at is not None:
            return self.decided_at
        return self.created_at


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """A change reported for a task; `None` fields are left as they are."""

    state: TaskState
    provider_task_id: str | None = None
    progress: int | None = None
    result_url: str | None = None
    thumbnail_url: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    next_check_at: datetime | None = None
    # With a final state: how long the provider took, recorded (in the same transaction)
    # in the generation-time history the polling schedule learns from.
    took: GenerationTime | None = None


@dataclass(frozen=True, slots=True)
class GenerationTime:
    """How long one video took to generate, in seconds from submission: exactly (`low ==
    high`, from the provider's own timestamps) or bounded by the tracker's last check
    that found it running and the first one that found it done."""

    low: float
    high: float

    @property
    def seconds(self) -> float:
        """The best single figure: the middle of the bounds."""
        return (self.low + self.high) / 2

    @classmethod
    def exact(cls, seconds: float) -> GenerationTime:
        return cls(seconds, seconds)


def kind_of(mode: Mode, options: GenerationOptions) -> str:
    """Videos expected to take about as long as each other: same model tier (quality),
    same length, same input (text or a picture). The aspect is left out: the two
    orientations are one size, and splitting on it would halve the history."""
    return f"{options.quality.value}-{options.duration_seconds}s-{mode.value}"


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """A guild's limits as moderators set them; `None` means "use the default"."""

    daily: int | None = None
    monthly: int | None = None
    user_daily: int | None = None
    unit: QuotaUnit | None = None


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """Limits after defaults are applied. `None` for user_daily means no per-user cap."""

    daily: int
    monthly: int
    user_daily: int | None
    unit: QuotaUnit

    @property
    def generation_enabled(self) -> bool:
        return self.daily > 0 and self.monthly > 0 and self.user_daily != 0

    def resolve(self, limits: QuotaLimits) -> EffectiveLimits:
        """Overlay a guild's own settings on these defaults."""
        return EffectiveLimits(
            daily=self.daily if limits.daily is None else limits.daily,
            monthly=self.monthly if limits.monthly is None else limits.monthly,
            user_daily=self.user_daily if limits.user_daily is None else limits.user_daily,
            unit=self.unit if limits.unit is None else limits.unit,
        )


class Approval(StrEnum):
    """Where a held request is: waiting for a moderator, or decided."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RoleAllowance:
    """Members holding `role_id` may use `daily` per UTC day (in the quota's unit)."""

    role_id: int
    daily: int


@dataclass(frozen=True, slots=True)
class GuildRules:
    """A server's governance settings, as moderators set them."""

    log_channel_id: int | None = None
    log_problem: str | None = None  # why the last post to the log failed, until one works
    approval: bool = False
    max_duration: int | None = None  # seconds; None: whatever the provider offers
    high_quality: bool = True
    blocked_phrases: tuple[str, ...] = ()
    role_allowances: tuple[RoleAllowance, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    limits: QuotaLimits = field(default_factory=QuotaLimits)
    allowed_channel_ids: frozenset[int] = frozenset()
    default_options: GenerationOptions | None = None
    default_provider: str | None = None
    rules: GuildRules = field(default_factory=GuildRules)


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """Everything "how much is left and when does it reset" needs, from one store call."""

    limits: EffectiveLimits
    guild_used_today: int
    guild_used_month: int
    user_used_today: int
    day_resets_at: datetime
    month_resets_at: datetime
    # The role whose allowance is the member's daily limit; None: the server's limit.
    user_limit_role: int | None = None

    @property
    def guild_left_today(self) -> int:
        return max(0, self.limits.daily - self.guild_used_today)

    @property
    def guild_left_month(self) -> int:
        return max(0, self.limits.monthly - self.guild_used_month)

    @property
    def user_left_today(self) -> int | None:
        if self.limits.user_daily is None:
            return None
        return max(0, self.limits.user_daily - self.user_used_today)

    def plus(self, cost: int) -> QuotaStatus:
        """The status once a request costing `cost` (in the limits' unit) is reserved."""
        return replace(
            self,
            guild_used_today=self.guild_used_today + cost,
            guild_used_month=self.guild_used_month + cost,
            user_used_today=self.user_used_today + cost,
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """A queued task and the quota status right after its reservation (one transaction)."""

    task: Task
    quota: QuotaStatus


def cost_of(options: GenerationOptions, unit: QuotaUnit) -> int:
    match unit:
        case QuotaUnit.VIDEOS:
            return 1
        case QuotaUnit.SECONDS:
            return options.duration_seconds


def check_quota(status: QuotaStatus, cost: int) -> None:
    """Whether a request costing `cost` (in the limits' unit) fits; raises if it does not.

    The store counts the usage and calls this inside the transaction that then writes
    the reservation, so no other request can slip in between the decision and the write.
    The member's own cap is checked first: "you have used yours" is the answer they can
    act on, even when the server is also full.

    Raises `GenerationDisabledError` when a limit is 0, `QuotaExceededError` otherwise.
    """
    limits = status.limits
    if status.user_limit_role is not None and limits.user_daily == 0:
        # Only this member's roles say 0; the server itself is on.
        raise BotError(
            "Your roles in this server don't include making videos. Ask a moderator if "
            "you think they should; nothing was charged."
        )
    if not limits.generation_enabled:
        raise GenerationDisabledError()
    # (mine, limit, used, period, resets at), in the order a member can act on.
    checks = (
        (True, limits.user_daily, status.user_used_today, "today", status.day_resets_at),
        (False, limits.daily, status.guild_used_today, "today", status.day_resets_at),
        (False, limits.monthly, status.guild_used_month, "this month", status.month_resets_at),
    )
    for mine, limit, used, period, resets_at in checks:
        if limit is not None and used + cost > limit:
            raise QuotaExceededError(
                mine=mine,
                limit=limit,
                unit=limits.unit.value,
                period=period,
                resets_at=resets_at,
                cost=cost,
                remaining=max(0, limit - used),
            )


def day_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def month_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def next_day_start(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)


def next_month_start(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    days = calendar.monthrange(utc.year, utc.month)[1]
    return datetime(utc.year, utc.month, 1, tzinfo=UTC) + timedelta(days=days)


def utc_now() -> datetime:
    return datetime.now(UTC)
