"""`/sora quota show|set|reset-user|role-set|role-clear|roles`: parse, call the moderation
service (`bot.moderation`), render. No rules live here."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.app import SoraBot
from bot.discord.command_tree import send_reply
from bot.discord.governance_rendering import allowance_lines, member_limit_line
from bot.discord.interactions import guild_id_of, role_ids_of
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
        status = await self.bot.moderation.quota_status(
            guild_id_of(interaction), interaction.user.id, role_ids_of(interaction)
        )
        embed = quota_embed(status, interaction.user)
        embed.description = f"{embed.description}\n{member_limit_line(status)}"
        await send_reply(interaction, embed=embed)

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
        change = await self.bot.moderation.set_quota(
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
        videos, seconds = await self.bot.moderation.reset_user(
            guild_id, user.id, interaction.user.id
        )
        after = await self.bot.moderation.quota_status(guild_id, user.id)
        await send_reply(interaction, usage_cleared_line(user.mention, videos, seconds, after))

    @app_commands.command(
        name="role-set", description="A daily allowance for members with a role (Manage Server)"
    )
    @app_commands.describe(
        role="Members holding this role get the allowance (the largest of their roles counts)",
        daily="Videos (or seconds) per UTC day; replaces the per-member limit; 0: none",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def role_set(
        self, interaction: discord.Interaction[SoraBot], role: discord.Role, daily: LIMIT_RANGE
    ) -> None:
        before = await self.bot.moderation.set_role_allowance(
            guild_id_of(interaction), role.id, daily, interaction.user.id
        )
        was = "" if before is None or before == daily else f" (was {before})"
        await send_reply(
            interaction,
            f"Members with {role.mention} may now make **{daily}** a day{was}. The server's "
            "daily and monthly limits still cap everyone together.",
        )

    @app_commands.command(
        name="role-clear", description="Remove a role's daily allowance (Manage Server)"
    )
    @app_commands.describe(role="The role whose allowance goes")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def role_clear(
        self, interaction: discord.Interaction[SoraBot], role: discord.Role
    ) -> None:
        before = await self.bot.moderation.clear_role_allowance(
            guild_id_of(interaction), role.id, interaction.user.id
        )
        if before is None:
            text = f"{role.mention} had no allowance."
        else:
            text = f"Removed {role.mention}'s allowance of {before} a day."
        await send_reply(interaction, text)

    @app_commands.command(
        name="roles", description="Role allowances in this server (Manage Server)"
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def roles(self, interaction: discord.Interaction[SoraBot]) -> None:
        allowances = await self.bot.moderation.role_allowances(guild_id_of(interaction))
        await send_reply(interaction, f"**Role allowances**\n{allowance_lines(allowances)}")


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
