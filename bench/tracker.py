"""Tracker benchmark: the real, learning schedule against the every-3-s poller, for
several spreads of generation times; a burst of commands; memory at 10,000 tasks.

Run: .venv/bin/python -m bench.tracker            (all spreads, 500 tasks a wave, real
                                                   time, 200 commands: about 50 minutes;
                                                   the estimate is printed at the start)
     .venv/bin/python -m bench.tracker --quick    (the smoke test: 100 tasks a wave at 4x,
                                                   40-120 s only, 50 commands: ~2 min)
     .venv/bin/python -m bench.tracker --tasks 200 --spreads 30-80 --only tracker every3 --burst 0
     .venv/bin/python -m bench.tracker --memory 10000   (10,000 pending tasks with
                                                   callbacks, peak RSS: ~5 min, real time)
     .venv/bin/python -m bench.tracker --spreads doubling 25-60 --only tracker every3

Everything listens on 127.0.0.1 only, every step has a deadline, and it stops by itself.

What is measured. Nothing hands the tracker the spread: each follower that is the product
runs the real `PollPlanner` (APIXO's real capabilities, lag target 2 s as
POLL_LAG_TARGET_SECONDS' default, no POLL_* overrides, callbacks as the scenario says)
over the real `SqliteStore`, starting from a fresh database with no generation-time
history, so its first wave runs on the documentation's guidance (`Schedule.for_provider`:
first check after 90 s, then every 10 s; with callbacks after 270 s) and learns; the
next wave runs on what it learned. For each spread (simulated seconds: 40-120, 30-80,
60-170, one drawn from the seed, and "doubling": 40-120 twice, then 80-240 twice, the
provider suddenly taking twice as long), the followers are:

- **tracker** (polling alone): the real `Tracker` with that planner, the real APIXO
  adapter over httpx (`ProviderHTTP`, without the adapter's own request-rate limiter) and
  a stub deliverer. Waves of N tasks, in ONE child process and ONE database, so the
  learning carries over: "cold" (an empty history), then "warm" (learned from the cold
  one); for doubling two more, "2x" (the provider now takes twice as long, the plan is
  the old one) and "2x again" (re-learned: the planner keeps the latest 500 of a kind,
  so with fewer than 500 tasks a wave the old ones still count there, and it says so).
- **callbacks**: the same with callbacks on; the real `WebhookServer` receives the
  provider's callbacks, 1 % of which are never sent (`--lose-callbacks`), so the safety
  net has work to do. Same waves.
- **every3**: the provider docs' loop for each task (sleep 3 s, check, repeat; at most 16
  checks in flight like the tracker), no database, one wave on the same durations as
  the tracker's judged wave (the warm one; for doubling the last one). `every30` (every
  30 s) is available with `--only`.

A wave: every task is submitted at the same moment, its generation time drawn uniformly
from the wave's spread (seeded: the tracker and callbacks followers get the same tasks,
every3 the same as the judged wave). The child creates the tasks the way the bot does:
`store.reserve`, then `store.mark_submitted` with `next_check_at = max(now, created_at +
planner.schedule_for(...).first_delay)` (as `SoraService.send` writes it, so a warm wave
gets the learned plan). It writes them just before the wave's start (5 ms a task ahead)
with the store's clock pinned to that start, so every `created_at` is that moment; at
the start it tells the parent the moment and the callback tokens, and the parent's
provider counts each generation from that moment. The next wave starts when every task
of this one has been handed over (or its deadline passed: well after the last
generation and the plan's first check).

The provider is a small aiohttp server in the parent, speaking APIXO's wire format:
`statusTask` answers "processing" with no progress until the task's generation time has
passed, then "success" with `createTime`, `completeTime` and `costTime` in simulated
milliseconds (from which the adapter reports the exact generation time the planner
learns); with callbacks on, it POSTs the final status to the task's callback URL at that
moment. The tracker's learning never sees the spread, only what the provider reports.

Figures, all in simulated seconds, per (spread, follower, wave):
- **status req/task**: `statusTask` requests answered for the wave's tasks, divided by
  them; **vs every 3 s**: the ratio to the every-3-s poller's on that spread.
- **lag**: from the provider finishing a task to the tracker handing it to the deliverer
  (a stub that notes the time and marks the task posted): p50/p95/p99; **not handed
  over**: tasks still not handed over at the wave's deadline. Printed as each wave ends
  (and in `--json`), where the lag comes from, for the tasks a status check found done:
  the **check gap** (the last check that found the task running to the one that found
  it done) and **check to hand-over** (that check to the deliverer).
- **plan**: the planner's first check and interval for this kind of video when the wave
  starts (read with `planner.schedule_for` in the child), and from how many samples.
- **CPU s**: `time.process_time()` of the child (all its threads, aiosqlite's too) from
  the wave's start (after creating its tasks) to the last hand-over; **peak RSS**: the
  child's `ru_maxrss` so far (the bot's modules, discord.py included, imported).

Verdicts (judged wave only; cold and "2x" waves are reported, not judged): polling alone,
p95 lag at most 2 s with at most 75 % of the every-3-s poller's status requests; with
callbacks, p95 at most 0.5 s and at most 2 status requests a task; the burst of commands
acknowledged at p99 under 0.5 s; 10,000 pending tasks under 150 MB (`--memory 10000`).
No schedule can meet the polling target on every spread: checking every 2 s costs 1.5
times a 3-s poller over the part of the spread it covers, so when the longest generation
is more than about 3 times the shortest, the 75 % cannot be met together with a 2 s lag.
The drawn spread's longest is 1.6-2.9 times its shortest.

How it runs: each follower is a child process of its own, so its CPU and memory are its
own. The callbacks follower (nearly idle: a few requests a second) runs beside the
polling followers of the same spread to keep the whole run under 50 minutes; `--serial`
runs one child at a time. Time can be scaled (`--scale 4`: a real second is four
simulated ones; generation times, intervals, the tracker's clock and tick together), but
that multiplies the checks a second the process must make, and every millisecond of
work counts k times in the lag: `--quick` is a smoke test whose lag figures read high.

The burst: the real bot (demo provider, quotas raised) against the in-repo Discord fake,
started as `tests/conftest.py` does, in its own child process; N `/sora text` commands
are dispatched at once and `first_callback_at` (dispatch to acknowledgement, measured
by the fake) is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NewTask,
    NotifyState,
    QuotaUnit,
    Task,
    TaskState,
    kind_of,
)
from bot.polling import WINDOW as PLANNER_WINDOW
from bot.providers.apixo import CAPABILITIES as APIXO_CAPABILITIES
from bot.schedule import Schedule

ROOT = Path(__file__).resolve().parent.parent
EPOCH = datetime(2026, 11, 24, tzinfo=UTC)  # simulated time zero of each child
EPOCH_MS = int(EPOCH.timestamp() * 1000)
UNLIMITED = EffectiveLimits(10**9, 10**9, None, QuotaUnit.VIDEOS)
API_KEY = "bench-apixo-key-0123456789"
MODEL = "sora-2"
MODE, OPTIONS = Mode.TEXT, GenerationOptions()  # every task is of this one kind
LAG_TARGET = 2.0  # POLL_LAG_TARGET_SECONDS' default
CONCURRENCY = 16  # TRACKER_CONCURRENCY's default; the fixed pollers get the same
PROTOCOL = "BENCH "  # prefix of the lines the child writes to the parent
SEED = 20261124

# Targets (simulated seconds)
POLL_P95, POLL_SHARE = 2.0, 0.75
CALLBACK_P95, CALLBACK_REQUESTS = 0.5, 2.0
BURST_P99 = 0.5
MEMORY_MB = 150.0

# For the printed estimate of the run's length (measured on the 2-core machine)
SPAWN_SECONDS = 4.0  # a child importing the bot
CREATE_SECONDS = 0.0035  # reserve + mark_submitted, per task
# A wave's tasks are written this long (per task, real seconds) before its start.
CREATE_LEAD_SECONDS = 0.005


# --------------------------------------------------------------------------------------
# spreads, waves and followers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaveSpec:
    name: str
    shortest: float
    longest: float


@dataclass(frozen=True)
class Spread:
    key: str
    label: str
    waves: tuple[WaveSpec, ...]

    @property
    def judged(self) -> int:
        """The wave the targets are checked on: the last (warm, or re-learned)."""
        return len(self.waves) - 1


SPREAD_KEYS = ("40-120", "30-80", "60-170", "random", "doubling")


def two_waves(shortest: float, longest: float) -> tuple[WaveSpec, ...]:
    return (WaveSpec("cold", shortest, longest), WaveSpec("warm", shortest, longest))


def spread_named(key: str, seed: int) -> Spread:
    if key == "random":
        rng = random.Random(seed)
        shortest = round(rng.uniform(25, 90), 1)
        longest = round(shortest * rng.uniform(1.6, 2.9), 1)
        return Spread(key, f"random {shortest:g}-{longest:g} s", two_waves(shortest, longest))
    if key == "doubling":
        waves = (
            *two_waves(40.0, 120.0),
            WaveSpec("2x", 80.0, 240.0),
            WaveSpec("2x again", 80.0, 240.0),
        )
        return Spread(key, "40-120 s, then 80-240 s", waves)
    shortest, longest = parse_spread(key)
    return Spread(key, f"{shortest:g}-{longest:g} s", two_waves(shortest, longest))


def parse_spread(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    shortest, longest = float(low), float(high)
    if not 0 < shortest < longest:
        raise ValueError(f"a spread is SHORTEST-LONGEST seconds, 0 < shortest < longest: {text}")
    return shortest, longest


def spread_arg(text: str) -> str:
    if text in SPREAD_KEYS:
        return text
    try:
        parse_spread(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: one of {', '.join(SPREAD_KEYS)} or SHORTEST-LONGEST (seconds)"
        ) from exc
    return text


def wave_durations(spread: Spread, number: int, count: int, seed: int) -> list[float]:
    wave = spread.waves[number]
    rng = random.Random(f"{seed}/{spread.key}/{number}")
    return [rng.uniform(wave.shortest, wave.longest) for _ in range(count)]


@dataclass(frozen=True)
class Follower:
    key: str
    label: str
    kind: str  # "tracker" | "fixed"
    interval: float = 0.0  # fixed pollers
    callbacks: bool = False


FOLLOWERS = (
    Follower("tracker", "tracker, polling alone", "tracker"),
    Follower("callbacks", "tracker, callbacks + safety net", "tracker", callbacks=True),
    Follower("every3", "poll every 3 s", "fixed", interval=3.0),
    Follower("every30", "poll every 30 s", "fixed", interval=30.0),
)
BY_KEY = {f.key: f for f in FOLLOWERS}
DEFAULT_FOLLOWERS = ("tracker", "callbacks", "every3")


def bare_id(run: str, wave: int, index: int) -> str:
    return f"bench-{run}-{wave}-{index:05d}"


def provider_task_id(run: str, wave: int, index: int) -> str:
    return f"{MODEL}:{bare_id(run, wave, index)}"


def wave_and_index(provider_id: str) -> tuple[int, int]:
    _, wave, index = provider_id.rsplit("-", 2)
    return int(wave), int(index)


# --------------------------------------------------------------------------------------
# the provider (parent process)
# --------------------------------------------------------------------------------------


@dataclass
class Generations:
    """One wave of one child, as the provider sees it."""

    run: str
    number: int
    start: float  # monotonic moment the generations started
    ends: list[float]  # monotonic moment each finishes
    create_ms: int  # APIXO's createTime: simulated, in ms since the Unix epoch
    cost_ms: list[int]  # APIXO's costTime: the generation time in simulated ms
    requests: list[int]
    last_running: list[float]  # monotonic moment of the last "processing" answer, or 0
    first_done: list[float]  # monotonic moment of the first "success" answer, or 0
    per_second: dict[int, int] = field(default_factory=dict)
    sender: asyncio.Task[None] | None = None
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    callbacks_lost: int = 0


class BenchProvider:
    """APIXO's `statusTask` (and its callbacks) on 127.0.0.1, for the waves loaded into
    it, with no progress; several children may use it at once (task ids are unique).

    The fakes in tests/fakes/providers keep every request and rescan every task when one
    ends: fine for tests, too slow here. This one keeps counters only.
    """

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self.jobs: dict[str, tuple[Generations, int]] = {}
        self.unknown = 0
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/statusTask/{model}", self._status)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def stop(self) -> None:
        posts = list(self._posts)
        for post in posts:
            post.cancel()
        await asyncio.gather(*posts, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def load(
        self,
        run: str,
        number: int,
        durations: Sequence[float],
        start: float,
        sim_start: float,
        scale: float,
    ) -> Generations:
        """Generations that started at monotonic `start` (simulated second `sim_start`
        of the child's clock), one per duration (simulated seconds)."""
        wave = Generations(
            run=run,
            number=number,
            start=start,
            ends=[start + d / scale for d in durations],
            create_ms=EPOCH_MS + round(sim_start * 1000),
            cost_ms=[round(d * 1000) for d in durations],
            requests=[0] * len(durations),
            last_running=[0.0] * len(durations),
            first_done=[0.0] * len(durations),
        )
        for index in range(len(durations)):
            self.jobs[bare_id(run, number, index)] = (wave, index)
        return wave

    def call_back(self, wave: Generations, urls: list[str], lose_every: int) -> None:
        """POST each task's final status to its URL when it ends (but every
        `lose_every`-th)."""
        wave.sender = asyncio.create_task(self._send_callbacks(wave, urls, lose_every))

    async def forget(self, wave: Generations) -> None:
        if wave.sender is not None:
            wave.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wave.sender
            wave.sender = None
        for index in range(len(wave.ends)):
            self.jobs.pop(bare_id(wave.run, wave.number, index), None)

    def _body(self, wave: Generations, index: int, now: float) -> dict[str, Any]:
        task_id = bare_id(wave.run, wave.number, index)
        data: dict[str, Any] = {
            "taskId": task_id,
            "state": "processing",
            "createTime": wave.create_ms,
        }
        if now >= wave.ends[index]:
            data["state"] = "success"
            url = f"http://127.0.0.1:{self.port}/cdn/{task_id}.mp4"
            data["resultJson"] = json.dumps({"resultUrls": [url]})
            data["completeTime"] = wave.create_ms + wave.cost_ms[index]
            data["costTime"] = wave.cost_ms[index]
        return {"code": 200, "message": "success", "data": data}

    async def _status(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            body = {"code": 401, "message": "Unauthorized", "data": None}
            return web.json_response(body, status=401)
        job = self.jobs.get(request.query.get("taskId", ""))
        if job is None:
            self.unknown += 1
            body = {"code": 404, "message": "Not Found", "data": {"error": "Task not found"}}
            return web.json_response(body, status=404)
        wave, index = job
        now = time.monotonic()
        wave.requests[index] += 1
        if now < wave.ends[index]:
            wave.last_running[index] = now
        elif not wave.first_done[index]:
            wave.first_done[index] = now
        second = int(now - wave.start)
        wave.per_second[second] = wave.per_second.get(second, 0) + 1
        return web.json_response(self._body(wave, index, now))

    async def _send_callbacks(self, wave: Generations, urls: list[str], lose_every: int) -> None:
        slots = asyncio.Semaphore(64)
        for index in sorted(range(len(wave.ends)), key=wave.ends.__getitem__):
            delay = wave.ends[index] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if lose_every and index % lose_every == lose_every - 1:
                wave.callbacks_lost += 1
                continue
            post = asyncio.create_task(self._post(slots, wave, urls[index], index))
            self._posts.add(post)
            post.add_done_callback(self._posts.discard)

    async def _post(
        self, slots: asyncio.Semaphore, wave: Generations, url: str, index: int
    ) -> None:
        assert self._session is not None
        payload = json.dumps(self._body(wave, index, time.monotonic())).encode()
        async with slots:
            try:
                timeout = aiohttp.ClientTimeout(total=30)
                headers = {"Content-Type": "application/json"}
                async with self._session.post(
                    url, data=payload, headers=headers, timeout=timeout
                ) as resp:
                    await resp.read()
                    ok = resp.status < 300
            except (aiohttp.ClientError, TimeoutError):
                ok = False
        wave.callbacks_sent += 1
        wave.callbacks_failed += not ok


# --------------------------------------------------------------------------------------
# the child: what is measured
# --------------------------------------------------------------------------------------


class SimClock:
    """Simulated time: EPOCH at monotonic `t0`, running `scale` times faster. The store
    reads `store_now`, which a wave's task creation pins to the wave's start."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.t0 = time.monotonic()
        self.pinned: datetime | None = None

    def seconds_at(self, moment: float) -> float:
        return (moment - self.t0) * self.scale

    def at(self, moment: float) -> datetime:
        return EPOCH + timedelta(seconds=self.seconds_at(moment))

    def now(self) -> datetime:
        return self.at(time.monotonic())

    def store_now(self) -> datetime:
        return self.pinned if self.pinned is not None else self.now()


class Recorder:
    """The stub deliverer: notes when each task is handed over (per wave), marks it
    posted."""

    def __init__(self) -> None:
        self.store: Any = None
        self.at: dict[int, dict[int, float]] = {}
        self.expected: dict[int, int] = {}
        self.done: dict[int, asyncio.Event] = {}

    def expect(self, wave: int, count: int) -> None:
        self.at[wave], self.expected[wave], self.done[wave] = {}, count, asyncio.Event()

    def record(self, provider_id: str | None) -> None:
        if provider_id is None:
            return
        wave, index = wave_and_index(provider_id)
        seen = self.at.get(wave)
        if seen is None or index in seen:
            return
        seen[index] = time.monotonic()
        if len(seen) >= self.expected[wave]:
            self.done[wave].set()

    async def deliver(self, task: Task) -> None:
        self.record(task.provider_task_id)
        if self.store is not None:
            await self.store.record_delivery(task.id, NotifyState.POSTED)

    async def progress(self, task: Task) -> None:
        return None


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(PROTOCOL + json.dumps(message) + "\n")
    sys.stdout.flush()


class Inbox:
    """The parent's lines on stdin, each read with a deadline."""

    def __init__(self) -> None:
        self._reader = asyncio.StreamReader()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = asyncio.StreamReaderProtocol(self._reader)
        await loop.connect_read_pipe(lambda: protocol, sys.stdin)

    async def hear(self, within: float) -> dict[str, Any]:
        line = await asyncio.wait_for(self._reader.readline(), within)
        if not line:
            raise RuntimeError("the parent went away")
        message: dict[str, Any] = json.loads(line)
        return message


async def fixed_poller(provider: Any, ids: list[str], every: float, recorder: Recorder) -> None:
    """The provider docs' loop, for each task: wait `every` seconds, check, repeat."""
    from bot.errors import ProviderError

    slots = asyncio.Semaphore(CONCURRENCY)

    async def follow(pid: str) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                async with slots:
                    status = await provider.status(pid)
            except ProviderError:
                continue
            if status.state.is_final:
                recorder.record(pid)
                return

    await asyncio.gather(*(follow(pid) for pid in ids))


def plan_of(planner: Any) -> dict[str, Any]:
    """What the planner would schedule for a new task of the benchmark's kind now."""
    schedule: Schedule = planner.schedule_for(MODE, OPTIONS)
    kind = kind_of(MODE, OPTIONS)
    samples = next((s.samples for s in planner.snapshot() if s.kind == kind), 0)
    return {
        "first_delay": schedule.first_delay,
        "interval": schedule.interval,
        "samples": samples,
        "learned": planner.typical_seconds(MODE, OPTIONS) is not None,
    }


async def create_wave(
    store: Any, planner: Any, clock: SimClock, start: float, ids: list[str]
) -> list[str]:
    """The wave's tasks, all dated `start` (monotonic; the store's clock is pinned to it
    while they are written) and submitted as `SoraService` does; returns their callback
    tokens."""
    clock.pinned = clock.at(start)
    tokens: list[str] = []
    try:
        for n, pid in enumerate(ids):
            reserved = await store.reserve(
                NewTask(
                    guild_id=1,
                    channel_id=10,
                    user_id=n % 500,
                    provider="apixo",
                    mode=MODE,
                    prompt="a lighthouse in a storm, cinematic",
                    options=OPTIONS,
                ),
                UNLIMITED,
            )
            task: Task = reserved.task
            # As `SoraService.send`: the first check counts from creation, never in the past.
            schedule: Schedule = planner.schedule_for(task.mode, task.options)
            first_check = task.created_at + timedelta(seconds=schedule.first_delay)
            task = await store.mark_submitted(
                task.id, pid, TaskState.SUBMITTED, None, max(clock.now(), first_check)
            )
            assert task.callback_token is not None
            tokens.append(task.callback_token)
    finally:
        clock.pinned = None
    return tokens


async def child(spec: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import bot.discord.app  # noqa: F401  (the bot's whole import footprint counts in its memory)
    from bot.__main__ import make_http_client
    from bot.metrics import Metrics
    from bot.polling import PollPlanner
    from bot.providers.apixo import ApixoProvider
    from bot.providers.http import ProviderHTTP
    from bot.store import SqliteStore
    from bot.tracker import TICK_SECONDS, Tracker
    from bot.url_policy import MediaPolicy
    from bot.webhooks import WebhookServer

    follower = BY_KEY[spec["follower"]]
    run, waves, count = str(spec["run"]), int(spec["waves"]), int(spec["count"])
    scale = float(spec["scale"])
    inbox = Inbox()
    await inbox.open()
    clock = SimClock(scale)
    client = make_http_client()
    provider = ApixoProvider(
        ProviderHTTP(
            client,
            provider="apixo",
            base_url=spec["base_url"],
            auth_header=("Authorization", f"Bearer {API_KEY}"),
        )
    )
    recorder = Recorder()
    store: SqliteStore | None = None
    planner: PollPlanner | None = None
    tracker: Tracker | None = None
    webhooks: WebhookServer | None = None
    callback_base: str | None = None
    try:
        if follower.kind == "tracker":
            store = SqliteStore(Path(spec["database"]), clock=clock.store_now)
            await store.open()
            recorder.store = store
            # The product's planner as `bot.discord.app` builds it: nothing is known of
            # the spread; it learns from what the provider reports.
            planner = PollPlanner(
                provider=provider.name,
                capabilities=provider.capabilities,
                lag=LAG_TARGET,
                callbacks=follower.callbacks,
                store=store,
                clock=clock.now,
            )
            metrics = Metrics()
            tracker = Tracker(
                store=store,
                provider=provider,
                deliverer=recorder,
                polling=planner,
                max_age=timedelta(hours=2),
                concurrency=CONCURRENCY,
                metrics=metrics,
                clock=clock.now,
                tick_seconds=TICK_SECONDS / scale,
                media_policy=MediaPolicy([spec["base_url"]]),
            )
            if follower.callbacks:
                webhooks = WebhookServer(
                    host="127.0.0.1",
                    port=0,
                    store=store,
                    provider=provider,
                    tracker=tracker,
                    metrics=metrics,
                )
                await webhooks.start()
                callback_base = f"http://127.0.0.1:{webhooks.port}/callbacks"
            await tracker.start()
        for number in range(waves):
            plan = plan_of(planner) if planner is not None else None
            ids = [provider_task_id(run, number, i) for i in range(count)]
            tokens: list[str] = []
            if store is not None and planner is not None:
                # The tasks are written just before the wave's start, dated at it: the
                # provider's callbacks need their tokens by the time the first one ends.
                start = time.monotonic() + count * CREATE_LEAD_SECONDS
                tokens = await create_wave(store, planner, clock, start, ids)
                await asyncio.sleep(max(0.0, start - time.monotonic()))
            else:
                start = time.monotonic()
            recorder.expect(number, count)
            say(
                {
                    "wave": number,
                    "start": start,
                    "sim_start": clock.seconds_at(start),
                    "plan": plan,
                    "callback_base": callback_base,
                    "tokens": tokens,
                }
            )
            go = await inbox.hear(120)
            deadline = start + float(go["deadline"]) / scale
            cpu0, wall0 = time.process_time(), time.monotonic()
            poller: asyncio.Task[None] | None = None
            if follower.kind == "fixed":
                poller = asyncio.create_task(
                    fixed_poller(provider, ids, follower.interval / scale, recorder)
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    recorder.done[number].wait(), max(0.0, deadline - time.monotonic())
                )
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            say(
                {
                    "wave_done": number,
                    "cpu": cpu,
                    "wall": wall,
                    "peak_mb": peak,
                    "delivered": recorder.at[number],
                }
            )
    finally:
        if tracker is not None:
            await tracker.stop()
        if webhooks is not None:
            await webhooks.stop()
        await client.aclose()
        if store is not None:
            await store.close()


# --------------------------------------------------------------------------------------
# the burst of commands (its own child process)
# --------------------------------------------------------------------------------------


async def burst(count: int) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from tests.conftest import make_settings, start_bot, stop_bot
    from tests.fakes import FakeDiscord

    fake = FakeDiscord()
    await fake.start()
    try:
        guild = fake.add_guild("Bench")
        users = [fake.add_user(f"member{n}") for n in range(20)]
        for user in users:
            guild.add_member(user)
        with tempfile.TemporaryDirectory() as folder:
            settings = make_settings(
                fake,
                Path(folder),
                discord_guild_ids=[guild.id],
                default_daily_quota=10**6,
                default_monthly_quota=10**6,
                default_user_daily_quota=10**6,
                demo_generation_seconds=3600,  # nothing finishes during the burst
            )
            bot, runner = await start_bot(settings, fake)
            try:
                warm = await fake.send_command(
                    guild, users[0], "sora", fake.sub("text", prompt="warm-up")
                )
                await warm.wait_final()
                answers = await asyncio.gather(
                    *(
                        fake.send_command(
                            guild,
                            users[n % len(users)],
                            "sora",
                            fake.sub("text", prompt=f"a paper boat, take {n}"),
                        )
                        for n in range(count)
                    )
                )
                async with asyncio.timeout(60):
                    await asyncio.gather(*(a.wait_final(timeout=60) for a in answers))
            finally:
                await stop_bot(bot, runner)
    finally:
        await fake.stop()
    acks = [a.first_callback_at for a in answers]
    say(
        {
            "acks": [a for a in acks if a is not None],
            "missing": sum(a is None for a in acks),
            "late": sum(a.late for a in answers),
            "accepted": sum("on its way" in a.text() for a in answers),
        }
    )


# --------------------------------------------------------------------------------------
# the parent: runs the followers, computes the figures
# --------------------------------------------------------------------------------------


@dataclass
class WaveResult:
    spread: Spread
    follower: Follower
    wave: str  # the wave's name ("cold", "warm", ...)
    judged: bool
    generations: WaveSpec  # the spread its generation times were drawn from
    count: int
    plan: dict[str, Any] | None
    requests_per_task: float
    lag: list[float]
    undelivered: int
    cpu: float
    wall: float
    peak_mb: float
    peak_rate: int
    # Where the lag comes from, for the tasks a status check found done: the gap
    # between the last check that found the task running and the one that found it
    # done, and from that check to the hand-over (simulated seconds).
    gaps: list[float] = field(default_factory=list)
    handover: list[float] = field(default_factory=list)
    callbacks_lost: int = 0
    callbacks_failed: int = 0

    def lag_at(self, share: float) -> float:
        return percentile(self.lag, share)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def spawn(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.tracker",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,
    )


async def expect(proc: asyncio.subprocess.Process, within: float) -> dict[str, Any]:
    """The child's next protocol line (its other output goes to stderr)."""
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"child {proc.pid} exited ({await proc.wait()}) early")
            text = line.decode()
            if text.startswith(PROTOCOL):
                message: dict[str, Any] = json.loads(text[len(PROTOCOL) :])
                return message
            sys.stderr.write(text)


async def tell(proc: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(message) + "\n").encode())
    await proc.stdin.drain()


async def finish(proc: asyncio.subprocess.Process) -> None:
    """Let the child end (it does once its last wave is reported), else end it."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        async with asyncio.timeout(30):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


def wave_deadline(durations: Sequence[float], plan: dict[str, Any] | None) -> float:
    """Simulated seconds from the wave's start after which the follower stops waiting:
    well after the last generation and the plan's first check."""
    longest = max(durations)
    first = float(plan["first_delay"]) if plan else 0.0
    return max(longest, first) + max(60.0, longest / 2)


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True)
class Leg:
    """One wave as a child follows it: its generation times, drawn from `spec`."""

    name: str
    judged: bool
    spec: WaveSpec
    durations: list[float]


