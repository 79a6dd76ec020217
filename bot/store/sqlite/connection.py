"""The SQLite connection: opening it, numbered migrations, and the transaction helper.

aiosqlite runs the connection on one thread, but coroutines share it: two coroutines
that each run BEGIN ... COMMIT would interleave their statements inside one
transaction. So every operation holds `self._lock` from its first statement to its
commit, and every write is one `BEGIN IMMEDIATE` transaction in which no other
coroutine's statement can run (between a quota check and its reservation, say).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from bot.domain import utc_now

Clock = Callable[[], datetime]


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every `NNNN_name.sql` in `bot/store/migrations`, in order."""
    found = []
    for entry in resources.files("bot.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found)


async def first(
    db: aiosqlite.Connection, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
) -> sqlite3.Row | None:
    """One row in one round trip to the connection's thread (each trip costs ~0.1 ms)."""
    rows = await db.execute_fetchall(sql, params)
    return next(iter(rows), None)


async def every(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return list(await db.execute_fetchall(sql, params))


def ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


def dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class SqliteBase:
    """The connection every part of the SQLite store works through."""

    def __init__(self, path: Path | None, *, clock: Clock = utc_now) -> None:
        """`path=None` keeps the database in memory (tests, `check` dry runs)."""
        self._path = path
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def description(self) -> str:
        return f"sqlite:{self._path}" if self._path else "sqlite (in memory)"

    async def open(self) -> None:
        await self.open_at(None)

    async def open_at(self, target_version: int | None) -> None:
        """Open and migrate up to `target_version` (all when None); tests use the target."""
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(
            ":memory:" if self._path is None else str(self._path), isolation_level=None
        )
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA synchronous = NORMAL")
        self._db = db
        await self._migrate(target_version)

    async def _migrate(self, target_version: int | None) -> None:
        db = self._conn
        async with self._lock:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in await every(db, "SELECT version FROM schema_migrations")}
            for version, name, sql in load_migrations():
                if version in applied or (target_version is not None and version > target_version):
                    continue
                # One script per migration, inside its own transaction, with its record:
                # a crash half-way leaves the database at the previous version.
                record = (
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES "
                    f"({version}, '{name}', '{ts(self._clock())}');"
                )
                await db.executescript(f"BEGIN IMMEDIATE;\n{sql}\n{record}\nCOMMIT;")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        async with self._lock:
            db = self._conn
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            else:
                await db.execute("COMMIT")

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        async with self._lock:
            return await first(self._conn, sql, params)

    async def schema_version(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0
