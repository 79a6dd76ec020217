"""What the bot needs from its database, independent of which database it is.

`sqlite.py` implements it today; a PostgreSQL implementation can serve a
`postgresql://` URL later without the service, tracker or cogs changing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    GuildSettings,
    NewTask,
    NotifyState,
    QuotaLimits,
    QuotaStatus,
    Task,
    TaskUpdate,
)


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

    # Quota
    @abstractmethod
    async def quota_status(
        self, guild_id: int, user_id: int, defaults: EffectiveLimits
    ) -> QuotaStatus:
        """Usage, limits and reset times for a guild and one of its members."""

    @abstractmethod
    async def reserve(self, new: NewTask, defaults: EffectiveLimits) -> Task:
        """Create a queued task and reserve its quota atomically, or raise.

        Raises `GenerationDisabledError` or `QuotaExceededError`; nothing is written then.
        """

    @abstractmethod
    async def charge(self, task_id: str) -> bool:
        """Make a task's reservation final. False if already charged or refunded."""

    @abstractmethod
    async def refund(self, task_id: str, reason: str) -> bool:
        """Give a task's reservation back. False if already refunded or charged."""

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
    async def update_task(self, task_id: str, update: TaskUpdate) -> Task:
        """Move a task forward; raises `IllegalTransitionError` for a backward move."""

    @abstractmethod
    async def user_tasks(
        self, guild_id: int, user_id: int, *, page: int = 1, page_size: int = 10
    ) -> Page:
        """A member's tasks in one guild, newest first."""

    @abstractmethod
    async def guild_tasks(self, guild_id: int, *, page: int = 1, page_size: int = 10) -> Page: ...

    @abstractmethod
    async def claim_due_tasks(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        """Unfinished tasks whose check is due, pushed `lease_seconds` ahead so that a
        concurrent poller does not claim them too (PostgreSQL: FOR UPDATE SKIP LOCKED)."""

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
    async def set_notify_state(
        self, task_id: str, state: NotifyState, message_id: int | None = None
    ) -> None: ...

    @abstractmethod
    async def set_result_url(self, task_id: str, url: str | None) -> None:
        """Record (or, with None, forget) the link a finished task's video is shown at.

        Unlike `update_task` this works on a final task and can clear the field: the
        notifier records a link it published itself (so `/sora status` and Delete find
        it), and Delete forgets it so nobody is pointed at a video that was removed."""

    @abstractmethod
    async def count_active_provider_tasks(
        self, provider: str, just_submitted: Collection[str] = ()
    ) -> int:
        """The slots `provider`'s concurrent-task cap counts (`bot.providers.limits`): its
        tasks with a provider task id that are not final, plus those of the
        `just_submitted` provider task ids not recorded on any task yet. Counted from the
        tasks' states, not remembered in memory, so a task frees its slot whichever way it
        ended."""
