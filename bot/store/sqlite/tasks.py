"""Tasks: each change in a task's life is one method and one transaction, and the
queries the service, the tracker and the listener ask.

    reserve         quota decided and held, task created (queued, perhaps held for
                    approval: `governance.py` decides it)
    mark_submitted  the provider took it
    update_task     progress while it runs
    finish          final state with its charge or refund
    record_delivery how far posting the outcome got, and the link it shows
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from bot.domain import (
    EffectiveLimits,
    GenerationTime,
    NewTask,
    NotifyState,
    Reservation,
    Settle,
    Task,
    TaskState,
    TaskUpdate,
    can_transition,
    check_quota,
    cost_of,
    kind_of,
    new_task_id,
)
from bot.errors import IllegalTransitionError
from bot.store.base import Page
from bot.store.sqlite.connection import SqliteBase, dt, every, first, ts
from bot.store.sqlite.quota import read_quota, write_reservation, write_settlement
from bot.store.sqlite.rows import options_json, task_from

UNFINISHED = "('queued', 'submitted', 'running')"
# Generation times kept per provider and kind (`bot.polling.WINDOW` reads as many).
GENERATION_WINDOW = 500


async def insert_task(db: aiosqlite.Connection, new: NewTask, now: datetime) -> sqlite3.Row:
    """A new queued task under a fresh id (drawn again on the rare collision)."""
    for _ in range(10):
        task_id = new_task_id()
        try:
            row = await first(
                db,
                "INSERT INTO tasks (id, guild_id, channel_id, user_id, provider, mode,"
                " options_json, prompt, image_url, state, cost_videos, cost_seconds,"
                " created_at, updated_at, callback_token, upload_limit)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 1, ?, ?, ?, ?, ?) RETURNING *",
                (
                    task_id,
                    new.guild_id,
                    new.channel_id,
                    new.user_id,
                    new.provider,
                    new.mode.value,
                    options_json(new.options),
                    new.prompt,
                    new.image_url,
                    new.options.duration_seconds,
                    ts(now),
                    ts(now),
                    secrets.token_urlsafe(24),
                    new.upload_limit,
                ),
            )
        except sqlite3.IntegrityError:
            continue  # id collision: draw again
        assert row is not None
        if new.remix_of_task_id is not None:
            # Written only for remixes, so a database opened at an older schema (the
            # upgrade tests) still takes ordinary tasks; the column is migration 5's.
            row = await first(
                db,
                "UPDATE tasks SET remix_of_task_id = ? WHERE id = ? RETURNING *",
                (new.remix_of_task_id, task_id),
            )
            assert row is not None
        if new.hold_until is not None:
            # Held for a moderator: due for expiry at `hold_until` (migration 7's columns,
            # written only for held tasks like the remix source above).
            row = await first(
                db,
                "UPDATE tasks SET approval = 'pending', next_check_at = ? WHERE id = ? RETURNING *",
                (ts(new.hold_until), task_id),
            )
            assert row is not None
        return row
    raise RuntimeError("could not draw a free task id")


async def write_update(
    db: aiosqlite.Connection,
    task_id: str,
    update: TaskUpdate,
    now: datetime,
    *,
    notify: NotifyState | None = None,
    provider: str | None = None,
) -> sqlite3.Row:
    """Apply `update` (its None fields keep what is stored, as does `provider` None); the
    caller checked that the move is allowed. A final state ends the checks and stamps
    `completed_at`."""
    terminal = update.state.is_terminal
    row = await first(
        db,
        "UPDATE tasks SET state = ?,"
        " provider = COALESCE(?, provider),"
        " provider_task_id = COALESCE(?, provider_task_id),"
        " progress = COALESCE(?, progress),"
        " result_url = COALESCE(?, result_url),"
        " thumbnail_url = COALESCE(?, thumbnail_url),"
        " failure_code = COALESCE(?, failure_code),"
        " failure_reason = COALESCE(?, failure_reason),"
        " next_check_at = ?,"
        " completed_at = CASE WHEN ? THEN ? ELSE completed_at END,"
        " notify_state = COALESCE(?, notify_state),"
        " updated_at = ? WHERE id = ? RETURNING *",
        (
            update.state.value,
            provider,
            update.provider_task_id,
            100 if update.state is TaskState.SUCCEEDED else update.progress,
            update.result_url,
            update.thumbnail_url,
            update.failure_code,
            update.failure_reason,
            None if terminal else ts(update.next_check_at),
            terminal,
            ts(now),
            None if notify is None else notify.value,
            ts(now),
            task_id,
        ),
    )
    assert row is not None
    return row


async def write_generation_time(
    db: aiosqlite.Connection, task: Task, took: GenerationTime, now: datetime
) -> None:
    """Add one generation time to its provider's and kind's history, and drop what falls
    out of the window (part of the finishing transaction)."""
    kind = kind_of(task.mode, task.options)
    cursor = await db.execute(
        "INSERT INTO generation_times (provider, kind, low_seconds, high_seconds, finished_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (task.provider, kind, took.low, took.high, ts(now)),
    )
    newest = cursor.lastrowid
    if newest is not None and newest % 16 == 0:  # prune now and then, not on every insert
        await db.execute(
            "DELETE FROM generation_times WHERE provider = ? AND kind = ? AND id <= ("
            " SELECT id FROM generation_times WHERE provider = ? AND kind = ?"
            " ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (task.provider, kind, task.provider, kind, GENERATION_WINDOW),
        )


def next_after(due: str, lease_seconds: float, soonest: datetime) -> datetime:
    """A claimed task's next check: one lease after it was due, but not before `soonest`."""
    was_due = dt(due)
    assert was_due is not None
    return max(was_due + timedelta(seconds=lease_seconds), soonest)


