"""The PostgreSQL connection: the asyncpg pool, numbered migrations, and transactions.

Every store method is one transaction on a connection of its own from the pool, so
several processes (and coroutines) work on one database at once; what must not
interleave is serialised by PostgreSQL's row locks (`FOR UPDATE`), not by the process.
Migrations run inside one transaction holding `pg_advisory_xact_lock(MIGRATION_LOCK)`:
processes starting together apply each migration once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from bot.domain import utc_now

Clock = Callable[[], datetime]

# The advisory lock key migrations hold (any constant every process agrees on).
MIGRATION_LOCK = 0x50F4_B07D_0001


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every `NNNN_name.sql` in `bot/store/postgres/migrations`."""
    found = []
    for entry in resources.files("bot.store.postgres").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def redact(dsn: str) -> str:
    """The DSN without its password (URL or key=value form)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{hostport}" if user else hostport
        query = re.sub(r"(?i)(^|&)password=[^&]*", r"\1password=***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return re.sub(r"(?i)password\s*=\s*('[^']*'|\S+)", "password=***", dsn)


def count_of(status: str) -> int:
    """Rows a command touched, from asyncpg's status string ("INSERT 0 1", "DELETE 2")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresBase:
    """The pool every part of the PostgreSQL store works through."""

    def __init__(self, dsn: str, *, clock: Clock = utc_now, schema: str | None = None) -> None:
        self._dsn = dsn
        self._clock = clock
        self._schema = schema
        self._pool: Any = None

    @property
    def description(self) -> str:
        where = redact(self._dsn)
        return where + (f" (schema {self._schema})" if self._schema else "")

    async def open(self) -> None:
        await self.open_at(None)

    async def open_at(self, target_version: int | None) -> None:
        """Open and migrate up to `target_version` (all when None); tests use the target."""
        settings = {} if self._schema is None else {"search_path": quote_ident(self._schema)}
        pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=10, server_settings=settings
        )
        try:
            await self._migrate(pool, target_version)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _migrate(self, pool: Any, target_version: int | None) -> None:
        async with pool.acquire() as c, c.transaction():
            # Everything below, the schema itself included, happens under the lock: a
            # second process waits here, then finds the migrations applied.
            await c.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            if self._schema is not None:
                await c.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self._schema)}")
            await c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            applied = {r[0] for r in await c.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in load_migrations():
                if version in applied or (target_version is not None and version > target_version):
                    continue
                await c.execute(sql)
                await c.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    version,
                    name,
                    self._clock(),
                )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def _conn(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """One transaction on a pooled connection: committed when the block ends, rolled
        back if it raises."""
        async with self._conn.acquire() as c, c.transaction():
            yield c

    async def _one(self, sql: str, *params: Any) -> Any:
        async with self._transaction() as c:
            return await c.fetchrow(sql, *params)

    async def _all(self, sql: str, *params: Any) -> list[Any]:
        async with self._transaction() as c:
            return list(await c.fetch(sql, *params))

    async def schema_version(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0
