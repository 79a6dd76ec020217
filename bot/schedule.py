"""When to check an unfinished task next: the polling policy, pure and testable.

Three cases, by what the provider tells us:

- It reports progress: the remaining time is estimated from the rate so far.
- It reports nothing but "running" (APIXO, for one): every check before the video can be
  ready is wasted, and every second between the end and the next check is observe lag.
  Given the spread of generation times and an observe-lag target, `for_spread` places
  the first check just after the shortest generations and then checks at the lag target.
- Callbacks are on: polling only catches lost callbacks, so the first check waits until
  nearly every generation has ended (and called back), and later ones are rare.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.providers.base import Capabilities

# The tracker claims due tasks on a 0.1 s tick, so a check happens on the first tick at or
# after it is due, a few milliseconds late. An interval 0.05 s short of the lag target
# lands on the tick at the target (2.0 s for a 2 s target) rather than the one after it.
CHECK_HEADROOM_SECONDS = 0.05
# Share of tasks allowed to wait longer than the lag target because the first check
# comes a little after the shortest generations. A 95th-percentile target allows 5 %;
# spending only 1 point leaves the rest for checks that run late: ticks run a little
# long, and a process following many tasks cannot always check them on time.
EARLY_SHARE = 0.01
# With callbacks on and no spread known, the first safety-net check comes this many
# times the provider's expected generation time after submission.
CALLBACK_SAFETY_FACTOR = 1.5


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
    def for_spread(
        cls,
        shortest: float,
        longest: float,
        *,
        lag: float,
        callbacks: bool = False,
    ) -> Schedule:
        """A schedule for generations taking `shortest` to `longest` seconds, the provider
        reporting no progress, that notices the end within `lag` seconds for 95 % of tasks.

        A check made while the video cannot be ready costs a request and tells nothing.
        Early checks are the expensive ones: every task pays for them, while a late check
        is paid only by the tasks still running. A gap longer than `lag` anywhere makes
        the same share of tasks wait too long, so the little slack a percentile target
        gives is best spent at the start: the first check comes after the shortest
        generation plus `lag` plus 1 % of the spread, then one every `lag` (less the
        tracker's headroom). Polling alone, for an even spread of 40-120 s and a 2 s
        target, that is about 20 checks a task where checking every 3 s takes 27.

        With callbacks, the first check waits for the longest generation plus a quarter
        of the spread: when callbacks arrive, as they should, no check is needed at all.
        """
        if not 0 < shortest <= longest:
            raise ValueError("need 0 < shortest <= longest")
        if lag <= 0:
            raise ValueError("lag must be positive")
        spread = longest - shortest
        interval = max(lag / 2, lag - CHECK_HEADROOM_SECONDS)
        if callbacks:
            first = longest + max(lag, spread / 4)
        else:
            first = shortest + lag + EARLY_SHARE * spread
        return cls(first_delay=first, interval=interval, callbacks=callbacks)

    def next_delay(self, elapsed: float, progress: int | None) -> float:
        """Seconds until the next check of a task `elapsed` seconds old.

        With progress, the remaining time is estimated from the rate so far and the next
        check lands about half-way there (never sooner than the interval): few requests
        early, quick notice at the end. Without progress, every `interval`. With
        callbacks, polling only catches lost callbacks: nothing before `first_delay`
        (a progress callback must not bring the first check forward), then four times
        rarer than polling alone.
        """
        delay = self.interval
        if progress is not None and 0 < progress < 100 and elapsed > 0:
            remaining = elapsed * (100 - progress) / progress
            delay = max(self.interval, min(remaining / 2, self.interval * 6))
        if self.callbacks:
            delay = max(delay * 4, self.first_delay - elapsed)
        return delay
