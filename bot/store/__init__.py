"""Persistence: `open_store` picks the implementation for a `DATABASE_URL`."""

from __future__ import annotations

from pathlib import Path

from bot.domain import utc_now
from bot.store.base import Page, Store
from bot.store.sqlite import Clock, SqliteStore

__all__ = ["Page", "SqliteStore", "Store", "create_store"]


def create_store(database_url: str, *, clock: Clock = utc_now) -> Store:
    """The store for a URL (not yet opened). Settings have already validated the URL:
    `sqlite:///path` (the default, nothing to install) or `postgresql://...` (several
    bot processes on one database)."""
    if database_url.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore  # only a PostgreSQL install needs it

        return PostgresStore(database_url, clock=clock)
    if database_url == "sqlite://:memory:":
        return SqliteStore(None, clock=clock)
    if database_url.startswith("sqlite:///"):
        return SqliteStore(Path(database_url.removeprefix("sqlite:///")), clock=clock)
    raise ValueError(f"unsupported database URL scheme: {database_url.split(':', 1)[0]}")
