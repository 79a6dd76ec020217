"""What `/sora providers` shows: each configured provider in order, its state and its
last 24 hours (`cogs/providers.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import discord

from bot.discord.rendering import INFO, fit_embed, relative
from bot.providers.base import VideoProvider
from bot.providers.health import Availability, Health, ProviderStats, availability
from bot.wording import wait_phrase

REASONS = {
    "out_of_credits": "out of credits",
    "key_rejected": "key rejected",
    "unavailable": "unreachable or failing",
    "rate_limited": "rate-limited",
    "concurrency_cap": "at its concurrency cap",
    "content_policy": "content refused",
    "invalid_image": "picture refused",
    "provider_error": "failed at the provider",
    "expired": "timed out",
    "rejected": "rejected by a moderator",
    "approval_expired": "not approved in time",
}


def state_line(health: Health, now: datetime) -> str:
    why = REASONS.get(health.last_reason or "", health.last_reason or "failures")
    match availability(health, now):
        case Availability.OK:
            return "✅ ok"
        case Availability.PROBE:
            return f"🟡 cool-down over ({why}): the next job tries it"
        case Availability.COOLING:
            until = health.cooldown_until or now
            if until <= now:
                return f"🟡 being tried again ({why})"
            return f"⏸️ cooling down until {relative(until)} ({why})"


def stats_line(stats: ProviderStats | None) -> str:
    if stats is None or (stats.tasks == 0 and not stats.failures and not stats.failovers):
        return "Last 24 h: no jobs"
    parts = [f"{stats.tasks} jobs"]
    rate = stats.success_rate
    if rate is not None:
        parts.append(f"{rate:.0%} succeeded")
    if stats.median_seconds is not None:
        parts.append(f"median {wait_phrase(stats.median_seconds)}")
    if stats.failovers:
        parts.append(f"{stats.failovers} passed on to the next provider")
    failures = stats.failures or {}
    if failures:
        listed = ", ".join(
            f"{count} {REASONS.get(reason, reason)}"
            for reason, count in sorted(failures.items(), key=lambda item: -item[1])
        )
        parts.append(f"failures: {listed}")
    return "Last 24 h: " + "; ".join(parts)


def providers_embed(
    providers: Sequence[VideoProvider],
    health: Mapping[str, Health],
    stats: Mapping[str, ProviderStats],
    now: datetime,
) -> discord.Embed:
    embed = discord.Embed(
        title="Video services",
        colour=INFO,
        description="In the order they take new jobs: each goes to the first one that is ok.",
    )
    for position, provider in enumerate(providers, start=1):
        embed.add_field(
            name=f"{position}. {provider.display_name} (`{provider.name}`)",
            value=(
                f"{state_line(health.get(provider.name, Health(provider.name)), now)}\n"
                f"{stats_line(stats.get(provider.name))}"
            ),
            inline=False,
        )
    return fit_embed(embed)
