"""Guild settings: quota limits, allowed channels, default options."""

from __future__ import annotations

import aiosqlite

from bot.domain import Aspect, GenerationOptions, GuildSettings, Quality, QuotaLimits
from bot.store.sqlite.connection import SqliteBase, every, first, ts
from bot.store.sqlite.rows import limits_from


class SqliteGuilds(SqliteBase):
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._lock:
            db = self._conn
            row = await first(db, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
            channels = frozenset(
                r[0]
                for r in await every(
                    db, "SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,)
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
        )

    async def _ensure_guild(self, db: aiosqlite.Connection, guild_id: int) -> None:
        await db.execute(
            "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?)"
            " ON CONFLICT (guild_id) DO NOTHING",
            (guild_id, ts(self._clock())),
        )

    async def update_quota_limits(
        self, guild_id: int, changes: QuotaLimits
    ) -> tuple[QuotaLimits, QuotaLimits]:
        async with self._transaction() as db:
            await self._ensure_guild(db, guild_id)
            before = limits_from(
                await first(db, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
            )
            after = QuotaLimits(
                daily=before.daily if changes.daily is None else changes.daily,
                monthly=before.monthly if changes.monthly is None else changes.monthly,
                user_daily=before.user_daily if changes.user_daily is None else changes.user_daily,
                unit=before.unit if changes.unit is None else changes.unit,
            )
            await db.execute(
                "UPDATE guild_settings SET daily_limit = ?, monthly_limit = ?,"
                " user_daily_limit = ?, quota_unit = ?, updated_at = ? WHERE guild_id = ?",
                (
                    after.daily,
                    after.monthly,
                    after.user_daily,
                    None if after.unit is None else after.unit.value,
                    ts(self._clock()),
                    guild_id,
                ),
            )
        return before, after

    async def add_allowed_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO allowed_channels (guild_id, channel_id, added_by, added_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, channel_id, actor_id, ts(self._clock())),
            )
            return cursor.rowcount > 0

    async def remove_allowed_channel(self, guild_id: int, channel_id: int) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            return cursor.rowcount > 0

    async def set_default_options(self, guild_id: int, options: GenerationOptions | None) -> None:
        async with self._transaction() as db:
            await self._ensure_guild(db, guild_id)
            await db.execute(
                "UPDATE guild_settings SET default_aspect = ?, default_duration = ?,"
                " default_quality = ?, updated_at = ? WHERE guild_id = ?",
                (
                    None if options is None else options.aspect.value,
                    None if options is None else options.duration_seconds,
                    None if options is None else options.quality.value,
                    ts(self._clock()),
                    guild_id,
                ),
            )
