"""Prometheus metrics, one registry per bot (so tests can run several bots in a process)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from bot.polling import Learned


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Gauge(
            "sora_tasks", "Tasks in the database by state", ["state"], registry=self.registry
        )
        self.provider_requests = Counter(
            "sora_provider_status_checks",
            "Status checks sent to the video provider, by result",
            ["result"],
            registry=self.registry,
        )
        self.callbacks = Counter(
            "sora_callbacks", "Provider callbacks received, by result", ["result"],
            registry=self.registry,
        )  # fmt: skip
        self.observe_lag = Histogram(
            "sora_observe_lag_seconds",
            "From the provider finishing (as it reports) to the result posted in Discord",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.notice_lag = Histogram(
            "sora_notice_lag_seconds",
            "From the provider finishing (its own timing, or the middle of the last check"
            " that found the video running and the first that found it done) to the"
            " tracker noticing: what the polling schedule keeps under POLL_LAG_TARGET_SECONDS",
            buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.generation_seconds = Gauge(
            "sora_generation_seconds",
            "Learned generation time of the latest videos, by provider, kind and quantile",
            ["provider", "kind", "quantile"],
            registry=self.registry,
        )
        self.generation_samples = Gauge(
            "sora_generation_samples",
            "Finished videos the learned generation times are read from",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.first_check_seconds = Gauge(
            "sora_poll_first_check_seconds",
            "When the current schedule first checks a new task of this kind, after submission",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.task_seconds = Histogram(
            "sora_task_seconds",
            "From submission to a final state",
            buckets=(30, 60, 120, 180, 300, 600, 1200, 3600),
            registry=self.registry,
        )
        self.provider_creates = Counter(
            "sora_provider_creates",
            "Video creates per provider: ok, or the provider-side reason they failed",
            ["provider", "result"],
            registry=self.registry,
        )
        self.provider_failovers = Counter(
            "sora_provider_failovers",
            "Jobs that moved on from a provider to the next one",
            ["provider"],
            registry=self.registry,
        )
        self.provider_task_failures = Counter(
            "sora_provider_task_failures",
            "Accepted tasks that failed at a provider, by reason",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.discord_failures = Counter(
            "sora_discord_post_failures", "Posts to Discord that failed", registry=self.registry
        )
        self.loop_restarts = Counter(
            "sora_tracker_restarts", "Times the tracker loop was restarted", registry=self.registry
        )

    def render(
        self,
        counts: dict[str, int],
        learned: Iterable[tuple[str, Iterable[Learned]]] = (),
    ) -> bytes:
        """The metrics text; `learned`: each provider's learned plans."""
        for state in ("queued", "submitted", "running", "succeeded", "failed", "expired"):
            self.tasks.labels(state=state).set(counts.get(state, 0))
        for provider, kind in ((p, k) for p, kinds in learned for k in kinds):
            for name, value in (("0.05", kind.p05), ("0.5", kind.p50), ("0.95", kind.p95)):
                self.generation_seconds.labels(provider, kind.kind, name).set(value)
            self.generation_samples.labels(provider, kind.kind).set(kind.samples)
            self.first_check_seconds.labels(provider, kind.kind).set(kind.schedule.first_delay)
        return generate_latest(self.registry)
