"""What the quota and settings commands show: use against the limits, limits before and
after a change, a cleared member's usage, the allowed channels (`cogs/quota.py`,
`cogs/admin.py`). Apart from `rendering`, which draws what a video produces."""

from __future__ import annotations

import discord

from bot.discord.rendering import INFO, fit_embed, relative
from bot.domain import EffectiveLimits, QuotaStatus, QuotaUnit
from bot.wording import plural


def _used(used: int, limit: int | None) -> str:
    if limit is None:
        return f"{used} used (no personal limit)"
    if limit == 0:
        return f"**off** · {used} used"
    return f"{used} of {limit} used · **{max(0, limit - used)} left**"


def quota_embed(status: QuotaStatus, member: discord.abc.User) -> discord.Embed:
    """`/sora quota show`: the server's and the member's use against the limits."""
    limits = status.limits
    embed = discord.Embed(title="Video quota", colour=INFO)
    if not limits.generation_enabled:
        embed.description = "Video generation is **off** in this server."
    else:
        embed.description = f"Limits count **{limits.unit.value}**. Periods reset at midnight UTC."
    day_resets = f"resets {relative(status.day_resets_at)}"
    embed.add_field(
        name="Server today",
        value=f"{_used(status.guild_used_today, limits.daily)}\n{day_resets}",
        inline=True,
    )
    embed.add_field(
        name="Server this month",
        value=(
            f"{_used(status.guild_used_month, limits.monthly)}\n"
            f"resets {relative(status.month_resets_at)}"
        ),
        inline=True,
    )
    embed.add_field(
        name=f"{member.display_name} today",
        value=f"{_used(status.user_used_today, limits.user_daily)}\n{day_resets}",
        inline=False,
    )
    return fit_embed(embed)


def _limit_line(name: str, before: int | None, after: int | None) -> str:
    def show(value: int | None) -> str:
        if value is None:
            return "none"
        return "off (0)" if value == 0 else str(value)

    if before == after:
        return f"**{name}**: {show(after)}"
    return f"**{name}**: {show(before)} → **{show(after)}** ✏️"


def quota_change_embed(before: EffectiveLimits, after: EffectiveLimits) -> discord.Embed:
    """`/sora quota set`: each limit before and after, changes marked."""
    lines = [
        _limit_line("Daily (server)", before.daily, after.daily),
        _limit_line("Monthly (server)", before.monthly, after.monthly),
        _limit_line("Daily (per member)", before.user_daily, after.user_daily),
        f"**Unit**: {before.unit.value}"
        + ("" if before.unit == after.unit else f" → **{after.unit.value}**"),
    ]
    embed = discord.Embed(title="Quota updated", colour=INFO, description="\n".join(lines))
    if not after.generation_enabled:
        embed.set_footer(text="A limit of 0 turns video generation off in this server.")
    return fit_embed(embed)


def usage_cleared_line(mention: str, videos: int, seconds: int, after: QuotaStatus) -> str:
    """`/sora quota reset-user`: what was cleared, and what still counts."""
    if videos == 0 and seconds == 0:
        message = f"{mention} has no finished videos today: nothing to clear."
    else:
        message = (
            f"Cleared {mention}'s usage for today ({plural(videos, 'video')}, "
            f"{seconds} s). The server's own totals are unchanged."
        )
    if after.user_used_today:
        used = after.user_used_today
        if after.limits.unit is QuotaUnit.VIDEOS:
            amount = f"{plural(used, 'video')} still being made {'keeps' if used == 1 else 'keep'}"
        else:
            amount = f"{used} s of video still being made keep"
        message += f" {amount} counting until they finish (a failed one is refunded then)."
    return message


def channel_list(channel_ids: frozenset[int]) -> str:
    return ", ".join(f"<#{c}>" for c in sorted(channel_ids))
