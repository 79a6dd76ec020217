"""When to check each task, learned from how long this provider took for the last
videos of the same kind.

A provider that reports nothing but "running" makes the bot guess when to look: every
check before the video is ready is a wasted request, every second after it is a member
waiting. The documentation's guidance ("wait about 180 s, then poll every 10 s") fits no
provider for long. What fits is its own recent history: the tracker records how long
each finished video took (`TaskUpdate.took`, stored with the task's finish), and this
planner turns the latest few hundred of each kind (`bot.domain.kind_of`) into a
`Schedule` (`Schedule.from_history`): first check just after the fastest, then one
every lag target.

The history lives in the store, so it survives restarts and every bot process on the
same database learns from all of them: the planner reloads it every minute, and adds
what this process finishes at once. With less than `MIN_SAMPLES` of a kind, the
provider's documented guidance (`Schedule.for_provider`) is used, and learned from.
`POLL_FIRST_DELAY_SECONDS` / `POLL_INTERVAL_SECONDS` override whatever was learned.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain import (
    GenerationOptions,
    GenerationTime,
    Mode,
    Task,
    TaskState,
    kind_of,
    utc_now,
)
from bot.providers.base import Capabilities, ProviderState, ProviderStatus
from bot.schedule import Schedule, quantile
from bot.store import Store

log = logging.getLogger(__name__)

# Finished videos of a kind before their history is trusted over the documentation.
MIN_SAMPLES = 20
# Generation times kept (and read back) per kind, the store keeps as many: enough to
# place the first check near the fastest 3 % without much sampling noise. The low end
# follows a provider that speeds up within a few videos; a slowdown takes longer to
# trust, and costs only requests meanwhile, not lag.
WINDOW = 500
# Checks whose lateness sets the plans' headroom, each time this many have been made.
LATENESS_WINDOW = 500
# How often the history is read again, for what other processes finished.
REFRESH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Learned:
    """What `/metrics` shows of one kind's history."""

    kind: str
    samples: int
    p05: float
    p50: float
    p95: float
    schedule: Schedule


def generation_time(
    task: Task, status: ProviderStatus, now: datetime, running_at: datetime | None
) -> GenerationTime | None:
    """How long `task`'s video took, counted from submission as the schedule counts.

    The provider's own figure where it gives one (never more than the time since
    submission: no clock can make it longer than that); otherwise bounded by the last
    check that found it running (or submission) and now, when it was found done."""
    elapsed = (now - task.started_at).total_seconds()
    if elapsed <= 0:
        return None
    if status.generation_seconds is not None:
        return GenerationTime.exact(min(status.generation_seconds, elapsed))
    seen_running = 0.0 if running_at is None else (running_at - task.started_at).total_seconds()
    return GenerationTime(min(max(0.0, seen_running), elapsed), elapsed)


MAX_LEASE_SECONDS = 30.0  # TASK_LEASE_SECONDS' default