async def current_state(db: aiosqlite.Connection, task_id: str) -> TaskState:
    row = await first(db, "SELECT state FROM tasks WHERE id = ?", (task_id,))
    if row is None:
        raise KeyError(task_id)
    return TaskState(row["state"])


class SqliteTasks(SqliteBase):
    # State changes, one transaction each

    async def reserve(self, new: NewTask, defaults: EffectiveLimits) -> Reservation:
        now = self._clock()
        async with self._transaction() as db:
            status = await read_quota(db, new.guild_id, new.user_id, defaults, now, new.role_ids)
            cost = cost_of(new.options, status.limits.unit)
            check_quota(status, cost)  # raises: the transaction is rolled back, empty
            row = await insert_task(db, new, now)
            await write_reservation(db, row["id"], new, now)
        return Reservation(task_from(row), status.plus(cost))

    async def mark_submitted(
        self,
        task_id: str,
        provider_task_id: str,
        state: TaskState,
        progress: int | None,
        next_check_at: datetime,
        provider: str | None = None,
    ) -> Task:
        if state not in (TaskState.SUBMITTED, TaskState.RUNNING):
            raise ValueError(f"a task is submitted or running once sent, not {state.value}")
        update = TaskUpdate(
            state, provider_task_id=provider_task_id, progress=progress, next_check_at=next_check_at
        )
        now = self._clock()
        async with self._transaction() as db:
            current = await current_state(db, task_id)
            if not can_transition(current, update.state):
                raise IllegalTransitionError(
                    f"task {task_id}: {current.value} -> {update.state.value} is not allowed"
                )
            # `provider`: failover, another provider than the one reserved for took it.
            row = await write_update(db, task_id, update, now, provider=provider)
        return task_from(row)

    async def update_task(self, task_id: str, update: TaskUpdate) -> Task:
        if update.state.is_terminal:
            raise ValueError("a final state settles the quota too: use finish()")
        now = self._clock()
        async with self._transaction() as db:
            current = await current_state(db, task_id)
            if not can_transition(current, update.state):
                raise IllegalTransitionError(
                    f"task {task_id}: {current.value} -> {update.state.value} is not allowed"
                )
            row = await write_update(db, task_id, update, now)
        return task_from(row)

    async def finish(
        self, task_id: str, update: TaskUpdate, *, settle: Settle, delivered: bool = False
    ) -> Task | None:
        if not update.state.is_terminal:
            raise ValueError(f"finish() needs a final state, not {update.state.value}")
        now = self._clock()
        async with self._transaction() as db:
            if (await current_state(db, task_id)).is_terminal:
                return None  # already final, and settled with it: nothing changes
            row = await write_update(
                db, task_id, update, now, notify=NotifyState.POSTED if delivered else None
            )
            note = (row["failure_reason"] or "failed") if settle is Settle.REFUND else None
            await write_settlement(db, task_id, settle, note, now)
            task = task_from(row)
            if update.took is not None:
                await write_generation_time(db, task, update.took, now)
        return task

    async def record_delivery(
        self,
        task_id: str,
        state: NotifyState,
        message_id: int | None = None,
        result_url: str | None = None,
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tasks SET notify_state = ?,"
                " result_message_id = COALESCE(?, result_message_id),"
                " result_url = COALESCE(?, result_url), updated_at = ? WHERE id = ?",
                (state.value, message_id, result_url, ts(self._clock()), task_id),
            )

    async def forget_result_url(self, task_id: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tasks SET result_url = NULL, result_message_id = NULL, updated_at = ?"
                " WHERE id = ?",
                (ts(self._clock()), task_id),
            )

    async def set_next_check(self, task_id: str, at: datetime) -> None:
        async with self._transaction() as db:
            await db.execute(
                f"UPDATE tasks SET next_check_at = ? WHERE id = ? AND state IN {UNFINISHED}",
                (ts(at), task_id),
            )

    async def claim_due_tasks(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        async with self._transaction() as db:
            # PostgreSQL: the SELECT gets FOR UPDATE SKIP LOCKED; SQLite's BEGIN
            # IMMEDIATE already makes the claim exclusive. The rows are returned as they
            # were before the claim: `next_check_at` says when the check was due, and
            # `checked_at` when the previous one was made.
            rows = await every(
                db,
                "SELECT * FROM tasks WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
                " ORDER BY next_check_at LIMIT ?",
                (ts(now), limit),
            )
            if rows:
                # The next check counts from when this one was due, not from the claim, so
                # a tracker running a little late does not stretch every gap by its delay;
                # one far behind (a backlog) still waits at least half a lease.
                soonest = now + timedelta(seconds=lease_seconds / 2)
                await db.executemany(
                    "UPDATE tasks SET next_check_at = ?, checked_at = ? WHERE id = ?",
                    [
                        (
                            ts(next_after(r["next_check_at"], lease_seconds, soonest)),
                            ts(now),
                            r["id"],
                        )
                        for r in rows
                    ],
                )
        return [task_from(r) for r in rows]

    async def generation_times(
        self, provider: str, per_kind: int = GENERATION_WINDOW
    ) -> dict[str, list[GenerationTime]]:
        async with self._lock:
            rows = await every(
                self._conn,
                "SELECT kind, low_seconds, high_seconds FROM ("
                " SELECT kind, low_seconds, high_seconds, id, ROW_NUMBER() OVER"
                " (PARTITION BY kind ORDER BY id DESC) AS newest FROM generation_times"
                " WHERE provider = ?) WHERE newest <= ? ORDER BY kind, id",
                (provider, per_kind),
            )
        found: dict[str, list[GenerationTime]] = {}
        for row in rows:
            found.setdefault(row["kind"], []).append(
                GenerationTime(float(row["low_seconds"]), float(row["high_seconds"]))
            )
        return found

    # Queries

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return None if row is None else task_from(row)

    async def _page(self, where: str, params: tuple[Any, ...], page: int, page_size: int) -> Page:
        page = max(1, page)
        async with self._lock:
            db = self._conn
            count_row = await first(db, f"SELECT COUNT(*) FROM tasks WHERE {where}", params)
            rows = await every(
                db,
                f"SELECT * FROM tasks WHERE {where} ORDER BY created_at DESC, id DESC"
                " LIMIT ? OFFSET ?",
                (*params, page_size, (page - 1) * page_size),
            )
        total = int(count_row[0]) if count_row else 0
        return Page([task_from(r) for r in rows], total=total, page=page, page_size=page_size)

    async def user_tasks(
        self, guild_id: int, user_id: int, *, page: int = 1, page_size: int = 10
    ) -> Page:
        return await self._page(
            "guild_id = ? AND user_id = ?", (guild_id, user_id), page, page_size
        )

    async def guild_tasks(self, guild_id: int, *, page: int = 1, page_size: int = 10) -> Page:
        return await self._page("guild_id = ?", (guild_id,), page, page_size)

    async def task_by_callback_token(self, token: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE callback_token = ?", (token,))
        return None if row is None else task_from(row)

    async def task_by_provider_id(self, provider: str, provider_task_id: str) -> Task | None:
        row = await self._one(
            "SELECT * FROM tasks WHERE provider = ? AND provider_task_id = ?",
            (provider, provider_task_id),
        )
        return None if row is None else task_from(row)

    async def unfinished_tasks(self, provider: str | None = None) -> list[Task]:
        sql = f"SELECT * FROM tasks WHERE state IN {UNFINISHED}"
        params: tuple[Any, ...] = ()
        if provider is not None:
            sql += " AND provider = ?"
            params = (provider,)
        async with self._lock:
            rows = await every(self._conn, sql + " ORDER BY created_at", params)
        return [task_from(r) for r in rows]

    async def undelivered_tasks(self) -> list[Task]:
        async with self._lock:
            rows = await every(
                self._conn,
                "SELECT * FROM tasks WHERE state IN ('succeeded', 'failed', 'expired')"
                " AND notify_state IN ('pending', 'posting') ORDER BY completed_at",
            )
        return [task_from(r) for r in rows]

    async def task_counts(self) -> dict[str, int]:
        async with self._lock:
            rows = await every(self._conn, "SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {row[0]: int(row[1]) for row in rows}

    async def count_active_provider_tasks(
        self, provider: str, just_submitted: Collection[str] = ()
    ) -> int:
        fresh = tuple(set(just_submitted))
        marks = ", ".join("?" * len(fresh)) or "NULL"
        row = await self._one(
            "SELECT"
            f" (SELECT COUNT(*) FROM tasks WHERE provider = ? AND provider_task_id IS NOT NULL"
            f"  AND state IN {UNFINISHED}),"
            " (SELECT COUNT(DISTINCT provider_task_id) FROM tasks WHERE provider = ?"
            f"  AND provider_task_id IN ({marks}))",
            (provider, provider, *fresh),
        )
        unfinished, recorded = (0, 0) if row is None else (int(row[0]), int(row[1]))
        return unfinished + len(fresh) - recorded
