"""What the bot needs from its database, independent of which database it is.

`bot.store.sqlite` implements it today; a PostgreSQL implementation can serve a
`postgresql://` URL later without the service, tracker or cogs changing.

Each change in a task's life is one method and one transaction, so a crash never
leaves half of a change behind:

    reserve         quota checked and reserved, task created (queued)
    mark_submitted  the provider took it (submitted or running)
    update_task     progress while it runs
    finish          final state and its charge or refund, together
    record_delivery how far posting the outcome got, with the link shown
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain import (
    Approval,
    EffectiveLimits,
    GenerationOptions,
    GenerationTime,
    GuildSettings,
    NewTask,
    NotifyState,
    QuotaLimits,
    QuotaStatus,
    Reservation,
    Settle,
    Task,
    TaskState,
    TaskUpdate,
)
from bot.modlog import LogEntry, LogState, StoredLogEntry
from bot.providers.health import Health, ProviderStats


@dataclass(frozen=True, slots=True)
class Page:
    tasks: list[Task]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class Store(ABC):
    """The bot's persistent state. Every method is one transaction."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where the data lives, for logs (never includes credentials)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (applies pending migrations)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    # Guild settings
    @abstractmethod
    async def guild_settings(self, guild_id: int) -> GuildSettings: ...

    @abstractmethod
    async def update_quota_limits(
        self, guild_id: int, changes: QuotaLimits
    ) -> tuple[QuotaLimits, QuotaLimits]:
        """Apply the non-None fields of `changes`; return the limits before and after."""

    @abstractmethod
    async def add_allowed_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool: ...

    @abstractmethod
    async def remove_allowed_channel(self, guild_id: int, channel_id: int) -> bool: ...

    @abstractmethod
    async def set_default_options(
        self, guild_id: int, options: GenerationOptions | None
    ) -> None: ...

    # Governance (`bot.governance`): each setter is one transaction
    @abstractmethod
    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None:
        """Set (or, with None, turn off) the moderation log channel; clears any problem
        recorded for the previous one."""

    @abstractmethod
    async def set_log_problem(self, guild_id: int, problem: str | None) -> bool:
        """Record why posting to the log failed (None: it works again); True if that
        changed what was recorded, so the problem is reported once."""

    @abstractmethod
    async def set_approval(self, guild_id: int, on: bool) -> None: ...

    @abstractmethod
    async def set_server_limits(
        self, guild_id: int, max_duration: int | None, high_quality: bool
    ) -> None:
        """The longest video members may ask for (None: no limit) and whether high
        quality is allowed."""

    @abstractmethod
    async def set_role_allowance(
        self, guild_id: int, role_id: int, daily: int, actor_id: int
    ) -> int | None:
        """Give members holding `role_id` a daily allowance; returns the previous one."""

    @abstractmethod
    async def clear_role_allowance(self, guild_id: int, role_id: int) -> int | None:
        """Remove a role's allowance; returns what it was (None: there was none)."""

    @abstractmethod
    async def add_blocked_phrase(self, guild_id: int, phrase: str, actor_id: int) -> bool:
        """Add a phrase (already normalised); False if it was listed."""

    @abstractmethod
    async def remove_blocked_phrase(self, guild_id: int, phrase: str) -> bool: ...

    @abstractmethod
    async def decide(
        self, task_id: str, guild_id: int, decision: Approval, actor_id: int | None
    ) -> Task | None:
        """Decide a held task, in one transaction, if it is still pending in `guild_id`:
        `APPROVED` records who and when and leaves the task queued for sending;
        `REJECTED` and `EXPIRED` also finish it as failed and refund its quota (the
        notifier then tells the requester). Returns the task after the decision, or None
        when there is nothing pending to decide (decided already, or not this server's)."""

    @abstractmethod
    async def record_card(self, task_id: str, message_id: int | None) -> None:
        """The bot's own public message about the task (see `Task.card_message_id`)."""

    # Provider health and failover (`bot.providers.health`): shared by every process
    @abstractmethod
    async def provider_health(self, providers: Sequence[str]) -> dict[str, Health]:
        """Each named provider's health (a provider never recorded is healthy)."""

    @abstractmethod
    async def claim_probe(self, provider: str) -> bool:
        """Atomically claim the one probe of a provider whose cool-down is over
        (`health.claim_probe`); False if it is cooling, or another request probes it."""

    @abstractmethod
    async def record_create(
        self,
        provider: str,
        *,
        ok: bool,
        reason: str | None = None,
        failover: bool = False,
        cooldown: float,
    ) -> Health:
        """A create's outcome at `provider`, in one transaction: an event for the stats
        (`reason` a `FailoverReason` value when it failed; `failover` when the job then
        went on to the next provider) and the health `health.after_create` gives."""

    @abstractmethod
    async def provider_stats(self, since: datetime) -> dict[str, ProviderStats]:
        """Per provider since `since`: tasks it took and how they ended (failures by
        `failure_code`), create failures by reason, failovers, and the median generation
        time of its finished videos."""

    @abstractmethod
    async def move_task(
        self,
        task_id: str,
        provider: str,
        provider_task_id: str,
        state: TaskState,
        next_check_at: datetime,
    ) -> Task | None:
        """Hand an unfinished task that failed at its provider to another one, once:
        record the new provider and its task id, the old provider in `retried_from`,
        `resubmitted_at = now`, clear progress; its reservation stays as it is (charged
        once, when it finishes). None if it was moved before or is already final."""

    # The moderation log's outbox (`bot.modlog`)
    @abstractmethod
    async def add_log_entry(self, entry: LogEntry) -> int | None:
        """Store an entry for the guild's log channel; None (nothing stored) when the
        guild has no log channel."""

    @abstractmethod
    async def pending_log_entries(self, limit: int = 50) -> list[StoredLogEntry]:
        """Entries not posted yet (`pending` or `posting`), oldest first."""

    @abstractmethod
    async def record_log_post(
        self, entry_id: int, state: LogState, message_id: int | None = None
    ) -> None: ...

    @abstractmethod
    async def log_entry_for(self, task_id: str, kind: str) -> StoredLogEntry | None:
        """The latest entry of `kind` about a task (the held request's, to update its
        buttons once decided)."""

    # Quota
    @abstractmethod
    async def quota_status(
        self,
        guild_id: int,
        user_id: int,
        defaults: EffectiveLimits,
        role_ids: frozenset[int] = frozenset(),
    ) -> QuotaStatus:
        """Usage, limits and reset times for a guild and one of its members; a role
        allowance among `role_ids` replaces the per-member limit
        (`bot.governance.member_allowance`)."""

    @abstractmethod
    async def reserve(self, new: NewTask, defaults: EffectiveLimits) -> Reservation:
        """Create a queued task and reserve its quota, or raise; one transaction.

        The member's limit counts `new.role_ids`' allowances. With `new.hold_until` the
        task is held for approval (`Task.approval` pending) and due for expiry then.

        Usage is counted once, and `bot.domain.check_quota` decides on those counts
        inside the transaction. The reservation carries the quota status after it.
        Raises `GenerationDisabledError` or `QuotaExceededError`; nothing is written then.
        """

    @abstractmethod
    async def reset_user_usage(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        """Clear a member's settled usage for the current UTC day; return the videos and
        seconds cleared. Reservations still in flight are not cleared (their own refund or
        charge settles them), so nothing is credited twice. The guild's own totals keep
        the cleared usage: the provider was really used."""

    # Tasks
    @abstractmethod
    async def get_task(self, task_id: str) -> Task | None: ...

    @abstractmethod
    async def mark_submitted(
        self,
        task_id: str,
        provider_task_id: str,
        state: TaskState,
        progress: int | None,
        next_check_at: datetime,
        provider: str | None = None,
    ) -> Task:
        """The provider accepted the task: record its id, its first state (`SUBMITTED` or
        `RUNNING`) and when to check it, and `provider` when another than the one it was
        reserved for took it (failover). Raises `IllegalTransitionError` if the task has
        already moved past that state."""

    @abstractmethod
    async def update_task(self, task_id: str, update: TaskUpdate) -> Task:
        """Record progress: move an unfinished task forward to a state that is not final.

        Raises `IllegalTransitionError` for a backward move and `ValueError` for a final
        state: finishing goes through `finish`, which settles the quota with it."""

    @abstractmethod
    async def finish(
        self, task_id: str, update: TaskUpdate, *, settle: Settle, delivered: bool = False
    ) -> Task | None:
        """Give a task its final state and settle its reservation, in one transaction.

        `update.state` must be final. `settle` charges or refunds the reservation (at most
        one of them, ever, per task). `delivered=True` marks the outcome as already shown
        (the member saw the error in their own answer), so nothing is posted for it.
        `update.took`, when given, joins the generation-time history in the same
        transaction (only a task that really finishes here adds one).

        Returns the finished task, or None if it was already final: then nothing changes
        (a late or duplicated report never turns a delivered video into a failure, nor
        charges or refunds twice). A task is therefore final exactly when it is settled.
        """

    @abstractmethod
    async def user_tasks(
        self, guild_id: int, user_id: int, *, page: int = 1, page_size: int = 10
    ) -> Page:
        """A member's tasks in one guild, newest first."""

    @abstractmethod
    async def guild_tasks(self, guild_id: int, *, page: int = 1, page_size: int = 10) -> Page: ...

    @abstractmethod
    async def claim_due_tasks(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        """Unfinished tasks whose check is due, pushed `lease_seconds` past when it was due
        (at least half of it past `now`) so that a concurrent poller does not claim them
        too (PostgreSQL: FOR UPDATE SKIP LOCKED),
        and stamped `checked_at = now`. Each is returned as it was before the claim: its
        `next_check_at` is when the check was due, its `checked_at` the previous check."""

    @abstractmethod
    async def generation_times(
        self, provider: str, per_kind: int = 500
    ) -> dict[str, list[GenerationTime]]:
        """The latest `per_kind` generation times of `provider`'s finished videos, by kind
        (`bot.domain.kind_of`), oldest first. `finish` adds them (`TaskUpdate.took`)."""

    @abstractmethod
    async def set_next_check(self, task_id: str, at: datetime) -> None:
        """Move an unfinished task's next check; a finished task is left alone."""

    @abstractmethod
    async def task_by_callback_token(self, token: str) -> Task | None: ...

    @abstractmethod
    async def task_by_provider_id(self, provider: str, provider_task_id: str) -> Task | None: ...

    @abstractmethod
    async def unfinished_tasks(self, provider: str | None = None) -> list[Task]:
        """Every task not yet in a final state (a restart resumes all of them)."""

    @abstractmethod
    async def undelivered_tasks(self) -> list[Task]:
        """Final tasks whose outcome has not reached Discord yet."""

    @abstractmethod
    async def task_counts(self) -> dict[str, int]:
        """Tasks by state, for metrics."""

    @abstractmethod
    async def record_delivery(
        self,
        task_id: str,
        state: NotifyState,
        message_id: int | None = None,
        result_url: str | None = None,
    ) -> None:
        """How far delivering a final task's outcome got, in one transaction: the notify
        state, the message it was posted as, and the video link that message shows (the
        notifier may publish its own, so `/sora status` and Delete find it). `None` for
        `message_id` or `result_url` leaves what is stored."""

    @abstractmethod
    async def forget_result_url(self, task_id: str) -> None:
        """Delete removed the video: forget its link and the deleted post, so neither
        `/sora status` nor anything else points at them again."""

    @abstractmethod
    async def count_active_provider_tasks(
        self, provider: str, just_submitted: Collection[str] = ()
    ) -> int:
        """The slots `provider`'s concurrent-task cap counts (`bot.providers.limits`): its
        tasks with a provider task id that are not final, plus those of the
        `just_submitted` provider task ids not recorded on any task yet. Counted from the
        tasks' states, not remembered in memory, so a task frees its slot whichever way it
        ended."""
