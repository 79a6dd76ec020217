"""Tracker benchmark: status requests per task, observe lag, CPU and memory, compared with
the fixed-interval pollers of the provider docs; and a burst of commands.

Run: .venv/bin/python -m bench.tracker            (1,000 and 10,000 tasks, real time)
     .venv/bin/python -m bench.tracker --quick    (100 tasks at 4x speed, 50 commands)

Everything listens on 127.0.0.1 only and every step has a deadline.

Set-up, per scenario (a number of tasks and one way of following them):
- The provider is a small aiohttp server in this (the parent) process, speaking APIXO's
  wire format: `statusTask` answers "processing" with no progress until the task's
  generation time has passed, then "success"; with callbacks on, it POSTs the final
  status to the task's callback URL at that moment, except for 1 % of tasks
  (`--lose-callbacks`), so that the safety net has something to catch. Generation times
  are uniform over 40-120 s (seeded: the same tasks for every scenario), every task
  starts at the same moment, and the server counts status requests per task.
- What is measured runs in a child process, so CPU seconds and peak memory are its own:
  the real `Tracker` with the real `SqliteStore` (a copy of a database of N submitted
  tasks, made through `reserve` and `mark_submitted`), the real APIXO adapter over httpx
  (`ProviderHTTP`, without the adapter's own request-rate limiter) and the
  schedule from `Schedule.for_spread(40, 120, lag=2)`. The first check is written the
  way `SoraService.submit` writes it: `next_check_at = created_at + first_delay`.
  With callbacks, the real `WebhookServer` receives them and calls `Tracker.apply`.
  The baselines are the pollers of the provider docs, "check every 30 s" and "every
  3 s", as simple loops (sleep, then check; at most 16 checks in flight, like the
  tracker) over the same adapter, against the same server and tasks.
- The deliverer is a stub that records `time.monotonic()` when it is called (and marks
  the task posted), so observe lag is from the provider finishing to the tracker handing
  the task over for posting; posting to Discord is not part of it.
- Time can be scaled (`--scale 4`: one real second is four simulated seconds): the
  generation times, the pollers' intervals and the tracker's clock and tick are scaled
  together, and every figure is reported in simulated seconds. Scaling also multiplies
  the load: N tasks checked every 2 s need N/2 x scale checks per real second, and one
  process makes only a few hundred (each costs about 2-3 ms of CPU, mostly httpx), so
  the full run uses real time (scale 1) and takes about 18 minutes. `--quick` runs at
  scale 4, where each millisecond of work counts as 4: a smoke test, not the figures.
- CPU seconds: `time.process_time()` of the child (all its threads, aiosqlite's too) from
  the start of the generations until the last task was handed over. Peak memory: the
  child's `ru_maxrss` (one process per scenario, so the peak is that scenario's).

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
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
)
from bot.schedule import Schedule
from bot.store import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
SHORTEST, LONGEST = 40.0, 120.0  # generation times, simulated seconds
LAG_TARGET = 2.0  # what the tracker's schedule aims at (95th percentile)
EPOCH = datetime(2026, 11, 24, tzinfo=UTC)  # simulated time zero: every task starts then
UNLIMITED = EffectiveLimits(10**9, 10**9, None, QuotaUnit.VIDEOS)
API_KEY = "bench-apixo-key-0123456789"
MODEL = "sora-2"
CONCURRENCY = 16  # the tracker's default (TRACKER_CONCURRENCY); the baselines get the same
TICK_SECONDS = 0.2  # the tracker's default tick, simulated seconds
PROTOCOL = "BENCH "  # prefix of the lines the child and the parent exchange


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    kind: str  # "tracker" | "fixed"
    interval: float = 0.0  # fixed pollers
    callbacks: bool = False

    def schedule(self) -> Schedule:
        return Schedule.for_spread(SHORTEST, LONGEST, lag=LAG_TARGET, callbacks=self.callbacks)


CONFIGS = (
    Config("tracker", "tracker, polling alone", "tracker"),
    Config("callbacks", "tracker, callbacks + safety net", "tracker", callbacks=True),
    Config("every3", "poll every 3 s", "fixed", interval=3.0),
    Config("every30", "poll every 30 s", "fixed", interval=30.0),
)


def generation_times(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(SHORTEST, LONGEST) for _ in range(count)]


def provider_task_id(index: int) -> str:
    return f"{MODEL}:bench-{index:06d}"


def index_of(provider_id: str) -> int:
    return int(provider_id.rsplit("-", 1)[1])


def iso(moment: datetime) -> str:
    """The store's timestamp format (`next_check_at` is compared as text)."""
    return moment.isoformat(timespec="microseconds")