@dataclass
class Run:
    """What every follower of a run shares."""

    provider: BenchProvider
    work: Path
    count: int
    scale: float
    seed: int
    lose_every: int
    runs: int = 0

    def next_run(self) -> str:
        self.runs += 1
        return f"r{self.runs}"


async def run_follower(
    run: Run,
    spread: Spread,
    follower: Follower,
    waves: list[Leg],
) -> list[WaveResult]:
    """One child following `waves` in turn."""
    key = run.next_run()
    database = run.work / f"{key}-{follower.key}.sqlite3"
    count = len(waves[0].durations)
    spec = {
        "follower": follower.key,
        "run": key,
        "waves": len(waves),
        "count": count,
        "scale": run.scale,
        "database": str(database),
        "base_url": run.provider.base_url,
    }
    results: list[WaveResult] = []
    loaded: list[Generations] = []
    proc = await spawn(["--child", json.dumps(spec)])
    try:
        for number, leg in enumerate(waves):
            name, durations = leg.name, leg.durations
            hello = await expect(proc, 120 + count * 0.02)
            assert hello["wave"] == number
            started = time.monotonic()
            wave = run.provider.load(
                key, number, durations, hello["start"], hello["sim_start"], run.scale
            )
            loaded.append(wave)
            if follower.callbacks:
                urls = [f"{hello['callback_base']}/{token}" for token in hello["tokens"]]
                run.provider.call_back(wave, urls, run.lose_every)
            plan: dict[str, Any] | None = hello["plan"]
            deadline = wave_deadline(durations, plan)
            await tell(proc, {"deadline": deadline})
            done = await expect(proc, deadline / run.scale + 120)
            if wave.sender is not None:  # what is not sent by now is not sent
                wave.sender.cancel()
            delivered = {int(k): float(v) for k, v in done["delivered"].items()}
            result = WaveResult(
                spread=spread,
                follower=follower,
                wave=name,
                judged=leg.judged,
                generations=leg.spec,
                count=count,
                plan=plan,
                requests_per_task=sum(wave.requests) / count,
                lag=[(at - wave.ends[i]) * run.scale for i, at in delivered.items()],
                undelivered=count - len(delivered),
                cpu=float(done["cpu"]),
                wall=float(done["wall"]),
                peak_mb=float(done["peak_mb"]),
                peak_rate=max(wave.per_second.values(), default=0),
                gaps=[
                    (done - running) * run.scale
                    for running, done in zip(wave.last_running, wave.first_done, strict=True)
                    if running and done
                ],
                handover=[
                    (at - wave.first_done[i]) * run.scale
                    for i, at in delivered.items()
                    if wave.first_done[i] and at >= wave.first_done[i]
                ],
                callbacks_lost=wave.callbacks_lost,
                callbacks_failed=wave.callbacks_failed,
            )
            results.append(result)
            print(
                f"  {spread.label}, {follower.label}, {name}: {describe_plan(plan)};"
                f" {result.requests_per_task:.2f} req/task, lag p50"
                f" {fmt(result.lag_at(0.5))} p95 {fmt(result.lag_at(0.95))}"
                f" p99 {fmt(result.lag_at(0.99))} s (check gap p95"
                f" {fmt(percentile(result.gaps, 0.95))} s, check to hand-over p95"
                f" {fmt(percentile(result.handover, 0.95))} s),"
                f" {result.undelivered} not handed over,"
                f" CPU {result.cpu:.1f} s, {result.peak_mb:.0f} MB"
                f" ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
        await finish(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for wave in loaded:
            await run.provider.forget(wave)
        remove_database(database)
    return results


async def run_spread(
    run: Run, spread: Spread, followers: list[Follower], serial: bool
) -> list[WaveResult]:
    durations = [wave_durations(spread, k, run.count, run.seed) for k in range(len(spread.waves))]
    judged = spread.judged
    learning = [Leg(w.name, k == judged, w, durations[k]) for k, w in enumerate(spread.waves)]
    last = spread.waves[judged]
    fixed_wave = [Leg(f"{last.name}'s tasks", True, last, durations[judged])]

    async def lane(chosen: list[Follower]) -> list[WaveResult]:
        out: list[WaveResult] = []
        for follower in chosen:
            waves = learning if follower.kind == "tracker" else fixed_wave
            out += await run_follower(run, spread, follower, waves)
        return out

    polling = [f for f in followers if not f.callbacks]
    callbacks = [f for f in followers if f.callbacks]
    if serial:
        found = await lane(followers)
    else:
        # The callbacks follower is nearly idle (a few requests a second): it runs beside
        # the polling ones, which run one at a time.
        async with asyncio.TaskGroup() as group:
            first = group.create_task(lane(polling))
            second = group.create_task(lane(callbacks))
        found = first.result() + second.result()
    order = {f.key: n for n, f in enumerate(FOLLOWERS)}
    return sorted(found, key=lambda r: order[r.follower.key])  # stable: waves in order


async def run_memory(run: Run, count: int) -> WaveResult:
    spread = Spread("memory", f"{count:,} pending, 40-120 s", (WaveSpec("cold", 40.0, 120.0),))
    leg = Leg("cold", True, spread.waves[0], wave_durations(spread, 0, count, run.seed))
    results = await run_follower(run, spread, BY_KEY["callbacks"], [leg])
    return results[0]


async def run_burst(count: int) -> dict[str, Any]:
    proc = await spawn(["--burst-child", str(count)])
    try:
        return await expect(proc, 180)
    finally:
        if proc.returncode is None:
            await finish(proc)


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 2) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def describe_plan(plan: dict[str, Any] | None) -> str:
    if plan is None:
        return "fixed"
    source = f"learned from {plan['samples']}" if plan["learned"] else "guidance"
    return f"first {plan['first_delay']:.1f} s, every {plan['interval']:.2f} s ({source})"


def every3_of(results: list[WaveResult], spread: Spread) -> WaveResult | None:
    return next(
        (r for r in results if r.spread.key == spread.key and r.follower.key == "every3"), None
    )


def vs_every3(r: WaveResult, results: list[WaveResult]) -> float | None:
    """`r`'s status requests over the every-3-s poller's on the same spread, when its
    wave's generation times came from the same range as the poller's."""
    base = every3_of(results, r.spread)
    if base is None or r is base or not base.requests_per_task:
        return None
    same = (base.generations.shortest, base.generations.longest)
    if (r.generations.shortest, r.generations.longest) != same:
        return None
    return r.requests_per_task / base.requests_per_task


def table(results: list[WaveResult]) -> str:
    lines = [
        "| spread | follower | wave | plan at the wave's start | status req/task | vs every 3 s"
        " | lag p50 | lag p95 | lag p99 | not handed over | CPU s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        share = vs_every3(r, results)
        ratio = "—" if share is None else f"{share:.0%}"
        wave = f"**{r.wave}**" if r.judged and r.follower.kind == "tracker" else r.wave
        lines.append(
            f"| {r.spread.label} | {r.follower.label} | {wave} | {describe_plan(r.plan)} |"
            f" {r.requests_per_task:.2f} | {ratio} | {fmt(r.lag_at(0.5))} s |"
            f" {fmt(r.lag_at(0.95))} s | {fmt(r.lag_at(0.99))} s | {r.undelivered} |"
            f" {r.cpu:.1f} | {r.peak_mb:.0f} |"
        )
    return "\n".join(lines)


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def verdicts(
    spreads: list[Spread],
    results: list[WaveResult],
    burst_figures: dict[str, Any] | None,
    memory: WaveResult | None,
) -> list[str]:
    out: list[str] = []
    for spread in spreads:
        mine = [r for r in results if r.spread.key == spread.key and r.judged]
        polled = next((r for r in mine if r.follower.key == "tracker"), None)
        base = every3_of(results, spread)
        if polled is not None:
            p95 = polled.lag_at(0.95)
            ratio = vs_every3(polled, results)
            if base is not None and ratio is not None:
                ok = p95 <= POLL_P95 and ratio <= POLL_SHARE and polled.undelivered == 0
                out.append(
                    f"{spread.label}, polling alone ({polled.wave} wave): p95 {p95:.2f} s"
                    f" (target <= {POLL_P95:g}; every-3-s poller {base.lag_at(0.95):.2f} s),"
                    f" {ratio:.0%} of the every-3-s poller's status requests"
                    f" ({polled.requests_per_task:.2f} against {base.requests_per_task:.2f};"
                    f" target <= {POLL_SHARE:.0%}): {met(ok)}"
                )
            else:
                out.append(
                    f"{spread.label}, polling alone ({polled.wave} wave): p95 {p95:.2f} s,"
                    f" {polled.requests_per_task:.2f} status requests a task; no every-3-s"
                    " poller in this run, so no verdict"
                )
        called = next((r for r in mine if r.follower.key == "callbacks"), None)
        if called is not None:
            p95 = called.lag_at(0.95)
            ok = (
                p95 <= CALLBACK_P95
                and called.requests_per_task <= CALLBACK_REQUESTS
                and called.undelivered == 0
            )
            out.append(
                f"{spread.label}, callbacks ({called.wave} wave): p95 {p95:.2f} s"
                f" (target <= {CALLBACK_P95:g}), {called.requests_per_task:.2f} status"
                f" requests a task (target <= {CALLBACK_REQUESTS:g}): {met(ok)}"
            )
        learners = [r for r in mine if r.follower.kind == "tracker"]
        if len(spread.waves) > 2 and learners and learners[0].count < PLANNER_WINDOW:
            out.append(
                f"{spread.label}: with {learners[0].count:,} tasks a wave, fewer than the"
                f" planner's window of {PLANNER_WINDOW}, the last wave still plans with"
                " samples from before the change: it shows a slowdown not yet trusted, not a"
                " re-learned plan"
            )
    if burst_figures is not None:
        acks = burst_figures["acks"]
        p99 = percentile(acks, 0.99)
        ok = p99 < BURST_P99 and not burst_figures["missing"] and not burst_figures["late"]
        out.append(
            f"burst of {len(acks) + burst_figures['missing']} commands: acknowledged p50"
            f" {percentile(acks, 0.5):.3f} s, p99 {p99:.3f} s, max {max(acks, default=0):.3f} s"
            f" (target p99 < {BURST_P99:g}): {met(ok)}"
        )
    if memory is not None:
        out.append(
            f"{memory.count:,} pending tasks in one process (callbacks + safety net): peak"
            f" {memory.peak_mb:.0f} MB (target < {MEMORY_MB:.0f}),"
            f" {memory.undelivered} not handed over: {met(memory.peak_mb < MEMORY_MB)}"
        )
    elif results:
        peak = max(results, key=lambda r: r.peak_mb)
        out.append(
            f"memory: at most {peak.peak_mb:.0f} MB in a follower at {peak.count:,} pending"
            " tasks; 10,000 pending tasks are measured by `--memory 10000` (target < 150 MB)"
        )
    return out


def estimate_seconds(
    spreads: list[Spread],
    followers: list[Follower],
    count: int,
    scale: float,
    serial: bool,
    burst_count: int,
    memory: int,
) -> float:
    """About how long the run takes, from the provider's guidance and the spreads."""
    guidance = {
        cb: Schedule.for_provider(
            APIXO_CAPABILITIES, first_delay=None, interval=None, callbacks=cb
        ).first_delay
        for cb in (False, True)
    }

    def follower_seconds(spread: Spread, follower: Follower) -> float:
        if follower.kind == "fixed":
            sim = spread.waves[-1].longest + follower.interval
            return sim / scale + SPAWN_SECONDS
        sim, previous = 0.0, None
        for wave in spread.waves:
            if previous is None:
                first = guidance[follower.callbacks]
            elif follower.callbacks:
                spread_width = previous.longest - previous.shortest
                first = previous.longest + max(LAG_TARGET, spread_width / 4)
            else:
                first = previous.shortest + LAG_TARGET
            sim += max(wave.longest, first) + (8.0 if follower.callbacks else 3.0)
            previous = wave
        creating = len(spread.waves) * count * max(CREATE_SECONDS, CREATE_LEAD_SECONDS)
        return sim / scale + SPAWN_SECONDS + creating

    total = 0.0
    for spread in spreads:
        lanes = [
            sum(follower_seconds(spread, f) for f in followers if f.callbacks == cb)
            for cb in (False, True)
        ]
        total += sum(lanes) if serial else max(lanes)
    if memory:
        creating = memory * max(CREATE_SECONDS, CREATE_LEAD_SECONDS)
        total += SPAWN_SECONDS + creating + (guidance[True] + 10) / scale
    if burst_count:
        total += 15 + burst_count * 0.02
    return total


def as_json(r: WaveResult) -> dict[str, Any]:
    return {
        "spread": r.spread.label,
        "follower": r.follower.key,
        "wave": r.wave,
        "judged": r.judged,
        "tasks": r.count,
        "plan": r.plan,
        "status_requests_per_task": r.requests_per_task,
        "generations": [r.generations.shortest, r.generations.longest],
        "lag_p50": r.lag_at(0.5),
        "lag_p95": r.lag_at(0.95),
        "lag_p99": r.lag_at(0.99),
        "lag_max": max(r.lag, default=float("nan")),
        "lag_mean": statistics.fmean(r.lag) if r.lag else float("nan"),
        "undelivered": r.undelivered,
        "cpu_seconds": r.cpu,
        "wall_seconds": r.wall,
        "peak_rss_mb": r.peak_mb,
        "peak_status_per_second": r.peak_rate,
        "check_gap_p50": percentile(r.gaps, 0.5),
        "check_gap_p95": percentile(r.gaps, 0.95),
        "check_gap_max": max(r.gaps, default=float("nan")),
        "check_to_handover_p50": percentile(r.handover, 0.5),
        "check_to_handover_p95": percentile(r.handover, 0.95),
        "check_to_handover_max": max(r.handover, default=float("nan")),
        "share_over_lag_target": (
            sum(x > POLL_P95 for x in r.lag) / len(r.lag) if r.lag else float("nan")
        ),
        "callbacks_lost": r.callbacks_lost,
        "callbacks_failed": r.callbacks_failed,
    }


async def parent(args: argparse.Namespace) -> dict[str, Any]:
    count: int = args.tasks if args.tasks is not None else (100 if args.quick else 500)
    scale: float = args.scale or (4.0 if args.quick else 1.0)
    memory: int = args.memory or 0
    spread_keys: list[str] = (
        args.spreads
        if args.spreads is not None
        else []
        if memory
        else ["40-120"]
        if args.quick
        else list(SPREAD_KEYS)
    )
    burst_default = 0 if memory else 50 if args.quick else 200
    burst_count: int = args.burst if args.burst is not None else burst_default
    followers = [BY_KEY[k] for k in (args.only or DEFAULT_FOLLOWERS)]
    followers.sort(key=FOLLOWERS.index)
    lose_every = round(1 / args.lose_callbacks) if args.lose_callbacks > 0 else 0
    spreads = [spread_named(key, args.seed) for key in dict.fromkeys(spread_keys)]
    for spread in spreads:
        if spread.key == "random":
            print(f"spread drawn from seed {args.seed}: {spread.label}", flush=True)
    expected = estimate_seconds(spreads, followers, count, scale, args.serial, burst_count, memory)
    print(
        f"{len(spreads)} spread(s), {count:,} tasks a wave, followers"
        f" {', '.join(f.key for f in followers)}, scale {scale:g}"
        f"{', one at a time' if args.serial else ''}"
        f"{f', memory at {memory:,} tasks' if memory else ''}"
        f"{f', burst of {burst_count}' if burst_count else ''}:"
        f" expect about {expected / 60:.0f} minutes",
        flush=True,
    )
    results: list[WaveResult] = []
    memory_result: WaveResult | None = None
    began = time.monotonic()
    provider = BenchProvider()
    await provider.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tracker-") as folder:
            run = Run(provider, Path(folder), count, scale, args.seed, lose_every)
            for spread in spreads:
                print(f"{spread.label}:", flush=True)
                results += await run_spread(run, spread, followers, args.serial)
            if memory:
                print(f"memory, {memory:,} tasks with callbacks:", flush=True)
                memory_result = await run_memory(run, memory)
    finally:
        await provider.stop()
    burst_figures = await run_burst(burst_count) if burst_count > 0 else None
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    print()
    print(
        f"{date.today().isoformat()}, {machine}; scale {scale:g} (figures in simulated"
        f" seconds), {count:,} tasks a wave, seed {args.seed}; the judged waves in bold"
    )
    print()
    shown = results + ([memory_result] if memory_result is not None else [])
    if shown:
        print(table(shown))
        print()
    for line in verdicts(spreads, results, burst_figures, memory_result):
        print("- " + line)
    print(f"\nwhole run: {time.monotonic() - began:.0f} s (expected about {expected:.0f} s)")
    return {
        "scale": scale,
        "seed": args.seed,
        "tasks_per_wave": count,
        "machine": machine,
        "results": [as_json(r) for r in results],
        "memory": as_json(memory_result) if memory_result is not None else None,
        "burst": burst_figures,
        "unknown_task_requests": provider.unknown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="100 tasks a wave at 4x, 40-120 s, 50 commands"
    )
    parser.add_argument("--tasks", type=int, help="tasks a wave (default 500)")
    parser.add_argument(
        "--spreads",
        nargs="*",
        type=spread_arg,
        metavar="SPREAD",
        help=f"of {', '.join(SPREAD_KEYS)} or SHORTEST-LONGEST (default: all)",
    )
    parser.add_argument("--only", nargs="*", choices=[f.key for f in FOLLOWERS])
    parser.add_argument("--scale", type=float, help="simulated seconds per real second")
    parser.add_argument("--burst", type=int, help="concurrent commands (0: skip)")
    parser.add_argument(
        "--memory",
        type=int,
        help="also measure N pending tasks with callbacks (alone unless --spreads/--burst)",
    )
    parser.add_argument(
        "--serial", action="store_true", help="one child at a time (callbacks not beside)"
    )
    parser.add_argument(
        "--lose-callbacks", type=float, default=0.01, help="share of callbacks never sent"
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--burst-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(json.loads(args.child)))
    elif args.burst_child:
        asyncio.run(burst(args.burst_child))
    else:
        raw = asyncio.run(parent(args))
        if args.json:
            Path(args.json).write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
