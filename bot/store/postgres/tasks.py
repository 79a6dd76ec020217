"""Tasks on PostgreSQL: each change in a task's life is one method and one transaction
(see `bot.store.sqlite.tasks`). A change that depends on the task's current state locks
its row first (`FOR UPDATE`), so two processes finishing one task settle it once."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

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
from bot.store.postgres.connection import PostgresBase
from bot.store.postgres.quota import lock_guild, read_quota, write_reservation, write_settlement
from bot.store.postgres.rows import options_json, task_from

UNFINISHED = "('queued', 'submitted', 'running')"
# Generation times kept per provider and kind (`bot.polling.WINDOW` reads as many).
GENERATION_WINDOW = 500


async def insert_task(c: Any, new: NewTask, now: datetime) -> Any:
    """A new queued task under a fresh id (drawn again on the rare collision), held for
    approval until `new.hold_until` when that is set."""
    held = new.hold_until is not None
    for _ in range(10):
        row = await c.fetchrow(
            "INSERT INTO tasks (id, guild_id, channel_id, user_id, provider, mode,"
            " options_json, prompt, image_url, state, cost_videos, cost_seconds,"
            " created_at, updated_at, callback_token, upload_limit, remix_of_task_id,"
            " approval, next_check_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 1, $10, $11, $11, $12,"
            " $13, $14, $15, $16) ON CONFLICT DO NOTHING RETURNING *",
            new_task_id(),
            new.guild_id,
            new.channel_id,
            new.user_id,
            new.provider,
            new.mode.value,
            options_json(new.options),
            new.prompt,
            new.image_url,
            new.options.duration_seconds,
            now,
            secrets.token_urlsafe(24),
            new.upload_limit,
            new.remix_of_task_id,
            "pending" if held else None,
            new.hold_until,
        )
        if row is not None:
            return row
    raise RuntimeError("could not draw a free task id")


async def write_update(
    c: Any,
    task_id: str,
    update: TaskUpdate,
    now: datetime,
    *,
    notify: NotifyState | None = None,
    provider: str | None = None,
) -> Any:
    """Apply `update` (None fields keep what is stored); the caller checked the move. A
    final state ends the checks and stamps `completed_at`."""
    terminal = update.state.is_terminal
    row = await c.fetchrow(
        "UPDATE tasks SET state = $1,"
        " provider = COALESCE($2, provider),"
        " provider_task_id = COALESCE($3, provider_task_id),"
        " progress = COALESCE($4, progress),"
        " result_url = COALESCE($5, result_url),"
        " thumbnail_url = COALESCE($6, thumbnail_url),"
        " failure_code = COALESCE($7, failure_code),"
        " failure_reason = COALESCE($8, failure_reason),"
        " next_check_at = $9,"
        " completed_at = CASE WHEN $10::boolean THEN $11::timestamptz ELSE completed_at END,"
        " notify_state = COALESCE($12, notify_state),"
        " updated_at = $11 WHERE id = $13 RETURNING *",
        update.state.value,
        provider,
        update.provider_task_id,
        100 if update.state is TaskState.SUCCEEDED else update.progress,
        update.result_url,
        update.thumbnail_url,
        update.failure_code,
        update.failure_reason,
        None if terminal else update.next_check_at,
        terminal,
        now,
        None if notify is None else notify.value,
        task_id,
    )
    assert row is not None
    return row


async def write_generation_time(c: Any, task: Task, took: GenerationTime, now: datetime) -> None:
    """Add one generation time to its provider's and kind's history, and drop what falls
    out of the window now and then (part of the finishing transaction)."""
    kind = kind_of(task.mode, task.options)
    newest = await c.fetchval(
        "INSERT INTO generation_times (provider, kind, low_seconds, high_seconds, finished_at)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        task.provider,
        kind,
        took.low,
        took.high,
        now,
    )
    if newest is not None and newest % 16 == 0:
        await c.execute(
            "DELETE FROM generation_times WHERE provider = $1 AND kind = $2 AND id <= ("
            " SELECT id FROM generation_times WHERE provider = $1 AND kind = $2"
            " ORDER BY id DESC LIMIT 1 OFFSET $3)",
            task.provider,
            kind,
            GENERATION_WINDOW,
        )


async def locked_state(c: Any, task_id: str) -> TaskState:
    """The task's state, its row locked until the transaction ends."""
    state = await c.fetchval("SELECT state FROM tasks WHERE id = $1 FOR UPDATE", task_id)
    if state is None:
        raise KeyError(task_id)
    return TaskState(state)


