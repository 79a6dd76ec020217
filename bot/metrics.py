"""Prometheus metrics, one registry per bot (so tests can run several bots in a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        self.task_seconds = Histogram(
            "sora_task_seconds",
            "From submission to a final state",
            buckets=(30, 60, 120, 180, 300, 600, 1200, 3600),
            registry=self.registry,
        )
        self.discord_failures = Counter(
            "sora_discord_post_failures", "Posts to Discord that failed", registry=self.registry
        )
        self.loop_restarts = Counter(
            "sora_tracker_restarts", "Times the tracker loop was restarted", registry=self.registry
        )

    def render(self, counts: dict[str, int]) -> bytes:
        for state in ("queued", "submitted", "running", "succeeded", "failed", "expired"):
            self.tasks.labels(state=state).set(counts.get(state, 0))
        return generate_latest(self.registry)