# --------------------------------------------------------------------------------------
# the provider (parent process)
# --------------------------------------------------------------------------------------


class BenchProvider:
    """APIXO's `statusTask` on 127.0.0.1 for a fixed set of tasks, with no progress.

    The fakes in tests/fakes/providers keep every request and rescan every task when one
    ends: fine for tests, too slow at 10,000 tasks. This one keeps counters only.
    """

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sender: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self.port = 0
        self.reset()

    def reset(self) -> None:
        self.index: dict[str, int] = {}
        self.ends: list[float] = []  # monotonic time each task finishes
        self.requests: list[int] = []  # status requests per task
        self.per_second: dict[int, int] = {}  # status requests per real second of the run
        self.unknown = 0
        self.t0 = 0.0
        self.callbacks_sent = 0
        self.callbacks_failed = 0
        self.callbacks_lost = 0

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
        connector = aiohttp.TCPConnector(limit=64)
        self._session = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        await self.halt()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def load(
        self,
        durations: list[float],
        t0: float,
        scale: float,
        callback_urls: list[str] | None,
        lose_every: int,
    ) -> None:
        """Start the generations at monotonic time `t0` (all at once)."""
        self.reset()
        self.t0 = t0
        self.index = {provider_task_id(i).split(":", 1)[1]: i for i in range(len(durations))}
        self.ends = [t0 + d / scale for d in durations]
        self.requests = [0] * len(durations)
        if callback_urls is not None:
            self._sender = asyncio.create_task(self._send_callbacks(callback_urls, lose_every))

    async def halt(self) -> None:
        tasks = [t for t in (self._sender, *self._posts) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sender = None
        self._posts.clear()

    def _body(self, index: int, now: float) -> dict[str, Any]:
        task_id = provider_task_id(index).split(":", 1)[1]
        data: dict[str, Any] = {"taskId": task_id, "state": "processing", "createTime": 0}
        end = self.ends[index]
        if now >= end:
            data["state"] = "success"
            url = f"http://127.0.0.1:{self.port}/cdn/{task_id}.mp4"
            data["resultJson"] = json.dumps({"resultUrls": [url]})
            data["completeTime"] = int((end - self.t0) * 1000)
            data["costTime"] = data["completeTime"]
        return {"code": 200, "message": "success", "data": data}

    async def _status(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            body = {"code": 401, "message": "Unauthorized", "data": None}
            return web.json_response(body, status=401)
        index = self.index.get(request.query.get("taskId", ""))
        if index is None:
            self.unknown += 1
            body = {"code": 404, "message": "Not Found", "data": {"error": "Task not found"}}
            return web.json_response(body, status=404)
        now = time.monotonic()
        self.requests[index] += 1
        second = int(now - self.t0)
        self.per_second[second] = self.per_second.get(second, 0) + 1
        return web.json_response(self._body(index, now))

    async def _send_callbacks(self, urls: list[str], lose_every: int) -> None:
        slots = asyncio.Semaphore(64)
        for index in sorted(range(len(self.ends)), key=self.ends.__getitem__):
            delay = self.ends[index] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if lose_every and index % lose_every == lose_every - 1:
                self.callbacks_lost += 1
                continue
            post = asyncio.create_task(self._post(slots, urls[index], index))
            self._posts.add(post)
            post.add_done_callback(self._posts.discard)

    async def _post(self, slots: asyncio.Semaphore, url: str, index: int) -> None:
        assert self._session is not None
        payload = json.dumps(self._body(index, time.monotonic())).encode()
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
        self.callbacks_sent += 1
        self.callbacks_failed += not ok


# --------------------------------------------------------------------------------------
# the database of submitted tasks (built once per size, through the real store)
# --------------------------------------------------------------------------------------


async def build_template(path: Path, count: int) -> list[str]:
    """N tasks as `SoraService.submit` leaves them (reserved, then submitted); returns
    their callback tokens in order."""
    store = SqliteStore(path, clock=lambda: EPOCH)
    await store.open()
    tokens: list[str] = []
    try:
        for n in range(count):
            reserved = await store.reserve(
                NewTask(
                    guild_id=1,
                    channel_id=10,
                    user_id=n % 500,
                    provider="apixo",
                    mode=Mode.TEXT,
                    prompt="a lighthouse in a storm, cinematic",
                    options=GenerationOptions(),
                ),
                UNLIMITED,
            )
            task = await store.mark_submitted(
                reserved.task.id, provider_task_id(n), TaskState.SUBMITTED, None, EPOCH
            )
            assert task.callback_token is not None
            tokens.append(task.callback_token)
    finally:
        await store.close()
    return tokens


def copy_database(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{source}{suffix}")
        if src.exists():
            shutil.copyfile(src, f"{target}{suffix}")


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# the child: what is measured
# --------------------------------------------------------------------------------------


class SimClock:
    """Simulated time: EPOCH at monotonic `t0`, running `scale` times faster."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.t0 = time.monotonic()

    def seconds(self) -> float:
        return (time.monotonic() - self.t0) * self.scale

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.seconds())


class Recorder:
    """The stub deliverer: notes when each task is handed over, marks it posted."""

    def __init__(self, count: int, store: SqliteStore | None = None) -> None:
        self.count = count
        self.store = store
        self.at: dict[int, float] = {}
        self.all_done = asyncio.Event()

    def record(self, provider_id: str | None) -> None:
        if provider_id is None:
            return
        index = index_of(provider_id)
        if index not in self.at:
            self.at[index] = time.monotonic()
            if len(self.at) >= self.count:
                self.all_done.set()

    async def deliver(self, task: Task) -> None:
        self.record(task.provider_task_id)
        if self.store is not None:
            await self.store.record_delivery(task.id, NotifyState.POSTED)

    async def progress(self, task: Task) -> None:
        return None


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(PROTOCOL + json.dumps(message) + "\n")
    sys.stdout.flush()


async def fixed_poller(provider: Any, count: int, every: float, recorder: Recorder) -> None:
    """The provider docs' loop, for each task: wait `every` seconds, check, repeat."""
    from bot.errors import ProviderError

    slots = asyncio.Semaphore(CONCURRENCY)

    async def follow(index: int) -> None:
        pid = provider_task_id(index)
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

    await asyncio.gather(*(follow(i) for i in range(count)))


async def child(spec: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import bot.discord.app  # noqa: F401  (the bot's whole import footprint counts in its memory)
    from bot.__main__ import make_http_client
    from bot.metrics import Metrics
    from bot.providers.apixo import ApixoProvider
    from bot.providers.http import ProviderHTTP
    from bot.tracker import Tracker
    from bot.url_policy import MediaPolicy
    from bot.webhooks import WebhookServer

    config = next(c for c in CONFIGS if c.key == spec["config"])
    count, scale = int(spec["count"]), float(spec["scale"])
    path = Path(spec["database"])
    clock = SimClock(scale)
    schedule = config.schedule()
    if config.kind == "tracker":
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            first = iso(EPOCH + timedelta(seconds=schedule.first_delay))
            db.execute(
                "UPDATE tasks SET next_check_at = ? WHERE next_check_at IS NOT NULL", (first,)
            )
    store = SqliteStore(path, clock=clock.now)
    await store.open()
    client = make_http_client()
    provider = ApixoProvider(
        ProviderHTTP(
            client,
            provider="apixo",
            base_url=spec["base_url"],
            auth_header=("Authorization", f"Bearer {API_KEY}"),
        )
    )
    recorder = Recorder(count, store if config.kind == "tracker" else None)
    tracker: Tracker | None = None
    webhooks: WebhookServer | None = None
    ready: dict[str, Any] = {"ready": True}
    if config.kind == "tracker":
        metrics = Metrics()
        tracker = Tracker(
            store=store,
            provider=provider,
            deliverer=recorder,
            schedule=schedule,
            max_age=timedelta(hours=1),
            concurrency=CONCURRENCY,
            metrics=metrics,
            clock=clock.now,
            tick_seconds=TICK_SECONDS / scale,
            media_policy=MediaPolicy([spec["base_url"]]),
        )
        if config.callbacks:
            webhooks = WebhookServer(
                host="127.0.0.1",
                port=0,
                store=store,
                provider=provider,
                tracker=tracker,
                metrics=metrics,
            )
            await webhooks.start()
            ready["callback_base"] = f"http://127.0.0.1:{webhooks.port}/callbacks"
    say(ready)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    clock.t0 = float(json.loads(line)["t0"])
    await asyncio.sleep(max(0.0, clock.t0 - time.monotonic()))
    cpu0, wall0 = time.process_time(), time.monotonic()
    poller: asyncio.Task[None] | None = None
    if tracker is not None:
        await tracker.start()
    else:
        poller = asyncio.create_task(
            fixed_poller(provider, count, config.interval / scale, recorder)
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(recorder.all_done.wait(), float(spec["deadline"]) / scale)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if tracker is not None:
        await tracker.stop()
    if poller is not None:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    if webhooks is not None:
        await webhooks.stop()
    await client.aclose()
    await store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    say({"cpu": cpu, "wall": wall, "peak_mb": peak, "delivered": recorder.at})


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
# the parent: runs the scenarios, computes the figures
# --------------------------------------------------------------------------------------


@dataclass
class Result:
    count: int
    config: Config
    requests_per_task: float
    lag: list[float]
    undelivered: int
    cpu: float
    wall: float
    peak_mb: float
    peak_rate: int
    callbacks_lost: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

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


async def finish(proc: asyncio.subprocess.Process) -> None:
    try:
        async with asyncio.timeout(30):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def run_scenario(
    fake: BenchProvider,
    config: Config,
    durations: list[float],
    template: Path,
    tokens: list[str],
    work: Path,
    scale: float,
    lose_every: int,
) -> Result:
    count = len(durations)
    database = work / f"{config.key}-{count}.sqlite3"
    copy_database(template, database)
    deadline = LONGEST * 2  # simulated seconds; whatever is not handed over by then is late
    spec = {
        "config": config.key,
        "count": count,
        "scale": scale,
        "database": str(database),
        "base_url": fake.base_url,
        "deadline": deadline,
    }
    fake.reset()
    proc = await spawn(["--child", json.dumps(spec)])
    try:
        ready = await expect(proc, 120)
        urls = None
        if config.callbacks:
            urls = [f"{ready['callback_base']}/{token}" for token in tokens]
        t0 = time.monotonic() + 0.5
        fake.load(durations, t0, scale, urls, lose_every if config.callbacks else 0)
        assert proc.stdin is not None
        proc.stdin.write((json.dumps({"t0": t0}) + "\n").encode())
        await proc.stdin.drain()
        outcome = await expect(proc, deadline / scale + 120)
    finally:
        await fake.halt()
        if proc.returncode is None:
            await finish(proc)
    remove_database(database)
    delivered = {int(k): v for k, v in outcome["delivered"].items()}
    lag = [(at - t0) * scale - durations[i] for i, at in delivered.items()]
    return Result(
        count=count,
        config=config,
        requests_per_task=sum(fake.requests) / count,
        lag=lag,
        undelivered=count - len(delivered),
        cpu=outcome["cpu"],
        wall=outcome["wall"],
        peak_mb=outcome["peak_mb"],
        peak_rate=max(fake.per_second.values(), default=0),
        callbacks_lost=fake.callbacks_lost,
        extra={"unknown": fake.unknown, "callbacks_failed": fake.callbacks_failed},
    )


async def run_burst(count: int) -> dict[str, Any]:
    proc = await spawn(["--burst-child", str(count)])
    try:
        return await expect(proc, 180)
    finally:
        if proc.returncode is None:
            await finish(proc)


def fmt(value: float, digits: int = 2) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def table(results: list[Result], scale: float) -> str:
    lines = [
        "| tasks | follower | status req/task | lag p50 | lag p95 | lag p99 | not handed"
        " over | CPU s | CPU busy | peak status req/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        busy = r.cpu / r.wall if r.wall else 0.0
        lines.append(
            f"| {r.count:,} | {r.config.label} | {r.requests_per_task:.2f} |"
            f" {fmt(r.lag_at(0.5))} s | {fmt(r.lag_at(0.95))} s | {fmt(r.lag_at(0.99))} s |"
            f" {r.undelivered} | {r.cpu:.1f} | {busy:.0%} | {r.peak_rate:,} |"
            f" {r.peak_mb:.0f} |"
        )
    return "\n".join(lines)


def verdicts(results: list[Result], burst_figures: dict[str, Any] | None) -> list[str]:
    out = []
    by = {(r.count, r.config.key): r for r in results}
    for count in sorted({r.count for r in results}):
        mine, every3 = by.get((count, "tracker")), by.get((count, "every3"))
        if mine and every3:
            ratio = mine.requests_per_task / every3.requests_per_task
            p95 = mine.lag_at(0.95)
            ok = p95 <= 2.0 and ratio <= 0.75 and mine.undelivered == 0
            out.append(
                f"{count:,} tasks, polling alone: p95 {p95:.2f} s (target <= 2, every-3-s"
                f" poller {every3.lag_at(0.95):.2f} s), {ratio:.0%} of the every-3-s"
                f" poller's status requests (target <= 75%): {'met' if ok else 'NOT met'}"
            )
        cb = by.get((count, "callbacks"))
        if cb:
            ok = cb.lag_at(0.95) <= 0.5 and cb.requests_per_task <= 2 and cb.undelivered == 0
            out.append(
                f"{count:,} tasks, callbacks: p95 {cb.lag_at(0.95):.2f} s (target <= 0.5),"
                f" {cb.requests_per_task:.2f} status requests per task (target <= 2):"
                f" {'met' if ok else 'NOT met'}"
            )
        peaks = [r.peak_mb for r in results if r.count == count and r.config.kind == "tracker"]
        if count >= 10_000 and peaks:
            out.append(
                f"{count:,} pending tasks in one process: peak {max(peaks):.0f} MB"
                f" (target < 150): {'met' if max(peaks) < 150 else 'NOT met'}"
            )
    if burst_figures is not None:
        acks = burst_figures["acks"]
        p99 = percentile(acks, 0.99)
        ok = p99 < 0.5 and not burst_figures["missing"] and not burst_figures["late"]
        out.append(
            f"burst of {len(acks) + burst_figures['missing']} commands: acknowledged p50"
            f" {percentile(acks, 0.5):.3f} s, p99 {p99:.3f} s, max {max(acks):.3f} s"
            f" (target p99 < 0.5): {'met' if ok else 'NOT met'}"
        )
    return out


async def parent(args: argparse.Namespace) -> dict[str, Any]:
    counts: list[int] = (
        args.tasks if args.tasks is not None else [100] if args.quick else [1_000, 10_000]
    )
    scale: float = args.scale or (4.0 if args.quick else 1.0)
    burst_count: int = args.burst if args.burst is not None else (50 if args.quick else 200)
    configs = [c for c in CONFIGS if not args.only or c.key in args.only]
    lose_every = round(1 / args.lose_callbacks) if args.lose_callbacks > 0 else 0
    for config in configs:
        if config.kind == "tracker":
            s = config.schedule()
            print(
                f"{config.label}: first check {s.first_delay:.2f} s, then every"
                f" {s.interval:.2f} s" + (" (x4 after the first)" if s.callbacks else ""),
                flush=True,
            )
    results: list[Result] = []
    began = time.monotonic()
    fake = BenchProvider()
    await fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tracker-") as folder:
            work = Path(folder)
            for count in counts:
                template = work / f"template-{count}.sqlite3"
                t = time.monotonic()
                tokens = await build_template(template, count)
                print(f"{count:,} submitted tasks in {time.monotonic() - t:.1f} s", flush=True)
                durations = generation_times(count, args.seed)
                for config in configs:
                    t = time.monotonic()
                    result = await run_scenario(
                        fake, config, durations, template, tokens, work, scale, lose_every
                    )
                    results.append(result)
                    print(
                        f"  {config.label}: {result.requests_per_task:.2f} req/task, lag p50"
                        f" {fmt(result.lag_at(0.5))} p95 {fmt(result.lag_at(0.95))}"
                        f" p99 {fmt(result.lag_at(0.99))} s, {result.undelivered} late,"
                        f" CPU {result.cpu:.1f} s, {result.peak_mb:.0f} MB"
                        f" ({time.monotonic() - t:.0f} s)",
                        flush=True,
                    )
    finally:
        await fake.stop()
    burst_figures = await run_burst(burst_count) if burst_count > 0 else None
    print()
    print(f"scale {scale:g} (figures in simulated seconds); seed {args.seed}")
    print(table(results, scale))
    print()
    for line in verdicts(results, burst_figures):
        print("- " + line)
    print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    return {
        "scale": scale,
        "seed": args.seed,
        "results": [
            {
                "tasks": r.count,
                "follower": r.config.key,
                "status_requests_per_task": r.requests_per_task,
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
                "callbacks_lost": r.callbacks_lost,
                **r.extra,
            }
            for r in results
        ],
        "burst": burst_figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 tasks at 4x, 50 commands")
    parser.add_argument(
        "--tasks", type=int, nargs="*", help="task counts (default 1000 10000; none: burst only)"
    )
    parser.add_argument("--scale", type=float, help="simulated seconds per real second")
    parser.add_argument("--burst", type=int, help="concurrent commands (0: skip)")
    parser.add_argument("--only", nargs="*", choices=[c.key for c in CONFIGS])
    parser.add_argument(
        "--lose-callbacks", type=float, default=0.01, help="share of callbacks never sent"
    )
    parser.add_argument("--seed", type=int, default=20261124)
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