class PostgresTasks(PostgresBase):
    # State changes, one transaction each

    async def reserve(self, new: NewTask, defaults: EffectiveLimits) -> Reservation:
        now = self._clock()
        async with self._transaction() as c:
            await lock_guild(c, new.guild_id, now)  # concurrent reserves take turns
            status = await read_quota(c, new.guild_id, new.user_id, defaults, now, new.role_ids)
            cost = cost_of(new.options, status.limits.unit)
            check_quota(status, cost)  # raises: the transaction is rolled back, empty
            row = await insert_task(c, new, now)
            await write_reservation(c, row["id"], new, now)
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
        async with self._transaction() as c:
            current = await locked_state(c, task_id)
            if not can_transition(current, update.state):
                raise IllegalTransitionError(
                    f"task {task_id}: {current.value} -> {update.state.value} is not allowed"
                )
            row = await write_update(c, task_id, update, now, provider=provider)
        return task_from(row)

    async def update_task(self, task_id: str, update: TaskUpdate) -> Task:
        if update.state.is_terminal:
            raise ValueError("a final state settles the quota too: use finish()")
        now = self._clock()
        async with self._transaction() as c:
            current = await locked_state(c, task_id)
            if not can_transition(current, update.state):
                raise IllegalTransitionError(
                    f"task {task_id}: {current.value} -> {update.state.value} is not allowed"
                )
            row = await write_update(c, task_id, update, now)
        return task_from(row)

    async def finish(
        self, task_id: str, update: TaskUpdate, *, settle: Settle, delivered: bool = False
    ) -> Task | None:
        if not update.state.is_terminal:
            raise ValueError(f"finish() needs a final state, not {update.state.value}")
        now = self._clock()
        async with self._transaction() as c:
            if (await locked_state(c, task_id)).is_terminal:
                return None  # already final, and settled with it: nothing changes
            row = await write_update(
                c, task_id, update, now, notify=NotifyState.POSTED if delivered else None
            )
            note = (row["failure_reason"] or "failed") if settle is Settle.REFUND else None
            await write_settlement(c, task_id, settle, note, now)
            task = task_from(row)
            if update.took is not None:
                await write_generation_time(c, task, update.took, now)
        return task

    async def record_delivery(
        self,
        task_id: str,
        state: NotifyState,
        message_id: int | None = None,
        result_url: str | None = None,
    ) -> None:
        async with self._transaction() as c:
            await c.execute(
                "UPDATE tasks SET notify_state = $1,"
                " result_message_id = COALESCE($2, result_message_id),"
                " result_url = COALESCE($3, result_url), updated_at = $4 WHERE id = $5",
                state.value,
                message_id,
                result_url,
                self._clock(),
                task_id,
            )

    async def forget_result_url(self, task_id: str) -> None:
        async with self._transaction() as c:
            await c.execute(
                "UPDATE tasks SET result_url = NULL, result_message_id = NULL, updated_at = $1"
                " WHERE id = $2",
                self._clock(),
                task_id,
            )

    async def set_next_check(self, task_id: str, at: datetime) -> None:
        async with self._transaction() as c:
            await c.execute(
                f"UPDATE tasks SET next_check_at = $1 WHERE id = $2 AND state IN {UNFINISHED}",
                at,
                task_id,
            )

    async def claim_due_tasks(self, now: datetime, limit: int, lease_seconds: float) -> list[Task]:
        # The next check counts from when this one was due (at least half a lease after
        # now); rows another poller holds are skipped. `RETURNING due.*` gives each row
        # as it was before the claim.
        soonest = now + timedelta(seconds=lease_seconds / 2)
        async with self._transaction() as c:
            rows = await c.fetch(
                "WITH due AS ("
                " SELECT * FROM tasks WHERE next_check_at IS NOT NULL AND next_check_at <= $1"
                " ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " UPDATE tasks t SET next_check_at = GREATEST("
                "  due.next_check_at + make_interval(secs => $3::float8), $4::timestamptz),"
                " checked_at = $1"
                " FROM due WHERE t.id = due.id RETURNING due.*",
                now,
                limit,
                float(lease_seconds),
                soonest,
            )
        tasks = [task_from(r) for r in rows]
        tasks.sort(key=lambda t: (t.next_check_at or now, t.id))
        return tasks

    async def generation_times(
        self, provider: str, per_kind: int = GENERATION_WINDOW
    ) -> dict[str, list[GenerationTime]]:
        rows = await self._all(
            "SELECT kind, low_seconds, high_seconds FROM ("
            " SELECT kind, low_seconds, high_seconds, id, ROW_NUMBER() OVER"
            " (PARTITION BY kind ORDER BY id DESC) AS newest FROM generation_times"
            " WHERE provider = $1) AS recent WHERE newest <= $2 ORDER BY kind, id",
            provider,
            per_kind,
        )
        found: dict[str, list[GenerationTime]] = {}
        for row in rows:
            found.setdefault(row["kind"], []).append(
                GenerationTime(float(row["low_seconds"]), float(row["high_seconds"]))
            )
        return found

    # Queries

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE id = $1", task_id)
        return None if row is None else task_from(row)

    async def _page(self, where: str, params: tuple[Any, ...], page: int, page_size: int) -> Page:
        page = max(1, page)
        n = len(params)
        async with self._transaction() as c:
            total = await c.fetchval(f"SELECT COUNT(*) FROM tasks WHERE {where}", *params)
            rows = await c.fetch(
                f"SELECT * FROM tasks WHERE {where} ORDER BY created_at DESC, id DESC"
                f" LIMIT ${n + 1} OFFSET ${n + 2}",
                *params,
                page_size,
                (page - 1) * page_size,
            )
        return Page([task_from(r) for r in rows], total=int(total), page=page, page_size=page_size)

    async def user_tasks(
        self, guild_id: int, user_id: int, *, page: int = 1, page_size: int = 10
    ) -> Page:
        return await self._page(
            "guild_id = $1 AND user_id = $2", (guild_id, user_id), page, page_size
        )

    async def guild_tasks(self, guild_id: int, *, page: int = 1, page_size: int = 10) -> Page:
        return await self._page("guild_id = $1", (guild_id,), page, page_size)

    async def task_by_callback_token(self, token: str) -> Task | None:
        row = await self._one("SELECT * FROM tasks WHERE callback_token = $1", token)
        return None if row is None else task_from(row)

    async def task_by_provider_id(self, provider: str, provider_task_id: str) -> Task | None:
        row = await self._one(
            "SELECT * FROM tasks WHERE provider = $1 AND provider_task_id = $2 LIMIT 1",
            provider,
            provider_task_id,
        )
        return None if row is None else task_from(row)

    async def unfinished_tasks(self, provider: str | None = None) -> list[Task]:
        if provider is None:
            rows = await self._all(
                f"SELECT * FROM tasks WHERE state IN {UNFINISHED} ORDER BY created_at"
            )
        else:
            rows = await self._all(
                f"SELECT * FROM tasks WHERE state IN {UNFINISHED} AND provider = $1"
                " ORDER BY created_at",
                provider,
            )
        return [task_from(r) for r in rows]

    async def undelivered_tasks(self) -> list[Task]:
        rows = await self._all(
            "SELECT * FROM tasks WHERE state IN ('succeeded', 'failed', 'expired')"
            " AND notify_state IN ('pending', 'posting') ORDER BY completed_at"
        )
        return [task_from(r) for r in rows]

    async def task_counts(self) -> dict[str, int]:
        rows = await self._all("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {str(row[0]): int(row[1]) for row in rows}

    async def count_active_provider_tasks(
        self, provider: str, just_submitted: Collection[str] = ()
    ) -> int:
        fresh = sorted(set(just_submitted))
        row = await self._one(
            "SELECT"
            " (SELECT COUNT(*) FROM tasks WHERE provider = $1 AND provider_task_id IS NOT NULL"
            f"  AND state IN {UNFINISHED}),"
            " (SELECT COUNT(DISTINCT provider_task_id) FROM tasks WHERE provider = $1"
            "  AND provider_task_id = ANY($2::text[]))",
            provider,
            fresh,
        )
        unfinished, recorded = (0, 0) if row is None else (int(row[0]), int(row[1]))
        return unfinished + len(fresh) - recorded
