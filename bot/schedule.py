"""When to check an unfinished task next: the polling policy, pure and testable.

Three cases, by what the provider tells us:

- It reports progress: the remaining time is estimated from the rate so far.
- It reports nothing but "running" (APIXO, for one): every check before the video can be
  ready is wasted, and every second between the end and the next check is observe lag.
  Given recent generation times and an observe-lag target, `from_history` places the
  first check just after the fastest generations and then checks at the lag target.
- Callbacks are on: polling only catches lost callbacks, so the first check waits until
  nearly every generation has ended (and called back), and later ones are rare.

Nothing here assumes how long a video takes: `from_history` takes the provider's recent
generation times for one kind of video (`bot.polling` keeps them); `for_provider` is the
documented guidance used until there is enough history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import GenerationTime
from bot.providers.base import Capabilities

# The tracker claims due tasks on a 0.1 s tick, so a check happens on the first tick at or
# after it is due, a few milliseconds late. An interval 0.05 s short of the lag target
# lands on the tick at the target (2.0 s for a 2 s target) rather than the one after it.
CHECK_HEADROOM_SECONDS = 0.05
# Share of tasks allowed to wait longer than the lag target because the first check
# comes a little after the shortest generations. A 95th-percentile target allows 5 %, and
# the start is where that slack buys the most: a second without checks there saves a
# request for every task, while a longer gap later saves one only for the tasks still
# running. Three points go there; two are left for checks that run late (ticks run a
# little long, and a process following many tasks cannot always check them on time).
EARLY_SHARE = 0.03
# With callbacks on and no spread known, the first safety-net check comes this many
# times the provider's expected generation time after submission.
CALLBACK_SAFETY_FACTOR = 1.5
# With callbacks on, the safety net waits for this share of generations to have ended.
CALLBACK_SHARE = 0.99


def early_quantile(ordered: Sequence[float], share: float) -> float:
    """A cautious estimate of the `share` quantile of sorted `ordered`, for the first
    check: a first check placed late makes every task faster than it wait, so the
    estimate errs early by the sampling noise. Of n samples, about n*share fall below the
    true quantile, give or take sqrt(n*share): this takes the sample one such spread
    lower. With too few samples to resolve it (under about 70 for 3 %), it reaches below
    the fastest by the typical gap between the fastest few."""
    if not ordered:
        raise ValueError("no samples")
    expected = share * len(ordered)
    below = expected - math.sqrt(expected)
    if below >= 1:
        return ordered[math.floor(below) - 1]
    few = min(4, len(ordered) - 1)
    gap = (ordered[few] - ordered[0]) / few if few > 0 else 0.0
    return max(0.0, ordered[0] - gap * (1 - max(0.0, below)))


def quantile(ordered: Sequence[float], share: float) -> float:
    """The `share` quantile of sorted `ordered`, erring to the safe side for a schedule:
    below the median the lower of the two nearest samples (a first check placed a little
    early costs a request; a little late costs lag), above it the higher."""
    if not ordered:
        raise ValueError("no samples")
    position = share * (len(ordered) - 1)
    index = math.floor(position) if share < 0.5 else math.ceil(position)
    return ordered[min(len(ordered) - 1, max(0, index))]


@dataclass(frozen=True, slots=True)
class Schedule:
    """When to look at a task next. Polling is the safety net when callbacks are on."""

    first_delay: float  # the first check, in seconds after submission
    interval: float  # between checks when the provider reports no progress
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
        if first_delay is None:
            # Polling alone: half the expected time, in case it is quick. With callbacks
            # the first check is only a safety net: after nearly every task has ended.
            factor = CALLBACK_SAFETY_FACTOR if callbacks else 0.5
            first_delay = caps.expected_seconds * factor
        return cls(
            first_delay=first_delay,
            interval=interval if interval is not None else caps.poll_interval_seconds,
            callbacks=callbacks,
        )

    @classmethod
    def from_history(
        cls,
        times: Sequence[GenerationTime],
        *,
        lag: float,
        callbacks: bool = False,
        headroom: float = CHECK_HEADROOM_SECONDS,
    ) -> Schedule:
        """A schedule for videos like `times` (recent generation times of one kind), the
        provider reporting no progress, that notices the end within `lag` seconds for
        95 % of tasks at the fewest checks.

        A check made while the video cannot be ready costs a request and tells nothing.
        Early checks are the expensive ones: every task pays for them, while a late check
        is paid only by the tasks still running. A gap longer than `lag` anywhere makes
        the same share of tasks wait too long, so the slack a percentile target gives is
        best spent at the start: the first check comes one interval after the fastest
        3 % (`EARLY_SHARE`, estimated erring early: `early_quantile`), then one every
        `lag` less the tracker's headroom (`headroom`: how late its checks run, measured;
        never more than a quarter of `lag`). For an even spread of 40-120 s and a 2 s
        target, that is about 20 checks a task where checking every 3 s takes 27.
        Whatever the distribution's shape (skewed, two humps, a provider that got
        slower), only its low end decides when checking starts.

        With callbacks, the first check waits for the slowest 1 % plus a quarter of the
        spread: when callbacks arrive, as they should, no check is needed at all."""
        if lag <= 0:
            raise ValueError("lag must be positive")
        ordered = sorted(t.seconds for t in times)
        low = early_quantile(ordered, EARLY_SHARE)
        high = quantile(ordered, CALLBACK_SHARE)
        interval = max(lag * 3 / 4, lag - max(CHECK_HEADROOM_SECONDS, headroom))
        first = high + max(lag, (high - low) / 4) if callbacks else low + interval
        return cls(first_delay=max(interval, first), interval=interval, callbacks=callbacks)

    def next_delay(self, elapsed: float, progress: int | None) -> float:
        """Seconds until the next check of a task `elapsed` seconds old.

        With progress, the remaining time is estimated from the rate so far and the next
        check lands about half-way there (never sooner than the interval): few requests
        early, quick notice at the end. Without progress, every `interval`. Never before
        `first_delay`: a task checked earlier than the schedule now says (it was planned
        when the provider was quicker) waits for the new first check rather than paying
        for checks the history says are wasted. With callbacks, polling only catches lost
        callbacks: nothing before `first_delay` (a progress callback must not bring the
        first check forward), then four times rarer than polling alone.
        """
        delay = self.interval
        if progress is not None and 0 < progress < 100 and elapsed > 0:
            remaining = elapsed * (100 - progress) / progress
            delay = max(self.interval, min(remaining / 2, self.interval * 6))
        if self.callbacks:
            delay *= 4
        return max(delay, self.first_delay - elapsed)
