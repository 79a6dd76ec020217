"""The PostgreSQL store: an asyncpg pool shared by every process, numbered migrations.

Assembled from its parts as the SQLite store is, each a class over the shared pool:

    connection.py  the pool, migrations (under an advisory lock), transactions
    rows.py        rows to domain objects
    tasks.py       a task's life (one transaction per state change) and task queries
    quota.py       the quota ledger: usage counts and entries, the guild lock
    guilds.py      guild settings
    governance.py  governance settings, decisions on held tasks, the moderation log
    health.py      provider health, failover statistics, moving a task to another provider

The migrations are `bot/store/postgres/migrations/NNNN_name.sql`, numbered as SQLite's
so a schema version means the same schema in both stores.
"""

from __future__ import annotations

from bot.store.base import Store
from bot.store.postgres.connection import Clock, load_migrations, redact
from bot.store.postgres.governance import PostgresGovernance
from bot.store.postgres.guilds import PostgresGuilds
from bot.store.postgres.health import PostgresHealth
from bot.store.postgres.quota import PostgresQuota
from bot.store.postgres.tasks import PostgresTasks

__all__ = ["Clock", "PostgresStore", "load_migrations", "redact"]


class PostgresStore(
    PostgresTasks, PostgresQuota, PostgresGuilds, PostgresGovernance, PostgresHealth, Store
):
    """`Store` on PostgreSQL: `PostgresStore(dsn, schema=...)` keeps its tables in that
    schema (created when missing)."""
