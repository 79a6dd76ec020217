"""`sora-bot migrate-db --to postgresql://...`: a SQLite install copied into an empty
PostgreSQL database reads the same through the store, counts verified; a database that
is not empty is refused. Skipped without a server, unless REQUIRE_POSTGRES=1."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    GenerationTime,
    Mode,
    NewTask,
    NotifyState,
    QuotaLimits,
    QuotaUnit,
    Settle,
    TaskState,
    TaskUpdate,
)
from bot.modlog import LogEntry, LogKind
from bot.store import SqliteStore
from bot.store.migrate import MigrationError, migrate
from bot.store.postgres import PostgresStore
from tests.clock import FakeClock

DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
LIMITS = EffectiveLimits(20, 300, 5, QuotaUnit.VIDEOS)
GUILD = 1_234_567_890_123_456_789


@pytest.fixture
async def database() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(DSN, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        message = f"no PostgreSQL server at TEST_DATABASE_URL ({type(error).__name__})"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"t_{uuid.uuid4().hex}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(DSN)
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def an_install(path: Path) -> list[str]:
    """A SQLite install with something in every table; returns its task ids."""
    clock = FakeClock()
    store = SqliteStore(path, clock=clock)
    await store.open()
    try:
        await store.update_quota_limits(GUILD, QuotaLimits(daily=7, unit=QuotaUnit.VIDEOS))
        await store.add_allowed_channel(GUILD, 42, 1)
        await store.set_role_allowance(GUILD, 9, 3, 1)
        await store.add_blocked_phrase(GUILD, "red fox", 1)
        await store.set_log_channel(GUILD, 77)
        await store.set_approval(GUILD, True)
        ids = []
        for n in range(3):
            new = NewTask(GUILD, 42, 100 + n, "demo", Mode.TEXT, f"p{n}", GenerationOptions())
            ids.append((await store.reserve(new, LIMITS)).task.id)
        await store.mark_submitted(ids[0], "d-0", TaskState.SUBMITTED, None, clock.now)
        await store.finish(
            ids[0],
            TaskUpdate(TaskState.SUCCEEDED, took=GenerationTime.exact(42.0)),
            settle=Settle.CHARGE,
        )
        await store.record_delivery(ids[0], NotifyState.POSTED, 555)
        await store.finish(ids[1], TaskUpdate(TaskState.FAILED), settle=Settle.REFUND)
        await store.add_log_entry(LogEntry(GUILD, LogKind.ACTION, actor_id=1, detail={"a": "b"}))
        await store.record_create("apixo", ok=False, reason="out_of_credits", cooldown=300)
        return ids
    finally:
        await store.close()


async def test_a_sqlite_install_reads_the_same_on_postgresql(tmp_path: Path, database: str) -> None:
    path = tmp_path / "bot.sqlite3"
    ids = await an_install(path)
    copied = await migrate(path, database)
    assert copied.counts["tasks"] == 3 and copied.counts["quota_ledger"] == 5
    assert all(copied.counts[t] >= 1 for t in ("guild_settings", "mod_log", "provider_events"))

    before, after = SqliteStore(path), PostgresStore(database)
    await before.open()
    await after.open()
    try:
        assert await after.guild_settings(GUILD) == await before.guild_settings(GUILD)
        for user in (100, 101, 102):
            old = await before.quota_status(GUILD, user, LIMITS)
            new = await after.quota_status(GUILD, user, LIMITS)
            assert (old.guild_used_today, old.user_used_today) == (
                new.guild_used_today,
                new.user_used_today,
            )
        for task_id in ids:
            old_task, new_task = await before.get_task(task_id), await after.get_task(task_id)
            assert old_task is not None and new_task is not None
            assert new_task == old_task
        assert await after.undelivered_tasks() == await before.undelivered_tasks()
        assert await after.generation_times("demo") == await before.generation_times("demo")
        # The sequences continue after the copied ids: new rows go in.
        await after.add_log_entry(LogEntry(GUILD, LogKind.ACTION, actor_id=2, detail={}))
        assert len(await after.pending_log_entries()) == 2
    finally:
        await before.close()
        await after.close()
    with pytest.raises(MigrationError, match="not empty"):
        await migrate(path, database)


async def test_the_command_copies_and_reports_the_counts(tmp_path: Path, database: str) -> None:
    path = tmp_path / "bot.sqlite3"
    await an_install(path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate-db", "--to", database,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": f"sqlite:///{path}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "counts verified" in out.decode() and "tasks: 3" in out.decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate-db", "--to", database,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": f"sqlite:///{path}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2 and "not empty" in err.decode()
