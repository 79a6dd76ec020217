"""What the governance commands show: `/sora settings show`, role allowances, the
blocklist, the limits (`cogs/governance.py`, `cogs/quota.py`)."""

from __future__ import annotations

import discord

from bot.discord.quota_rendering import channel_list
from bot.discord.rendering import INFO, fit_embed, plain_text
from bot.domain import GuildRules, GuildSettings, QuotaStatus, RoleAllowance
from bot.wording import describe_options, plural


def allowance_lines(allowances: tuple[RoleAllowance, ...]) -> str:
    if not allowances:
        return "none: every member has the server's per-member limit"
    return "\n".join(f"<@&{a.role_id}>: **{a.daily}** a day" for a in allowances)


def limits_line(rules: GuildRules) -> str:
    longest = "any length" if rules.max_duration is None else f"at most {rules.max_duration} s"
    quality = "high quality allowed" if rules.high_quality else "standard quality only"
    return f"{longest}; {quality}"


def log_channel_line(rules: GuildRules) -> str:
    if rules.log_channel_id is None:
        return "off"
    health = "working" if rules.log_problem is None else f"⚠️ {rules.log_problem}"
    return f"<#{rules.log_channel_id}> ({health})"


def settings_embed(settings: GuildSettings, quota: QuotaStatus) -> discord.Embed:
    """`/sora settings show`: every server setting in one place."""
    rules = settings.rules
    limits = quota.limits
    embed = discord.Embed(title="Video bot settings", colour=INFO)
    channels = settings.allowed_channel_ids
    embed.add_field(
        name="Channels",
        value=channel_list(channels) if channels else "every channel",
        inline=False,
    )
    defaults = settings.default_options
    embed.add_field(
        name="Default options",
        value="the video service's" if defaults is None else describe_options(defaults),
        inline=False,
    )
    member = "none" if limits.user_daily is None else str(limits.user_daily)
    embed.add_field(
        name="Quota",
        value=(
            f"{limits.daily} a day and {limits.monthly} a month for the server, {member} a "
            f"day per member ({limits.unit.value})"
        ),
        inline=False,
    )
    embed.add_field(
        name="Role allowances", value=allowance_lines(rules.role_allowances), inline=False
    )
    embed.add_field(name="Limits", value=limits_line(rules), inline=False)
    embed.add_field(name="Moderation log", value=log_channel_line(rules), inline=False)
    embed.add_field(
        name="Approval mode",
        value="on: members' requests wait for a moderator" if rules.approval else "off",
        inline=False,
    )
    embed.add_field(
        name="Blocklist", value=plural(len(rules.blocked_phrases), "phrase"), inline=False
    )
    return fit_embed(embed)


def blocklist_embed(phrases: tuple[str, ...]) -> discord.Embed:
    embed = discord.Embed(title="Blocked phrases", colour=INFO)
    if not phrases:
        embed.description = "None. Add one with `/sora settings blocklist-add`."
    else:
        embed.description = "\n".join(f"• {plain_text(p)}" for p in phrases)
        embed.set_footer(
            text="Compared ignoring case, accents and look-alike forms, on word boundaries."
        )
    return fit_embed(embed)


def member_limit_line(status: QuotaStatus) -> str:
    """Where a member's own daily limit comes from (`/sora quota show`)."""
    limit = status.limits.user_daily
    amount = "no limit" if limit is None else f"{limit} a day"
    if status.user_limit_role is not None:
        return f"Your limit: **{amount}**, from the role <@&{status.user_limit_role}>."
    return f"Your limit: **{amount}**, the server's default for members."
