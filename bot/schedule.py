"""When to check an unfinished task next: the polling policy, pure and testable."""

from __future__ import annotations

from dataclasses import dataclass

from bot.providers.base import Capabilities


@dataclass(frozen=True, slots=True)
class Schedule:
    """When to look at a task next. Polling is the safety net when callbacks are on."""

    first_delay: float
    interval: float
    callbacks: bool = False

    @classmethod
    def for_provider(
        cls,
        caps: Capabilities,
        *,
        first_delay: float | None,
        interval: float | None,
        callbacks: bool,
    ) -> Schedule:
        return cls(
            first_delay=first_delay if first_delay is not None else caps.expected_seconds * 0.5,
            interval=interval if interval is not None else caps.poll_interval_seconds,
            callbacks=callbacks,
        )

    def next_delay(self, elapsed: float, progress: int | None) -> float:
        """Seconds until the next check of a task `elapsed` seconds old.

        With progress, the remaining time is estimated from the rate so far and the next
        check lands about half-way there (never sooner than the interval): few requests
        early, quick notice at the end. Without progress, every `interval`. With
        callbacks, polling only catches lost callbacks, so it is four times rarer.
        """
        delay = self.interval
        if progress is not None and 0 < progress < 100 and elapsed > 0:
            remaining = elapsed * (100 - progress) / progress
            delay = max(self.interval, min(remaining / 2, self.interval * 6))
        if self.callbacks:
            delay = max(delay * 4, self.first_delay)
        return delay
