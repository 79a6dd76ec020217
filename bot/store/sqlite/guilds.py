"""Guild settings: quota limits, allowed channels, default options, and the governance
rules (`GuildRules`) `governance.py` writes."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.domain import (
    Aspect,
    GenerationOptions,
    GuildSettings,
    Quality,
    QuotaLimits,
    RoleAllowance,
)
from bot.store.sqlite.connection import SqliteBase, every, first, ts
from bot.store.sqlite.rows import limits_from, rules_from


async def ensure_guild(db: aiosqlite.Connection, guild_id: int, now: datetime) -> None:
    """The guild's settings row, created with every default if it is missing (part of
    the caller's transaction)."""
    await db.execute(
        "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?)"
        " ON CONFLICT (guild_id) DO NOTHING",
        (guild_id, ts(now)),
    )


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
            phrases = tuple(
                r[0]
                for r in await every(
                    db,
                    "SELECT phrase FROM blocked_phrases WHERE guild_id = ? ORDER BY phrase",
                    (guild_id,),
                )
            )
            allowances = tuple(
                RoleAllowance(role_id=r[0], daily=r[1])
                for r in await every(
                    db,
                    "SELECT role_id, daily FROM role_allowances WHERE guild_id = ?"
                    " ORDER BY daily DESC, role_id",
                    (guild_id,),
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
        async with self._transaction() as db:
            await ensure_guild(db, guild_id, self._clock())
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
            await ensure_guild(db, guild_id, self._clock())
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
