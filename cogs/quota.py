"""`/sora quota show|set|reset-user`: parse, call the service, render. No rules live here."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import SoraBot
from bot.command_tree import send_reply
from bot.domain import EffectiveLimits, QuotaStatus, QuotaUnit
from bot.errors import GuildOnlyError

QUOTA_COLOUR = discord.Colour.blurple()
LIMIT_RANGE = app_commands.Range[int, 0, 1_000_000]


def _ts(moment: datetime) -> str:
    """A Discord timestamp, shown in each reader's own time zone."""
    return f"<t:{int(moment.timestamp())}:R>"


def _used(used: int, limit: int | None) -> str:
    if limit is None:
        return f"{used} used (no personal limit)"
    return f"{used} of {limit} used · **{max(0, limit - used)} left**"


def render_status(status: QuotaStatus, member: discord.abc.User) -> discord.Embed:
    limits = status.limits
    unit = limits.unit.value
    embed = discord.Embed(title="Video quota", colour=QUOTA_COLOUR)
    if not limits.generation_enabled:
        embed.description = "Video generation is **off** in this server."
    else:
        embed.description = f"Limits count **{unit}**. Periods reset at midnight UTC."
    embed.add_field(
        name="Server today",
        value=f"{_used(status.guild_used_today, limits.daily)}\nresets {_ts(status.day_resets_at)}",
        inline=True,
    )
    embed.add_field(
        name="Server this month",
        value=(
            f"{_used(status.guild_used_month, limits.monthly)}\n"
            f"resets {_ts(status.month_resets_at)}"
        ),
        inline=True,
    )
    embed.add_field(
        name=f"{member.display_name} today",
        value=(
            f"{_used(status.user_used_today, limits.user_daily)}\n"
            f"resets {_ts(status.day_resets_at)}"
        ),
        inline=False,
    )
    return embed


def _limit_line(name: str, before: int | None, after: int | None) -> str:
    def show(value: int | None) -> str:
        if value is None:
            return "none"
        return "off (0)" if value == 0 else str(value)

    marker = " ✏️" if before != after else ""
    if before == after:
        return f"**{name}**: {show(after)}"
    return f"**{name}**: {show(before)} → **{show(after)}**{marker}"


def render_change(before: EffectiveLimits, after: EffectiveLimits) -> discord.Embed:
    lines = [
        _limit_line("Daily (server)", before.daily, after.daily),
        _limit_line("Monthly (server)", before.monthly, after.monthly),
        _limit_line("Daily (per member)", before.user_daily, after.user_daily),
        f"**Unit**: {before.unit.value}"
        + ("" if before.unit == after.unit else f" → **{after.unit.value}**"),
    ]
    embed = discord.Embed(title="Quota updated", colour=QUOTA_COLOUR, description="\n".join(lines))
    if not after.generation_enabled:
        embed.set_footer(text="A limit of 0 turns video generation off in this server.")
    return embed


def _guild_id(interaction: discord.Interaction[SoraBot]) -> int:
    if interaction.guild_id is None:
        raise GuildOnlyError()
    return interaction.guild_id


class QuotaCommands(app_commands.Group):
    """Discord cannot give a subcommand its own `default_member_permissions`, so the
    moderator commands check Manage Server at run time (and the /sora root stays
    usable by everyone)."""

    def __init__(self, bot: SoraBot) -> None:
        super().__init__(name="quota", description="See or change this server's video quota")
        self.bot = bot

    @app_commands.command(name="show", description="This server's and your own video quota")
    async def show(self, interaction: discord.Interaction[SoraBot]) -> None:
        status = await self.bot.service.quota_status(_guild_id(interaction), interaction.user.id)
        await send_reply(interaction, embed=render_status(status, interaction.user))

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
            _guild_id(interaction),
            interaction.user.id,
            daily=daily,
            monthly=monthly,
            user_daily=user_daily,
            unit=None if unit is None else QuotaUnit(unit),
        )
        await send_reply(
            interaction, embed=render_change(change.before.limits, change.after.limits)
        )

    @app_commands.command(
        name="reset-user", description="Clear one member's usage for today (Manage Server)"
    )
    @app_commands.describe(user="The member whose usage today should be cleared")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset_user(
        self, interaction: discord.Interaction[SoraBot], user: discord.Member | discord.User
    ) -> None:
        guild_id = _guild_id(interaction)
        videos, seconds = await self.bot.service.reset_user(guild_id, user.id, interaction.user.id)
        if videos == 0 and seconds == 0:
            message = f"{user.mention} has no finished videos today: nothing to clear."
        else:
            message = (
                f"Cleared {user.mention}'s usage for today ({videos} video(s), "
                f"{seconds} s). The server's own totals are unchanged. Recorded in the ledger."
            )
        after = await self.bot.service.quota_status(guild_id, user.id)
        if after.user_used_today:
            amount = (
                f"{after.user_used_today} video(s)"
                if after.limits.unit is QuotaUnit.VIDEOS
                else f"{after.user_used_today} s of video"
            )
            message += (
                f" {amount} still being made keep counting until they finish "
                "(a failed one is refunded then)."
            )
        await send_reply(interaction, message)


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
