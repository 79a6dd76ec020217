"""Scale-out benchmark (issue 16): one store shared by one or two bot processes.

Run: .venv/bin/python -m bench.scale            (full: 5,000 claims, 1,000 tracked tasks)
     .venv/bin/python -m bench.scale --quick    (a smoke test)

Needs a PostgreSQL server (default postgresql://postgres@127.0.0.1:5432/test, `--pg`); it
creates a database `bench_<random>` there and drops it at the end. SQLite lives in a
temporary folder. Every figure goes through the store's own methods, each worker process
with its own store, as two bot processes would:

1. reservations/s: `Store.reserve` into one guild, 50 concurrent callers per process;
   SQLite one process, PostgreSQL one and two processes; then a guild daily limit N
   smaller than the attempts of both processes together: exactly N must succeed.
2. claims/s: N due tasks (`reserve` + `mark_submitted`, next check now), then
   `claim_due_tasks(now, 500, lease)` until nothing is left; one and two processes. No
   task may be claimed by both, and together they must claim all.
3. two trackers: the real `Tracker` in each of two processes, each with its own
   `PostgresStore` and APIXO adapter, following the same pending tasks against one fake
   provider (`bench.tracker.BenchProvider`) in this process; against one tracker alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain import EffectiveLimits, GenerationOptions, Mode, NewTask, QuotaUnit, TaskState

PROTOCOL = "SCALE "
UNLIMITED = EffectiveLimits(10**9, 10**9, None, QuotaUnit.VIDEOS)
CALLERS = 50  # concurrent callers per process
CLAIM_BATCH = 500
LEASE = 60.0
AT_ONCE = 0.2  # seconds: two status checks of one task this close count as "at once"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _task(user: int, guild: int = 1, provider: str = "demo") -> NewTask:
    return NewTask(
        guild_id=guild,
        channel_id=10,
        user_id=user,
        provider=provider,
        mode=Mode.TEXT,
        prompt="a lighthouse in a storm, cinematic",
        options=GenerationOptions(),
    )


def make_store(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "sqlite":
        from bot.store import SqliteStore

        return SqliteStore(Path(spec["path"]))
    from bot.store.postgres import PostgresStore

    return PostgresStore(spec["dsn"], schema=spec["schema"])


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(PROTOCOL + json.dumps(message) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------------------
# the worker process: one store, told when to start
# --------------------------------------------------------------------------------------


async def work_reserve(store: Any, job: dict[str, Any]) -> dict[str, Any]:
    from bot.errors import QuotaExceededError

    limits = EffectiveLimits(int(job["daily"]), 10**9, None, QuotaUnit.VIDEOS)
    queue = list(range(int(job["attempts"])))
    ok = refused = 0
    done: list[float] = []  # the moment each reservation returned

    async def caller() -> None:
        nonlocal ok, refused
        while queue:
            n = queue.pop()
            try:
                await store.reserve(_task(n % 500), limits)
                ok += 1
                done.append(time.time())
            except QuotaExceededError:
                refused += 1

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return {"ok": ok, "refused": refused, "done": done}


async def work_claim(store: Any, job: dict[str, Any]) -> dict[str, Any]:
    now = datetime.fromisoformat(job["now"])
    claimed: list[str] = []
    batches = 0
    while batch := await store.claim_due_tasks(now, CLAIM_BATCH, LEASE):
        claimed.extend(t.id for t in batch)
        batches += 1
    return {"ids": claimed, "batches": batches}


async def work_track(store: Any, job: dict[str, Any]) -> dict[str, Any]:
    from bench.tracker import API_KEY, Recorder
    from bot.__main__ import make_http_client
    from bot.polling import PollPlanner
    from bot.providers.apixo import ApixoProvider
    from bot.providers.http import ProviderHTTP
    from bot.schedule import Schedule
    from bot.tracker import Tracker
    from bot.url_policy import MediaPolicy

    client = make_http_client()
    provider = ApixoProvider(
        ProviderHTTP(
            client,
            provider="apixo",
            base_url=job["base_url"],
            auth_header=("Authorization", f"Bearer {API_KEY}"),
        )
    )
    recorder = Recorder()
    recorder.store = store
    recorder.expect(0, int(job["count"]))
    planner = PollPlanner.fixed(Schedule(float(job["first_delay"]), float(job["interval"])))
    tracker = Tracker(
        store=store,
        provider=provider,
        deliverer=recorder,
        polling=planner,
        max_age=timedelta(hours=2),
        media_policy=MediaPolicy([job["base_url"]]),
    )
    cpu0 = time.process_time()
    await tracker.start()
    deadline = time.monotonic() + float(job["deadline"])
    try:
        # Both processes share the tasks: done when none is unfinished in the store.
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if not await store.unfinished_tasks():
                break
    finally:
        await tracker.stop()
        await client.aclose()
    return {"delivered": recorder.at[0], "cpu": time.process_time() - cpu0}


JOBS = {"reserve": work_reserve, "claim": work_claim, "track": work_track}


async def worker(spec: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    store = make_store(spec["store"])
    await store.open()
    try:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        say({"ready": os.getpid()})
        if not await reader.readline():
            return
        started = time.time()
        result = await JOBS[spec["job"]](store, spec)
        result.update(started=started, ended=time.time())
        say(result)
    finally:
        await store.close()


# --------------------------------------------------------------------------------------
# the parent
# --------------------------------------------------------------------------------------


async def run_workers(specs: list[dict[str, Any]], within: float = 900) -> list[dict[str, Any]]:
    """Start one worker per spec, let them all go at once, return their results."""
    procs = []
    for spec in specs:
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.scale",
                "--worker",
                json.dumps(spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**26,  # a result line carries every claimed id
            )
        )

    async def hear(proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError("a worker exited early")
            if line.startswith(PROTOCOL):
                message: dict[str, Any] = json.loads(line[len(PROTOCOL) :])
                return message

    try:
        await asyncio.wait_for(asyncio.gather(*(hear(p) for p in procs)), 60)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        return await asyncio.wait_for(asyncio.gather(*(hear(p) for p in procs)), within)
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    if proc.stdin is not None:
                        proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


def span(results: list[dict[str, Any]]) -> float:
    return max(r["ended"] for r in results) - min(r["started"] for r in results)


@dataclass
class Bench:
    pg: str
    folder: Path
    quick: bool
    database: str = field(default_factory=lambda: f"bench_{secrets.token_hex(4)}")
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schemas: int = 0

    @property
    def dsn(self) -> str:
        base, _, _ = self.pg.rpartition("/")
        return f"{base}/{self.database}"

    def store(self, kind: str) -> dict[str, Any]:
        self.schemas += 1
        if kind == "sqlite":
            return {"kind": "sqlite", "path": str(self.folder / f"s{self.schemas}.sqlite3")}
        return {"kind": "pg", "dsn": self.dsn, "schema": f"bench{self.schemas}"}

    def row(self, *cells: str) -> None:
        self.rows.append(cells)
        print(" | ".join(cells), flush=True)

    # 1. reservations
    async def reservations(self, kind: str, processes: int, total: int) -> None:
        store = self.store(kind)
        await self._open_close(store)
        per = total // processes
        specs = [
            {"job": "reserve", "store": store, "attempts": per, "daily": 10**9}
            for _ in range(processes)
        ]
        results = await run_workers(specs)
        done = sum(r["ok"] for r in results)
        assert done == per * processes, results
        rate = done / span(results)
        # The rate over the first and the last fifth: each reservation sums the guild's
        # usage so far today, so it may slow down as the day fills.
        moments = sorted(m for r in results for m in r["done"])
        fifth = len(moments) // 5
        first = fifth / (moments[fifth - 1] - min(r["started"] for r in results))
        last = fifth / (moments[-1] - moments[-fifth - 1])
        name = "SQLite" if kind == "sqlite" else "PostgreSQL"
        callers = f"{processes} x {CALLERS} callers"
        self.row(
            "reservations/s",
            name,
            callers,
            f"{done:,}",
            f"{rate:,.0f}",
            f"first fifth {first:,.0f}/s, last fifth {last:,.0f}/s",
        )

    async def overspend(self, limit: int, attempts: int) -> None:
        store = self.store("pg")
        await self._open_close(store)
        specs = [
            {"job": "reserve", "store": store, "attempts": attempts, "daily": limit}
            for _ in range(2)
        ]
        results = await run_workers(specs)
        ok = sum(r["ok"] for r in results)
        refused = sum(r["refused"] for r in results)
        verdict = "exactly N: yes" if ok == limit else f"OVERSPEND/UNDERSPEND: {ok} != {limit}"
        self.row(
            "guild limit N",
            "PostgreSQL",
            f"2 x {CALLERS} callers",
            f"{2 * attempts:,} tries, N={limit}",
            f"{ok} ok ({results[0]['ok']} + {results[1]['ok']}), {refused} refused",
            verdict,
        )

    # 2. claims
    async def seed_due(self, spec: dict[str, Any], count: int) -> datetime:
        store = make_store(spec)
        await store.open()
        try:
            now = datetime.now(UTC)
            queue = list(range(count))

            async def seeder() -> None:
                while queue:
                    n = queue.pop()
                    task = (await store.reserve(_task(n % 500), UNLIMITED)).task
                    await store.mark_submitted(
                        task.id, f"p-{n}", TaskState.SUBMITTED, None, now - timedelta(seconds=1)
                    )

            await asyncio.gather(*(seeder() for _ in range(20)))
            return now
        finally:
            await store.close()

    async def claims(self, kind: str, processes: int, count: int) -> None:
        spec = self.store(kind)
        now = await self.seed_due(spec, count)
        specs = [{"job": "claim", "store": spec, "now": now.isoformat()} for _ in range(processes)]
        results = await run_workers(specs)
        sets = [set(r["ids"]) for r in results]
        union = set().union(*sets)
        both = sum(len(r["ids"]) for r in results) - len(union)
        rate = len(union) / span(results)
        ok = len(union) == count and both == 0
        split = " + ".join(f"{len(s):,}" for s in sets)
        check = f"all once ({split})" if ok else f"FAILED: {len(union)} of {count}, {both} twice"
        name = "SQLite" if kind == "sqlite" else "PostgreSQL"
        self.row("claims/s", name, f"{processes} process(es)", f"{count:,}", f"{rate:,.0f}", check)

    # 3. trackers
    async def trackers(self, processes: int, count: int, low: float, high: float) -> None:
        import random

        from bench.tracker import BenchProvider, bare_id, provider_task_id
        from bot.store.postgres import PostgresStore

        spec = self.store("pg")
        stamps: dict[str, list[float]] = {}

        class Stamped(BenchProvider):
            """Also notes the moment of every status request, per task."""

            async def _status(self, request: Any) -> Any:
                stamps.setdefault(request.query.get("taskId", ""), []).append(time.monotonic())
                return await super()._status(request)

        provider = Stamped()
        await provider.start()
        try:
            rng = random.Random(16)
            durations = [low + (high - low) * rng.random() for _ in range(count)]
            interval = 1.9
            first_delay = low + interval
            run = f"r{processes}"
            store = PostgresStore(spec["dsn"], schema=spec["schema"])
            await store.open()
            try:
                created = datetime.now(UTC)
                start = time.monotonic()
                for n in range(count):
                    task = (await store.reserve(_task(n % 500, provider="apixo"), UNLIMITED)).task
                    await store.mark_submitted(
                        task.id,
                        provider_task_id(run, 0, n),
                        TaskState.SUBMITTED,
                        None,
                        task.created_at + timedelta(seconds=first_delay),
                    )
            finally:
                await store.close()
            epoch = datetime(2026, 11, 24, tzinfo=UTC)
            wave = provider.load(
                run, 0, durations, start, (created - epoch).total_seconds(), scale=1.0
            )
            job = {
                "job": "track",
                "store": spec,
                "base_url": provider.base_url,
                "count": count,
                "first_delay": first_delay,
                "interval": interval,
                "deadline": high + 60,
            }
            results = await run_workers([dict(job) for _ in range(processes)])
        finally:
            await provider.stop()
        delivered: dict[int, list[float]] = {}
        for r in results:
            for index, at in r["delivered"].items():
                delivered.setdefault(int(index), []).append(at)
        twice = sum(len(v) > 1 for v in delivered.values())
        lags = sorted(min(v) - wave.ends[i] for i, v in delivered.items())
        requests = sum(wave.requests)
        gaps = []  # between consecutive status requests for one task
        for n in range(count):
            moments = sorted(stamps.get(bare_id(run, 0, n), []))
            gaps.extend(b - a for a, b in itertools.pairwise(moments))
        # Two processes checking one task at once would leave gaps near 0; the claim
        # itself never brings a check nearer than half a lease (`claim_due_tasks`).
        at_once = sum(g < AT_ONCE for g in gaps)
        close = sum(g < interval / 2 for g in gaps)

        def pct(share: float) -> float:
            return lags[min(len(lags) - 1, int(len(lags) * share))] if lags else float("nan")

        split = " + ".join(str(len(r["delivered"])) for r in results)
        check = (
            f"delivered {len(delivered)}/{count} ({split}), {twice} twice,"
            f" {at_once} checks < {AT_ONCE} s after the previous one,"
            f" {close} < {interval / 2:.2f} s (min gap {min(gaps, default=0):.2f} s)"
        )
        cpu = " + ".join(f"{r['cpu']:.1f}" for r in results)
        self.row(
            "tracker",
            "PostgreSQL",
            f"{processes} process(es)",
            f"{count:,}",
            f"lag p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s;"
            f" {requests / count:.2f} status req/task; CPU {cpu} s",
            check,
        )

    async def _open_close(self, spec: dict[str, Any]) -> None:
        store = make_store(spec)
        await store.open()
        await store.close()


async def parent(args: argparse.Namespace) -> None:
    import asyncpg

    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(args.pg, Path(folder), args.quick)
        admin = await asyncpg.connect(args.pg)
        await admin.execute(f'CREATE DATABASE "{bench.database}"')
        try:
            reservations = 1000 if args.quick else 5000
            claims = 1000 if args.quick else 5000
            tracked = 200 if args.quick else 1000
            low, high = (10.0, 30.0) if args.quick else (40.0, 120.0)
            print("figure | store | processes | work | result | check", flush=True)
            if "reserve" in args.only:
                await bench.reservations("sqlite", 1, reservations)
                await bench.reservations("pg", 1, reservations)
                await bench.reservations("pg", 2, reservations)
                await bench.overspend(limit=137 if args.quick else 500, attempts=reservations // 2)
            if "claim" in args.only:
                await bench.claims("sqlite", 1, claims)
                await bench.claims("pg", 1, claims)
                await bench.claims("pg", 2, claims)
            if "track" in args.only:
                await bench.trackers(1, tracked, low, high)
                await bench.trackers(2, tracked, low, high)
        finally:
            # Close every connection to it first (workers have exited by now).
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                bench.database,
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{bench.database}"')
            await admin.close()
    print()
    print("| figure | store | processes | work | result | check |")
    print("|---|---|---|---|---|---|")
    for cells in bench.rows:
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller counts, short spread")
    parser.add_argument("--pg", default=DEFAULT_PG, help="an existing database to start from")
    parser.add_argument(
        "--only", nargs="+", default=["reserve", "claim", "track"], help="reserve claim track"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(json.loads(args.worker)))
    else:
        asyncio.run(parent(args))


if __name__ == "__main__":
    main()
