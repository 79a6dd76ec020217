"""Provider health: which configured providers may take a new job right now.

Pure rules, no I/O. The store keeps each provider's `Health` (so every process and a
restart see the same state) and applies `after_create` to it in the same transaction
that records the create; `bot.providers.pool` asks `availability` before each create.

A provider whose creates failed `threshold` times in a row (for reasons about the
provider, not the request) cools down for `cooldown` seconds: no new job goes to it.
After that one request probes it (`claim_probe`): success ends the cool-down, failure
starts another.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

FAILURES_BEFORE_COOLDOWN = 3
PROBE_SECONDS = 60.0  # how long a claimed probe keeps others away before it may be retried


class Availability(StrEnum):
    OK = "ok"
    PROBE = "probe"  # the cool-down is over: one request may try it
    COOLING = "cooling"


class FailoverReason(StrEnum):
    """Why a create failed over to the next provider (metrics and `/sora providers`)."""

    CREDITS = "out_of_credits"
    AUTH = "key_rejected"
    UNAVAILABLE = "unavailable"  # unreachable, 5xx or timeouts after the retries
    RATE_LIMITED = "rate_limited"
    BUSY = "concurrency_cap"


@dataclass(frozen=True, slots=True)
class Health:
    provider: str
    failures_in_row: int = 0
    cooldown_until: datetime | None = None
    last_reason: str | None = None  # a FailoverReason value
    probing_until: datetime | None = None  # a probe is out until then


def availability(health: Health, now: datetime) -> Availability:
    if health.cooldown_until is None:
        return Availability.OK
    if now < health.cooldown_until:
        return Availability.COOLING
    if health.probing_until is not None and now < health.probing_until:
        return Availability.COOLING  # another request is probing it
    return Availability.PROBE


def claim_probe(health: Health, now: datetime) -> Health:
    """The request that probes a provider whose cool-down is over."""
    return replace(health, probing_until=now + timedelta(seconds=PROBE_SECONDS))


def after_create(
    health: Health,
    *,
    ok: bool,
    reason: str | None,
    now: datetime,
    threshold: int = FAILURES_BEFORE_COOLDOWN,
    cooldown: float,
) -> Health:
    """The health once a create succeeded, or failed for a provider-side `reason`."""
    if ok:
        return Health(health.provider)
    failures = health.failures_in_row + 1
    probing = health.cooldown_until is not None
    if failures >= threshold or probing:
        return Health(
            health.provider,
            failures_in_row=failures,
            cooldown_until=now + timedelta(seconds=cooldown),
            last_reason=reason,
        )
    return replace(health, failures_in_row=failures, last_reason=reason)


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """A provider's last 24 hours, for `/sora providers` (all from the store)."""

    provider: str
    tasks: int = 0  # tasks it took
    succeeded: int = 0
    failures: dict[str, int] | None = None  # by reason: create failures and failed tasks
    median_seconds: float | None = None  # generation time of its finished videos
    failovers: int = 0  # jobs that moved on from it to the next provider

    @property
    def success_rate(self) -> float | None:
        finished = self.succeeded + sum((self.failures or {}).values())
        return None if finished == 0 else self.succeeded / finished


Row = Mapping[str, Any]


def stats_from(
    tasks: Iterable[Row], events: Iterable[Row], moved: Iterable[Row], times: Iterable[Row]
) -> dict[str, ProviderStats]:
    """Each provider's `ProviderStats` from what a store counted since some moment (both
    stores run the same four grouped queries):

    tasks   (provider, state, failure_code, n)  tasks created, by how they stand
    events  (provider, ok, reason, failover, n) creates, by outcome
    moved   (retried_from, n)                   tasks moved on after it failed them
    times   (provider, seconds)                 generation times of finished videos
    """
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in tasks:
        mine = counts[row["provider"]]
        mine["tasks"] += row["n"]
        if row["state"] == "succeeded":
            mine["succeeded"] += row["n"]
        elif row["state"] in ("failed", "expired"):
            failures[row["provider"]][row["failure_code"] or row["state"]] += row["n"]
    for row in events:
        counts[row["provider"]]["creates"] += row["n"]
        if not row["ok"]:
            failures[row["provider"]][row["reason"] or "error"] += row["n"]
        if row["failover"]:
            counts[row["provider"]]["failovers"] += row["n"]
    for row in moved:
        # A task moved on is its first provider's failure (the move cleared its code).
        failures[row["retried_from"]]["provider_error"] += row["n"]
        counts[row["retried_from"]]["failovers"] += row["n"]
    seconds: dict[str, list[float]] = defaultdict(list)
    for row in times:
        seconds[row["provider"]].append(float(row["seconds"]))
    return {
        name: ProviderStats(
            name,
            tasks=counts[name]["tasks"],
            succeeded=counts[name]["succeeded"],
            failures=dict(failures[name]),
            median_seconds=statistics.median(seconds[name]) if seconds[name] else None,
            failovers=counts[name]["failovers"],
        )
        for name in sorted(set(counts) | set(failures) | set(seconds))
    }
