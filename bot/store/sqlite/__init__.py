"""The SQLite store: one aiosqlite connection per process, WAL, numbered migrations.

The store is assembled from its parts, each a class over the shared connection:

    connection.py  opening, migrations, the lock and the transaction helper
    rows.py        rows to domain objects
    tasks.py       a task's life (one transaction per state change) and task queries
    quota.py       the quota ledger: usage counts and entries
    guilds.py      guild settings
    governance.py  governance settings, decisions on held tasks, the moderation log
    health.py      provider health, failover statistics, moving a task to another provider

The migrations themselves are `bot/store/migrations/NNNN_name.sql`.
"""

from __future__ import annotations

from bot.store.base import Store
from bot.store.sqlite.connection import Clock, load_migrations
from bot.store.sqlite.governance import SqliteGovernance
from bot.store.sqlite.guilds import SqliteGuilds
from bot.store.sqlite.health import SqliteHealth
from bot.store.sqlite.quota import SqliteQuota
from bot.store.sqlite.tasks import SqliteTasks

__all__ = ["Clock", "SqliteStore", "load_migrations"]


class SqliteStore(SqliteTasks, SqliteQuota, SqliteGuilds, SqliteGovernance, SqliteHealth, Store):
    """`Store` on SQLite; `SqliteStore(None)` keeps the database in memory."""
