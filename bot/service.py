"""What commands ask of the bot, independent of Discord: quotas now, submissions next.

Cogs call this instead of the store so that the rules (defaults, who may see what) live
in one place that tests can drive without Discord.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import QuotaLimits, QuotaStatus, QuotaUnit
from bot.errors import InvalidInputError
from bot.settings import Settings
from bot.store import Store


@dataclass(frozen=True, slots=True)
class QuotaChange:
    before: QuotaStatus
    after: QuotaStatus


class SoraService:
    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store

    async def quota_status(self, guild_id: int, user_id: int) -> QuotaStatus:
        return await self._store.quota_status(guild_id, user_id, self._settings.default_limits)

    async def set_quota(
        self,
        guild_id: int,
        user_id: int,
        *,
        daily: int | None = None,
        monthly: int | None = None,
        user_daily: int | None = None,
        unit: QuotaUnit | None = None,
    ) -> QuotaChange:
        changes = QuotaLimits(daily=daily, monthly=monthly, user_daily=user_daily, unit=unit)
        if changes == QuotaLimits():
            raise InvalidInputError(
                "Tell me what to change: give at least one of `daily`, `monthly`, "
                "`user_daily` or `unit`."
            )
        for name, value in (("daily", daily), ("monthly", monthly), ("user_daily", user_daily)):
            if value is not None and value < 0:
                raise InvalidInputError(f"`{name}` must be 0 or more (0 turns generation off).")
        before = await self.quota_status(guild_id, user_id)
        await self._store.update_quota_limits(guild_id, changes)
        after = await self.quota_status(guild_id, user_id)
        return QuotaChange(before=before, after=after)

    async def reset_user(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        return await self._store.reset_user_usage(guild_id, user_id, actor_id)
