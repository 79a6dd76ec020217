"""Guild settings on PostgreSQL: quota limits, allowed channels, default options, and
the governance rules `governance.py` writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain import (
    Aspect,
    GenerationOptions,
    GuildSettings,
    Quality,
    QuotaLimits,
    RoleAllowance,
)
from bot.store.postgres.connection import PostgresBase, count_of
from bot.store.postgres.rows import limits_from, rules_from


async def ensure_guild(c: Any, guild_id: int, now: datetime) -> None:
    """The guild's settings row, created with every default if it is missing."""
    await c.execute(
        "INSERT INTO guild_settings (guild_id, updated_at) VALUES ($1, $2)"
        " ON CONFLICT (guild_id) DO NOTHING",
        guild_id,
        now,
    )


class PostgresGuilds(PostgresBase):
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._transaction() as c:
            row = await c.fetchrow("SELECT * FROM guild_settings WHERE guild_id = $1", guild_id)
            channels = frozenset(
                int(r[0])
                for r in await c.fetch(
                    "SELECT channel_id FROM allowed_channels WHERE guild_id = $1", guild_id
                )
            )
            phrases = tuple(
                str(r[0])
                for r in await c.fetch(
                    "SELECT phrase FROM blocked_phrases WHERE guild_id = $1 ORDER BY phrase",
                    guild_id,
                )
            )
            allowances = tuple(
                RoleAllowance(role_id=r[0], daily=r[1])
                for r in await c.fetch(
                    "SELECT role_id, daily FROM role_allowances WHERE guild_id = $1"
                    " ORDER BY daily DESC, role_id",
                    guild_id,
                )
            )
        defaults = None
        provider = None
        if row is not None:
            provider = row["default_provider"]
            if row["default_aspect"] is not None:
                defaults = GenerationOptions(
                    aspect=Aspect(row["default_aspect"]),
                    duration_seconds=row["default_duration"],
                    quality=Quality(row["default_quality"]),
                )
        return GuildSettings(
            guild_id=guild_id,
            limits=limits_from(row),
            allowed_channel_ids=channels,
            default_options=defaults,
            default_provider=provider,
            rules=rules_from(row, phrases, allowances),
        )

    async def update_quota_limits(
        self, guild_id: int, changes: QuotaLimits
    ) -> tuple[QuotaLimits, QuotaLimits]:
        now = self._clock()
        async with self._transaction() as c:
            await ensure_guild(c, guild_id, now)
            before = limits_from(
                await c.fetchrow(
                    "SELECT * FROM guild_settings WHERE guild_id = $1 FOR UPDATE", guild_id
                )
            )
            after = QuotaLimits(
                daily=before.daily if changes.daily is None else changes.daily,
                monthly=before.monthly if changes.monthly is None else changes.monthly,
                user_daily=before.user_daily if changes.user_daily is None else changes.user_daily,
                unit=before.unit if changes.unit is None else changes.unit,
            )
            await c.execute(
                "UPDATE guild_settings SET daily_limit = $1, monthly_limit = $2,"
                " user_daily_limit = $3, quota_unit = $4, updated_at = $5 WHERE guild_id = $6",
                after.daily,
                after.monthly,
                after.user_daily,
                None if after.unit is None else after.unit.value,
                now,
                guild_id,
            )
        return before, after

    async def add_allowed_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        async with self._transaction() as c:
            status = await c.execute(
                "INSERT INTO allowed_channels (guild_id, channel_id, added_by, added_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                guild_id,
                channel_id,
                actor_id,
                self._clock(),
            )
        return count_of(status) > 0

    async def remove_allowed_channel(self, guild_id: int, channel_id: int) -> bool:
        async with self._transaction() as c:
            status = await c.execute(
                "DELETE FROM allowed_channels WHERE guild_id = $1 AND channel_id = $2",
                guild_id,
                channel_id,
            )
        return count_of(status) > 0

    async def set_default_options(self, guild_id: int, options: GenerationOptions | None) -> None:
        now = self._clock()
        async with self._transaction() as c:
            await ensure_guild(c, guild_id, now)
            await c.execute(
                "UPDATE guild_settings SET default_aspect = $1, default_duration = $2,"
                " default_quality = $3, updated_at = $4 WHERE guild_id = $5",
                None if options is None else options.aspect.value,
                None if options is None else options.duration_seconds,
                None if options is None else options.quality.value,
                now,
                guild_id,
            )
