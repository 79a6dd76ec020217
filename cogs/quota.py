"""`/sora quota show|set|reset-user`: parse, call the service, render. No rules live here."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.app import SoraBot
from bot.discord.command_tree import send_reply
from bot.discord.interactions import guild_id_of
from bot.discord.quota_rendering import quota_change_embed, quota_embed, usage_cleared_line
from bot.domain import QuotaUnit

LIMIT_RANGE = app_commands.Range[int, 0, 1_000_000]


class QuotaCommands(app_commands.Group):
    """Discord cannot give a subcommand its own `default_member_permissions`, so the
    moderator commands check Manage Server at run time (and the /sora root stays
    usable by everyone)."""

    def __init__(self, bot: SoraBot) -> None:
        super().__init__(name="quota", description="See or change this server's video quota")
        self.bot = bot

    @app_commands.command(name="show", description="This server's and your own video quota")
    async def show(self, interaction: discord.Interaction[SoraBot]) -> None:
        status = await self.bot.service.quota_status(guild_id_of(interaction), interaction.user.id)
        await send_reply(interaction, embed=quota_embed(status, interaction.user))

    @app_commands.command(name="set", description="Set this server's limits (Manage Server)")
    @app_commands.describe(
        daily="Most videos (or seconds) the whole server may make per UTC day; 0 turns it off",
        monthly="Most videos (or seconds) the whole server may make per UTC month",
        user_daily="Most videos (or seconds) one member may make per UTC day",
        unit="Count limits in whole videos or in seconds of video",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_(
        self,
        interaction: discord.Interaction[SoraBot],
        daily: LIMIT_RANGE | None = None,
        monthly: LIMIT_RANGE | None = None,
        user_daily: LIMIT_RANGE | None = None,
        unit: Literal["videos", "seconds"] | None = None,
    ) -> None:
        change = await self.bot.service.set_quota(
            guild_id_of(interaction),
            interaction.user.id,
            daily=daily,
            monthly=monthly,
            user_daily=user_daily,
            unit=None if unit is None else QuotaUnit(unit),
        )
        embed = quota_change_embed(change.before.limits, change.after.limits)
        await send_reply(interaction, embed=embed)

    @app_commands.command(
        name="reset-user", description="Clear one member's usage for today (Manage Server)"
    )
    @app_commands.describe(user="The member whose usage today should be cleared")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset_user(
        self, interaction: discord.Interaction[SoraBot], user: discord.Member | discord.User
    ) -> None:
        guild_id = guild_id_of(interaction)
        videos, seconds = await self.bot.service.reset_user(guild_id, user.id, interaction.user.id)
        after = await self.bot.service.quota_status(guild_id, user.id)
        await send_reply(interaction, usage_cleared_line(user.mention, videos, seconds, after))


class QuotaCog(commands.Cog):
    def __init__(self, bot: SoraBot) -> None:
        self.bot = bot
        self.group = QuotaCommands(bot)

    async def cog_load(self) -> None:
        self.bot.sora.add_command(self.group)

    async def cog_unload(self) -> None:
        self.bot.sora.remove_command(self.group.name)


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, SoraBot)
    await bot.add_cog(QuotaCog(bot))
