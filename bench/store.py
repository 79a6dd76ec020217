"""Store benchmark: quota reservations per second and history-page latency.

Run: .venv/bin/python -m bench.store   (writes nothing outside a temporary folder)

Measures
- reservations per second from one caller, awaiting each in turn;
- reservations per second from 50 concurrent callers (the lock serialises them; this
  shows what that costs);
- the latency of one member's history page (10 tasks, newest first, with the total
  count) with 100,000 tasks in the database, for the first and a deep page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.domain import EffectiveLimits, GenerationOptions, Mode, NewTask, QuotaUnit
from bot.store import SqliteStore

UNLIMITED = EffectiveLimits(10**9, 10**9, None, QuotaUnit.VIDEOS)


def _task(user: int, guild: int = 1) -> NewTask:
    return NewTask(
        guild_id=guild,
        channel_id=10,
        user_id=user,
        provider="demo",
        mode=Mode.TEXT,
        prompt="a lighthouse in a storm, cinematic",
        options=GenerationOptions(),
    )


async def reservations_per_second(path: Path, total: int, concurrency: int) -> float:
    store = SqliteStore(path)
    await store.open()
    try:
        queue = list(range(total))

        async def worker() -> None:
            while queue:
                n = queue.pop()
                await store.reserve(_task(n % 500), UNLIMITED)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - started)
    finally:
        await store.close()


def seed_tasks(path: Path, count: int, users: int) -> None:
    """Insert `count` tasks directly (fast) after the store has created the schema."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    options = json.dumps({"aspect": "landscape", "duration_seconds": 8, "quality": "standard"})
    rows = []
    for n in range(count):
        at = (start + timedelta(seconds=n * 7)).isoformat(timespec="microseconds")
        rows.append(
            (f"T{n:07d}", 1, 10, n % users, "demo", "text", options, "prompt", "succeeded", at, at)
        )
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO tasks (id, guild_id, channel_id, user_id, provider, mode, options_json,"
            " prompt, state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


async def history_latency(path: Path, tasks: int, users: int, samples: int) -> dict[str, float]:
    store = SqliteStore(path)
    await store.open()
    await store.close()
    seed_tasks(path, tasks, users)
    store = SqliteStore(path)
    await store.open()
    try:
        per_user = tasks // users
        deep_page = max(1, per_user // 10 - 1)
        results = {}
        for label, page in (("first page", 1), (f"page {deep_page}", deep_page)):
            timings = []
            for n in range(samples):
                began = time.perf_counter()
                result = await store.user_tasks(1, n % users, page=page, page_size=10)
                timings.append((time.perf_counter() - began) * 1000)
                assert len(result.tasks) == 10 and result.total == per_user
            timings.sort()
            results[f"{label} p50 ms"] = statistics.median(timings)
            results[f"{label} p95 ms"] = timings[int(len(timings) * 0.95) - 1]
        return results
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reservations", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        single = await reservations_per_second(base / "a.sqlite3", args.reservations, 1)
        many = await reservations_per_second(base / "b.sqlite3", args.reservations, 50)
        history = await history_latency(base / "c.sqlite3", args.tasks, args.users, args.samples)
    print(f"reservations/s, 1 caller:    {single:,.0f}")
    print(f"reservations/s, 50 callers:  {many:,.0f}")
    print(f"history with {args.tasks:,} tasks ({args.tasks // args.users} per member):")
    for label, value in history.items():
        print(f"  {label}: {value:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
