"""The store tests' stores: the same behaviour tests run against SQLite and PostgreSQL.

A test asking for `store` runs once per backend, with a store on a clock the test moves:
SQLite in a temporary folder, PostgreSQL in a schema of its own on the server at
TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test), dropped afterwards.
A test that also reads the SQLite file itself (`path`) runs on SQLite only. Without a
PostgreSQL server the PostgreSQL runs are skipped with the reason, unless
REQUIRE_POSTGRES=1 (CI) makes that a failure. Modules with a `store` fixture of their
own (`test_store.py`, `test_postgres_contract.py`) keep it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from bot.store import SqliteStore, Store
from bot.store.postgres import PostgresStore, redact
from tests.clock import FakeClock

DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames or hasattr(metafunc.module, "store"):
        return
    backends = ["sqlite"] if "path" in metafunc.fixturenames else ["sqlite", "postgres"]
    metafunc.parametrize("backend", backends)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


_server_problem: dict[str, str | None] = {}


async def postgres_server() -> str:
    """The test server's DSN; skips (or, with REQUIRE_POSTGRES=1, fails) without one.
    Asked once per run."""
    if DSN not in _server_problem:
        try:
            conn = await asyncpg.connect(DSN, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            _server_problem[DSN] = f"{type(error).__name__}: {error}"
        else:
            await conn.close()
            _server_problem[DSN] = None
    problem = _server_problem[DSN]
    if problem is not None:
        message = f"no PostgreSQL server at {redact(DSN)} ({problem})"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return DSN


@pytest.fixture
async def store(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    db: Any
    if backend == "sqlite":
        db = SqliteStore(tmp_path / "bot.sqlite3", clock=clock)
        await db.open()
        yield db
        await db.close()
        return
    dsn = await postgres_server()
    schema = f"t_{uuid.uuid4().hex}"
    db = PostgresStore(dsn, clock=clock, schema=schema)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
