"""The SQLite store: one aiosqlite connection per process, WAL, numbered migrations.

aiosqlite runs the connection on one thread, but coroutines share it: two coroutines
that each run BEGIN ... COMMIT would interleave their statements inside one
transaction. So every operation holds `self._lock` from its first statement to its
commit, and each quota reservation is one `BEGIN IMMEDIATE` transaction in which no
other coroutine's statement can run between the usage check and the insert.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from bot.domain import (
    Aspect,
    EffectiveLimits,
    GenerationOptions,
    GuildSettings,
    LedgerKind,
    Mode,
    NewTask,
    NotifyState,
    Quality,
    QuotaLimits,
    QuotaStatus,
    QuotaUnit,
    Task,
    TaskState,
    TaskUpdate,
    can_transition,
    cost_of,
    day_key,
    month_key,
    new_task_id,
    next_day_start,
    next_month_start,
    utc_now,
)
from bot.errors import (
    GenerationDisabledError,
    IllegalTransitionError,
    QuotaExceededError,
)
from bot.store.base import Page, Store

Clock = Callable[[], datetime]


def load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every `NNNN_name.sql`, in order."""
    found = []
    for entry in resources.files("bot.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append((int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found)


async def _first(
    db: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()
) -> sqlite3.Row | None:
    """One row in one round trip to the connection's thread (each trip costs ~0.1 ms)."""
    rows = await db.execute_fetchall(sql, params)
    return next(iter(rows), None)


async def _all(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return list(await db.execute_fetchall(sql, params))


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _options_json(options: GenerationOptions) -> str:
    return json.dumps(
        {
            "aspect": options.aspect.value,
            "duration_seconds": options.duration_seconds,
            "quality": options.quality.value,
        }
    )


def _options(text: str) -> GenerationOptions:
    raw = json.loads(text)
    return GenerationOptions(
        aspect=Aspect(raw["aspect"]),
        duration_seconds=int(raw["duration_seconds"]),
        quality=Quality(raw["quality"]),
    )


def _task(row: sqlite3.Row) -> Task:
    created_at = _dt(row["created_at"])
    updated_at = _dt(row["updated_at"])
    assert created_at is not None and updated_at is not None
    return Task(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        provider=row["provider"],
        mode=Mode(row["mode"]),
        prompt=row["prompt"],
        options=_options(row["options_json"]),
        state=TaskState(row["state"]),
        created_at=created_at,
        updated_at=updated_at,
        image_url=row["image_url"],
        interaction_id=row["interaction_id"],
        interaction_token=row["interaction_token"],
        provider_task_id=row["provider_task_id"],
        progress=row["progress"],
        result_url=row["result_url"],
        thumbnail_url=row["thumbnail_url"],
        failure_code=row["failure_code"],
        failure_reason=row["failure_reason"],
        cost_videos=row["cost_videos"],
        cost_seconds=row["cost_seconds"],
        completed_at=_dt(row["completed_at"]),
        next_check_at=_dt(row["next_check_at"]),
        notify_state=NotifyState(row["notify_state"]),
        result_message_id=row["result_message_id"],
        callback_token=row["callback_token"],
        upload_limit=row["upload_limit"],
    )


def _limits(row: sqlite3.Row | None) -> QuotaLimits:
    if row is None:
        return QuotaLimits()
    unit = row["quota_unit"]
    return QuotaLimits(
        daily=row["daily_limit"],
        monthly=row["monthly_limit"],
        user_daily=row["user_daily_limit"],
        unit=None if unit is None else QuotaUnit(unit),
    )


class SqliteStore(Store):
    def __init__(self, path: Path | None, *, clock: Clock = utc_now) -> None:
        """`path=None` keeps the database in memory (tests, `check` dry runs)."""
        self._path = path
        self._clock = clock
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def description(self) -> str:
        return f"sqlite:{self._path}" if self._path else "sqlite (in memory)"

    # Connection and migrations

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
            applied = {row[0] for row in await _all(db, "SELECT version FROM schema_migrations")}
            for version, name, sql in load_migrations():
                if version in applied or (target_version is not None and version > target_version):
                    continue
                # One script per migration, inside its own transaction, with its record:
                # a crash half-way leaves the database at the previous version.
                record = (
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES "
                    f"({version}, '{name}', '{_ts(self._clock())}');"
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
            return await _first(self._conn, sql, params)

    async def schema_version(self) -> int:
        row = await self._one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    # Guild settings

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._lock:
            db = self._conn
            row = await _first(db, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
            channels = frozenset(
                r[0]
                for r in await _all(
                    db, "SELECT channel_id FROM allowed_channels WHERE guild_id = ?", (guild_id,)
                )
            )
        defaults = None
        provider = None
        if row is not None:
            provider = row["default_provider"]
            if row["default_aspect"] is not None:
                defaults = GenerationOptions(
                    aspect=Aspect(row["default_aspect"]),
                    duration_seconds=row["default_duration"],
                    quality=Quality(row["default_quality"]),
                )
        return GuildSettings(
            guild_id=guild_id,
            limits=_limits(row),
            allowed_channel_ids=channels,
            default_options=defaults,
            default_provider=provider,
        )

    async def _ensure_guild(self, db: aiosqlite.Connection, guild_id: int) -> None:
        await db.execute(
            "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?)"
            " ON CONFLICT (guild_id) DO NOTHING",
            (guild_id, _ts(self._clock())),
        )

    async def update_quota_limits(
        self, guild_id: int, changes: QuotaLimits
    ) -> tuple[QuotaLimits, QuotaLimits]:
        async with self._transaction() as db:
            await self._ensure_guild(db, guild_id)
            before = _limits(
                await _first(db, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
            )
            after = QuotaLimits(
                daily=before.daily if changes.daily is None else changes.daily,
                monthly=before.monthly if changes.monthly is None else changes.monthly,
                user_daily=before.user_daily if changes.user_daily is None else changes.user_daily,
                unit=before.unit if changes.unit is None else changes.unit,
            )
            await db.execute(
                "UPDATE guild_settings SET daily_limit = ?, monthly_limit = ?,"
                " user_daily_limit = ?, quota_unit = ?, updated_at = ? WHERE guild_id = ?",
                (
                    after.daily,
                    after.monthly,
                    after.user_daily,
                    None if after.unit is None else after.unit.value,
                    _ts(self._clock()),
                    guild_id,
                ),
            )
        return before, after

    async def add_allowed_channel(self, guild_id: int, channel_id: int, actor_id: int) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO allowed_channels (guild_id, channel_id, added_by, added_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, channel_id, actor_id, _ts(self._clock())),
            )
            return cursor.rowcount > 0

    async def remove_allowed_channel(self, guild_id: int, channel_id: int) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM allowed_channels WHERE guild_id = ? AND channel_id = ?",
                (guild_id, channel_id),
            )
            return cursor.rowcount > 0

    async def set_default_options(self, guild_id: int, options: GenerationOptions | None) -> None:
        async with self._transaction() as db:
            await self._ensure_guild(db, guild_id)
            await db.execute(
                "UPDATE guild_settings SET default_aspect = ?, default_duration = ?,"
                " default_quality = ?, updated_at = ? WHERE guild_id = ?",
                (
                    None if options is None else options.aspect.value,
                    None if options is None else options.duration_seconds,
                    None if options is None else options.quality.value,
                    _ts(self._clock()),
                    guild_id,
                ),
            )

    # Quota

    async def _limits_and_usage(
        self,
        db: aiosqlite.Connection,
        guild_id: int,
        user_id: int,
        defaults: EffectiveLimits,
        now: datetime,
    ) -> tuple[EffectiveLimits, int, int, int]:
        """The guild's limits and (guild today, guild this month, user today) usage in the
        limits' unit, in one round trip to the connection's thread.

        A moderator's reset of one member lowers that member's count only: the server
        really did spend those videos with its provider, so its own totals keep them.
        """
        day, month = day_key(now), month_key(now)
        row = await _first(
            db,
            "SELECT g.daily_limit, g.monthly_limit, g.user_daily_limit, g.quota_unit,"
            " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
            "   WHERE guild_id = :g AND day = :d AND kind != 'reset'),"
            " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
            "   WHERE guild_id = :g AND day = :d AND kind != 'reset'),"
            " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
            "   WHERE guild_id = :g AND month = :m AND kind != 'reset'),"
            " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
            "   WHERE guild_id = :g AND month = :m AND kind != 'reset'),"
            " (SELECT COALESCE(SUM(videos), 0) FROM quota_ledger"
            "   WHERE guild_id = :g AND user_id = :u AND day = :d),"
            " (SELECT COALESCE(SUM(seconds), 0) FROM quota_ledger"
            "   WHERE guild_id = :g AND user_id = :u AND day = :d)"
            " FROM (SELECT 1) LEFT JOIN guild_settings g ON g.guild_id = :g",
            {"g": guild_id, "u": user_id, "d": day, "m": month},  # type: ignore[arg-type]
        )
        assert row is not None
        unit = row[3]
        limits = defaults.resolve(
            QuotaLimits(
                daily=row[0],
                monthly=row[1],
                user_daily=row[2],
                unit=None if unit is None else QuotaUnit(unit),
            )
        )
        videos = limits.unit is QuotaUnit.VIDEOS
        day_used = row[4] if videos else row[5]
        month_used = row[6] if videos else row[7]
        user_used = row[8] if videos else row[9]
        return limits, max(0, day_used), max(0, month_used), max(0, user_used)

    async def quota_status(
        self, guild_id: int, user_id: int, defaults: EffectiveLimits
    ) -> QuotaStatus:
        now = self._clock()
        async with self._lock:
            limits, day, month, user = await self._limits_and_usage(
                self._conn, guild_id, user_id, defaults, now
            )
        return QuotaStatus(
            limits=limits,
            guild_used_today=day,
            guild_used_month=month,
            user_used_today=user,
            day_resets_at=next_day_start(now),
            month_resets_at=next_month_start(now),
        )

    async def reserve(self, new: NewTask, defaults: EffectiveLimits) -> Task:
        now = self._clock()
        async with self._transaction() as db:
            limits, day, month, user = await self._limits_and_usage(
                db, new.guild_id, new.user_id, defaults, now
            )
            if not limits.generation_enabled:
                raise GenerationDisabledError()
            cost = cost_of(new.options, limits.unit)
            unit = limits.unit.value
            tomorrow, next_month = next_day_start(now), next_month_start(now)
            if limits.user_daily is not None and user + cost > limits.user_daily:
                raise QuotaExceededError(
                    mine=True,
                    limit=limits.user_daily,
                    unit=unit,
                    period="today",
                    resets_at=tomorrow,
                )
            if day + cost > limits.daily:
                raise QuotaExceededError(
                    mine=False, limit=limits.daily, unit=unit, period="today", resets_at=tomorrow
                )
            if month + cost > limits.monthly:
                raise QuotaExceededError(
                    mine=False,
                    limit=limits.monthly,
                    unit=unit,
                    period="this month",
                    resets_at=next_month,
                )
            row = await self._insert_task(db, new, now)
            task_id = row["id"]
            await db.execute(
                "INSERT INTO quota_ledger (entry_key, guild_id, user_id, task_id, kind, videos,"
                " seconds, day, month, created_at) VALUES (?, ?, ?, ?, 'reserve', 1, ?, ?, ?, ?)",
                (
                    f"reserve:{task_id}",
                    new.guild_id,
                    new.user_id,
                    task_id,
                    new.options.duration_seconds,
                    day_key(now),
                    month_key(now),
                    _ts(now),
                ),
            )
        return _task(row)

    async def _insert_task(
        self, db: aiosqlite.Connection, new: NewTask, now: datetime
    ) -> sqlite3.Row:
        for _ in range(10):
            task_id = new_task_id()
            try:
                row = await _first(
                    db,
                    "INSERT INTO tasks (id, guild_id, channel_id, user_id, interaction_id,"
                    " interaction_token, provider, mode, options_json, prompt, image_url, state,"
                    " cost_videos, cost_seconds, created_at, updated_at, callback_token,"
                    " upload_limit)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 1, ?, ?, ?, ?, ?)"
                    " RETURNING *",
                    (
                        task_id,
                        new.guild_id,
                        new.channel_id,
                        new.user_id,
                        new.interaction_id,
                        new.interaction_token,
                        new.provider,
                        new.mode.value,
                        _options_json(new.options),
                        new.prompt,
                        new.image_url,
                        new.options.duration_seconds,
                        _ts(now),
                        _ts(now),
                        secrets.token_urlsafe(24),
                        new.upload_limit,
                    ),
                )
            except sqlite3.IntegrityError:
                continue  # id collision: draw again
            assert row is not None
            return row
        raise RuntimeError("could not draw a free task id")

    async def _settle(self, task_id: str, kind: LedgerKind, note: str | None) -> bool:
        """Write the charge or refund for a task's reservation, at most one of them, once."""
        now = self._clock()
        async with self._transaction() as db:
            entries = {
                row["kind"]: row
                for row in await _all(
                    db,
                    "SELECT * FROM quota_ledger WHERE task_id = ? AND kind IN"
                    " ('reserve', 'charge', 'refund')",
                    (task_id,),
                )
            }
            reserve = entries.get(LedgerKind.RESERVE.value)
            if reserve is None or "charge" in entries or "refund" in entries:
                return False
            sign = -1 if kind is LedgerKind.REFUND else 0
            await db.execute(
                "INSERT INTO quota_ledger (entry_key, guild_id, user_id, task_id, kind, videos,"
                " seconds, day, month, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f"{kind.value}:{task_id}",
                    reserve["guild_id"],
                    reserve["user_id"],
                    task_id,
                    kind.value,
                    sign * reserve["videos"],
                    sign * reserve["seconds"],
                    reserve["day"],
                    reserve["month"],
                    note,
                    _ts(now),
                ),
            )
            return True

    async def charge(self, task_id: str) -> bool:
        return await self._settle(task_id, LedgerKind.CHARGE, None)

    async def refund(self, task_id: str, reason: str) -> bool:
        return await self._settle(task_id, LedgerKind.REFUND, reason)

    async def reset_user_usage(self, guild_id: int, user_id: int, actor_id: int) -> tuple[int, int]:
        now = self._clock()
        day = day_key(now)
        async with self._transaction() as db:
            # Only settled usage is cleared. A reservation still in flight is left alone: if
            # it were cleared now, its later refund would credit the member a second time.
            row = await _first(
                db,
                "SELECT COALESCE(SUM(l.videos), 0), COALESCE(SUM(l.seconds), 0),"
                " (SELECT COUNT(*) FROM quota_ledger"
                "   WHERE guild_id = :g AND user_id = :u AND day = :d)"
                " FROM quota_ledger l WHERE l.guild_id = :g AND l.user_id = :u AND l.day = :d"
                " AND NOT (l.kind = 'reserve' AND NOT EXISTS (SELECT 1 FROM quota_ledger s"
                "   WHERE s.entry_key IN ('charge:' || l.task_id, 'refund:' || l.task_id)))",
                {"g": guild_id, "u": user_id, "d": day},  # type: ignore[arg-type]
            )
            assert row is not None
            videos, seconds, entries = max(0, row[0]), max(0, row[1]), row[2]
            if videos == 0 and seconds == 0:
                return 0, 0
            await db.execute(
                "INSERT INTO quota_ledger (entry_key, guild_id, user_id, kind, videos, seconds,"
                " day, month, actor_id, note, created_at)"
                " VALUES (?, ?, ?, 'reset', ?, ?, ?, ?, ?, 'moderator reset', ?)",
                (
                    f"reset:{guild_id}:{user_id}:{day}:{entries}",
                    guild_id,
                    user_id,
                    -videos,
                    -seconds,
                    day,
                    month_key(now),
                    actor_id,
                    _ts(now),
                ),
            )
        return int(videos), int(seconds)

    # Tasks

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return None if row is None else _task(row)

    async def update_task(self, task_id: str, update: TaskUpdate) -> Task:
        now = self._clock()
        async with self._transaction() as db:
            row = await _first(db, "SELECT * FROM tasks WHERE id = ?", (task_id,))
            if row is None:
                raise KeyError(task_id)
            current = TaskState(row["state"])
            if not can_transition(current, update.state):
                raise IllegalTransitionError(
                    f"task {task_id}: {current.value} -> {update.state.value} is not allowed"
                )
            terminal = update.state.is_terminal
            await db.execute(
                "UPDATE tasks SET state = ?,"
                " provider_task_id = COALESCE(?, provider_task_id),"
                " progress = COALESCE(?, progress),"
                " result_url = COALESCE(?, result_url),"
                " thumbnail_url = COALESCE(?, thumbnail_url),"
                " failure_code = COALESCE(?, failure_code),"
                " failure_reason = COALESCE(?, failure_reason),"
                " next_check_at = ?,"
                " completed_at = CASE WHEN ? THEN ? ELSE completed_at END,"
                " updated_at = ? WHERE id = ?",
                (
                    update.state.value,
                    update.provider_task_id,
                    100 if update.state is TaskState.SUCCEEDED else update.progress,
                    update.result_url,
                    update.thumbnail_url,
                    update.failure_code,
                    update.failure_reason,
                    None if terminal else _ts(update.next_check_at),
                    terminal,
                    _ts(now),
                    _ts(now),
                    task_id,
                ),
            )
            updated = await _first(db, "SELECT * FROM tasks WHERE id = ?", (task_id,))
        assert updated is not None
        return _task(updated)

    async def _page(self, where: str, params: tuple[Any, ...], page: int, page_size: int) -> Page:
        page = max(1, page)
        async with self._lock:
            db = self._conn
            count_row = await _first(db, f"SELECT COUNT(*) FROM tasks WHERE {where}", params)
            rows = await _all(
                db,
                f"SELECT * FROM tasks WHERE {where} ORDER BY created_at DESC, id DESC"
                " LIMIT ? OFFSET ?",
                (*params, page_size, (page - 1) * page_size),
            )
        total = int(count_row[0]) if count_row else 0
        return Page([_task(r) for r in rows], total=total, page=page, page_size=page_size)

    async def user_tasks(
        self, guild_id: int, user_id: int, *, page: int = 1, page_size: int = 10
    ) -> Page:
        return await self._page(
            "guild_id = ? AND user_id = ?", (guild_id, user_id), page, page_size
        )

    async def guild_tasks(self, guild_id: int, *, page: int = 1, page_size: int = 10) -> Page:
        return await self._page("guild_id = ?", (guild_id,), page, page_size)

    async def claim_due_tasks(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        lease_until = _ts(now + timedelta(seconds=lease_seconds))
        async with self._transaction() as db:
            # PostgreSQL: the inner SELECT gets FOR UPDATE SKIP LOCKED; SQLite's
            # BEGIN IMMEDIATE already makes the claim exclusive.
            rows = await _all(
                db,
                "UPDATE tasks SET next_check_at = ? WHERE id IN ("
                " SELECT id FROM tasks WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
                " ORDER BY next_check_at LIMIT ?) RETURNING *",
                (lease_until, _ts(now), limit),
            )
        return [_task(r) for r in rows]

    async def set_next_check(self, task_id: str, at: datetime) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tasks SET next_check_at = ? WHERE id = ?"
                " AND state IN ('queued', 'submitted', 'running')",
                (_ts(at), task_id),
            )

    async def task_by_callback_token(self, token: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE callback_token = ?", (token,))
        return None if row is None else _task(row)

    async def task_by_provider_id(self, provider: str, provider_task_id: str) -> Task | None:
        row = await self._one(
            "SELECT * FROM tasks WHERE provider = ? AND provider_task_id = ?",
            (provider, provider_task_id),
        )
        return None if row is None else _task(row)

    async def unfinished_tasks(self, provider: str | None = None) -> list[Task]:
        sql = "SELECT * FROM tasks WHERE state IN ('queued', 'submitted', 'running')"
        params: tuple[Any, ...] = ()
        if provider is not None:
            sql += " AND provider = ?"
            params = (provider,)
        async with self._lock:
            rows = await _all(self._conn, sql + " ORDER BY created_at", params)
        return [_task(r) for r in rows]

    async def undelivered_tasks(self) -> list[Task]:
        async with self._lock:
            rows = await _all(
                self._conn,
                "SELECT * FROM tasks WHERE state IN ('succeeded', 'failed', 'expired')"
                " AND notify_state IN ('pending', 'posting') ORDER BY completed_at",
            )
        return [_task(r) for r in rows]

    async def task_counts(self) -> dict[str, int]:
        async with self._lock:
            rows = await _all(self._conn, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {row[0]: int(row[1]) for row in rows}

    async def set_notify_state(
        self, task_id: str, state: NotifyState, message_id: int | None = None
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tasks SET notify_state = ?, result_message_id = COALESCE(?,"
                " result_message_id), updated_at = ? WHERE id = ?",
                (state.value, message_id, _ts(self._clock()), task_id),
            )

    async def set_result_url(self, task_id: str, url: str | None) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tasks SET result_url = ?, updated_at = ? WHERE id = ?",
                (url, _ts(self._clock()), task_id),
            )

    async def count_active_provider_tasks(
        self, provider: str, just_submitted: Collection[str] = ()
    ) -> int:
        fresh = tuple(set(just_submitted))
        marks = ", ".join("?" * len(fresh)) or "NULL"
        row = await self._one(
            "SELECT"
            " (SELECT COUNT(*) FROM tasks WHERE provider = ? AND provider_task_id IS NOT NULL"
            "  AND state IN ('queued', 'submitted', 'running')),"
            " (SELECT COUNT(DISTINCT provider_task_id) FROM tasks WHERE provider = ?"
            f"  AND provider_task_id IN ({marks}))",
            (provider, provider, *fresh),
        )
        unfinished, recorded = (0, 0) if row is None else (int(row[0]), int(row[1]))
        return unfinished + len(fresh) - recorded
