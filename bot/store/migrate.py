"""`sora-bot migrate-db --to postgresql://...`: move a SQLite install to PostgreSQL.

Copies every table of the SQLite database `DATABASE_URL` points at (tasks with their
delivery state, the quota ledger, server settings, governance, the moderation log,
provider health and generation times) into an empty PostgreSQL database, in one
transaction, then checks that every table holds as many rows as the source. The bot
then runs on the new URL and posts nothing again: whether each outcome was delivered
travels with its task.

Both schemas are brought up to date first (each store applies its own migrations), so
the copy is between the same tables and columns; values are converted by the target
column's type (SQLite keeps times as ISO text and booleans as 0/1).
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.store.postgres import PostgresStore
from bot.store.sqlite import SqliteStore

# Parents before children (tasks before the ledger entries that name them).
TABLES = (
    "guild_settings",
    "allowed_channels",
    "role_allowances",
    "blocked_phrases",
    "tasks",
    "quota_ledger",
    "generation_times",
    "mod_log",
    "provider_health",
    "provider_events",
)
# Tables whose ids PostgreSQL draws from a sequence: set past the copied ids.
SERIAL = ("quota_ledger", "generation_times", "mod_log", "provider_events")


class MigrationError(Exception):
    """Why the copy was not made (nothing was written)."""


@dataclass(frozen=True, slots=True)
class Copied:
    counts: dict[str, int]


def _convert(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type.startswith("timestamp"):
        return datetime.fromisoformat(value) if isinstance(value, str) else value
    if pg_type == "boolean":
        return bool(value)
    if pg_type in ("bigint", "integer", "smallint"):
        return int(value)
    if pg_type in ("double precision", "real", "numeric"):
        return float(value)
    return value


async def migrate(sqlite_path: Path, target_url: str) -> Copied:
    """Copy `sqlite_path` into the empty PostgreSQL database at `target_url`."""
    if not await asyncio.to_thread(sqlite_path.exists):
        raise MigrationError(f"there is no SQLite database at {sqlite_path}")
    source = SqliteStore(sqlite_path)
    await source.open()  # brings the source to the current schema
    await source.close()
    target = PostgresStore(target_url)
    await target.open()
    try:
        async with target._transaction() as c:
            for table in TABLES:
                if await c.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                    raise MigrationError(
                        f"the target database is not empty (table {table} has rows): "
                        "migrate-db copies into an empty database only"
                    )
            counts: dict[str, int] = {}
            with closing(sqlite3.connect(sqlite_path)) as db:
                db.row_factory = sqlite3.Row
                for table in TABLES:
                    types = {
                        r["column_name"]: r["data_type"]
                        for r in await c.fetch(
                            "SELECT column_name, data_type FROM information_schema.columns"
                            " WHERE table_name = $1 AND table_schema = current_schema()",
                            table,
                        )
                    }
                    rows = db.execute(f"SELECT * FROM {table}").fetchall()
                    counts[table] = len(rows)
                    if not rows:
                        continue
                    columns = [k for k in rows[0].keys() if k in types]  # noqa: SIM118
                    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
                    await c.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                        [[_convert(row[k], types[k]) for k in columns] for row in rows],
                    )
            for table in SERIAL:
                await c.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                )
            for table in TABLES:
                copied = await c.fetchval(f"SELECT COUNT(*) FROM {table}")
                if copied != counts[table]:
                    raise MigrationError(
                        f"{table}: {counts[table]} rows in SQLite but {copied} copied"
                    )
    finally:
        await target.close()
    return Copied(counts)