class PollPlanner:
    """Schedules per kind of video, from the store's generation-time history."""

    def __init__(
        self,
        *,
        provider: str,
        capabilities: Capabilities,
        lag: float,
        callbacks: bool,
        first_delay: float | None = None,
        interval: float | None = None,
        store: Store | None = None,
        clock: Callable[[], datetime] = utc_now,
        min_samples: int = MIN_SAMPLES,
        max_lease: float = MAX_LEASE_SECONDS,
    ) -> None:
        """`first_delay`/`interval`: the operator's `POLL_*` settings, which win over
        anything learned. Without a `store`, nothing is read back (tests, benchmarks
        that hand it a fixed schedule)."""
        self._provider = provider
        self._caps = capabilities
        self._lag = lag
        self._callbacks = callbacks
        self._first_override = first_delay
        self._interval_override = interval
        self._store = store
        self._clock = clock
        self._min_samples = min_samples
        self._max_lease = max_lease
        self._times: dict[str, deque[GenerationTime]] = {}
        self._plans: dict[str, Schedule] = {}
        self._next_refresh: datetime | None = None
        self._guidance = Schedule.for_provider(
            capabilities, first_delay=first_delay, interval=interval, callbacks=callbacks
        )
        self._fixed: Schedule | None = None
        # How late the tracker's checks run (claimed after they were due), latest first:
        # the interval leaves that much room, so a busy process still meets the target.
        self._lateness: deque[float] = deque(maxlen=LATENESS_WINDOW)
        self._headroom = 0.0

    @classmethod
    def fixed(cls, schedule: Schedule) -> PollPlanner:
        """Always `schedule`, learning nothing (tests that want a known rhythm)."""
        unused = Capabilities(
            modes=frozenset(Mode),
            aspects=(),
            durations=(),
            qualities=(),
            max_prompt_length=0,
            image_input="url",
            result_lifetime=None,
        )
        planner = cls(provider="fixed", capabilities=unused, lag=schedule.interval, callbacks=False)
        planner._fixed = schedule
        return planner

    # What the tracker and the service ask

    @property
    def lease(self) -> float:
        """How far a claimed task's next check is pushed: the shortest interval any plan
        uses, so a check that brings no news needs no write (`nothing_new`), and at most
        `TASK_LEASE_SECONDS`: a task claimed by a process that then died is checked by
        another one within that."""
        if self._fixed is not None:
            return self._fixed.interval
        intervals = [self._guidance.interval, *(p.interval for p in self._plans.values())]
        return min(*intervals, self._max_lease)

    def schedule_for(self, mode: Mode, options: GenerationOptions) -> Schedule:
        if self._fixed is not None:
            return self._fixed
        return self._plans.get(kind_of(mode, options), self._guidance)

    def nothing_new(self, task: Task, status: ProviderStatus, now: datetime) -> bool:
        """Whether a status answer changes nothing the claim has not already written:
        still queued or running as before, the same progress, and the next check due
        one lease after this one, where the claim put it."""
        if status.state is not ProviderState.RUNNING and status.state is not ProviderState.QUEUED:
            return False
        same_state = (status.state is ProviderState.RUNNING) == (task.state is TaskState.RUNNING)
        if not same_state or status.progress != task.progress:
            return False
        elapsed = (now - task.started_at).total_seconds()
        schedule = self.schedule_for(task.mode, task.options)
        return schedule.next_delay(elapsed, status.progress) == self.lease

    def typical_seconds(self, mode: Mode, options: GenerationOptions) -> float | None:
        """How long such a video usually takes (the median of its history), or None
        while there is too little history to say."""
        times = self._times.get(kind_of(mode, options))
        if times is None or len(times) < self._min_samples:
            return None
        return quantile(sorted(t.seconds for t in times), 0.5)

    # Learning

    def learn(self, mode: Mode, options: GenerationOptions, took: GenerationTime) -> None:
        """One more finished video (already stored by `finish`): re-plan its kind now."""
        kind = kind_of(mode, options)
        self._times.setdefault(kind, deque(maxlen=WINDOW)).append(took)
        self._replan(kind)

    def checked_late(self, seconds: float) -> None:
        """The tracker made a check `seconds` after it was due. Every `LATENESS_WINDOW`
        checks, the plans take the 90th percentile as their headroom."""
        self._lateness.append(max(0.0, seconds))
        if len(self._lateness) < LATENESS_WINDOW:
            return
        headroom = quantile(sorted(self._lateness), 0.9)
        self._lateness.clear()
        if abs(headroom - self._headroom) >= 0.01:
            self._headroom = headroom
            for kind in self._times:
                self._replan(kind)

    async def load(self) -> None:
        """Read the history from the store (at start, and every `REFRESH_EVERY`)."""
        if self._store is None or self._fixed is not None:
            return
        history = await self._store.generation_times(self._provider, WINDOW)
        self._times = {kind: deque(times, maxlen=WINDOW) for kind, times in history.items()}
        self._plans.clear()
        for kind in self._times:
            self._replan(kind)
        self._next_refresh = self._clock() + REFRESH_EVERY

    async def refresh_if_due(self) -> None:
        """Pick up what other processes on the same database finished. A failed read
        keeps the plans there are: a database hiccup must not stop the polling."""
        if self._next_refresh is None or self._clock() < self._next_refresh:
            return
        self._next_refresh = self._clock() + REFRESH_EVERY
        try:
            await self.load()
        except Exception:
            log.exception("reading the generation-time history failed; keeping the plans")

    def _replan(self, kind: str) -> None:
        times = self._times.get(kind, ())
        if len(times) < self._min_samples:
            self._plans.pop(kind, None)
            return
        learned = Schedule.from_history(
            times, lag=self._lag, callbacks=self._callbacks, headroom=self._headroom
        )
        if self._first_override is not None:
            learned = replace(learned, first_delay=self._first_override)
        if self._interval_override is not None:
            learned = replace(learned, interval=self._interval_override)
        self._plans[kind] = learned

    # What /metrics shows

    def snapshot(self) -> list[Learned]:
        found: list[Learned] = []
        for kind, times in sorted(self._times.items()):
            if not times:
                continue
            ordered = sorted(t.seconds for t in times)
            found.append(
                Learned(
                    kind=kind,
                    samples=len(ordered),
                    p05=quantile(ordered, 0.05),
                    p50=quantile(ordered, 0.5),
                    p95=quantile(ordered, 0.95),
                    schedule=self._plans.get(kind, self._guidance),
                )
            )
        return found


class PollPlanners:
    """One `PollPlanner` per configured provider (each learns its own provider's
    times), asked by the provider a task is at. A provider not listed (a task from a
    provider since removed, or a test's) gets the first planner's plans."""

    def __init__(self, planners: Mapping[str, PollPlanner] | PollPlanner) -> None:
        if isinstance(planners, PollPlanner):
            planners = {"": planners}
        if not planners:
            raise ValueError("at least one planner")
        self._planners = dict(planners)
        self._default = next(iter(self._planners.values()))

    def of(self, provider: str) -> PollPlanner:
        return self._planners.get(provider, self._default)

    def items(self) -> list[tuple[str, PollPlanner]]:
        return list(self._planners.items())

    @property
    def lease(self) -> float:
        """The shortest lease of any provider's plans (`PollPlanner.lease`)."""
        return min(planner.lease for planner in self._planners.values())

    async def load(self) -> None:
        for planner in self._planners.values():
            await planner.load()

    async def refresh_if_due(self) -> None:
        for planner in self._planners.values():
            await planner.refresh_if_due()

    def checked_late(self, seconds: float) -> None:
        """How late this process's checks run concerns every provider's plans alike."""
        for planner in self._planners.values():
            planner.checked_late(seconds)
