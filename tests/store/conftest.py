"""A clock-driven SQLite store in a temporary folder, for the store tests that move time
(`tests/store/test_store.py` keeps fixtures of its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import SqliteStore
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


@pytest.fixture
async def store(path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(path, clock=clock)
    await db.open()
    yield db
    await db.close()
