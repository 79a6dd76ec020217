"""Rows to domain objects: asyncpg already returns datetimes and ints, so only the
JSON columns and enums are converted."""

from __future__ import annotations

import json
from typing import Any

from bot.domain import (
    Approval,
    Mode,
    NotifyState,
    QuotaLimits,
    QuotaUnit,
    Task,
    TaskState,
)
from bot.modlog import LogEntry, LogKind, LogState, StoredLogEntry
from bot.providers.health import Health
from bot.store.sqlite.rows import options_from, options_json, rules_from

__all__ = [
    "health_from",
    "limits_from",
    "log_entry_from",
    "options_from",
    "options_json",
    "rules_from",
    "task_from",
]

Row = Any  # asyncpg.Record: `row["column"]`


def task_from(row: Row) -> Task:
    approval = row["approval"]
    return Task(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        provider=row["provider"],
        mode=Mode(row["mode"]),
        prompt=row["prompt"],
        options=options_from(row["options_json"]),
        state=TaskState(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        image_url=row["image_url"],
        provider_task_id=row["provider_task_id"],
        progress=row["progress"],
        result_url=row["result_url"],
        thumbnail_url=row["thumbnail_url"],
        failure_code=row["failure_code"],
        failure_reason=row["failure_reason"],
        cost_videos=row["cost_videos"],
        cost_seconds=row["cost_seconds"],
        completed_at=row["completed_at"],
        next_check_at=row["next_check_at"],
        notify_state=NotifyState(row["notify_state"]),
        result_message_id=row["result_message_id"],
        callback_token=row["callback_token"],
        upload_limit=row["upload_limit"],
        remix_of_task_id=row["remix_of_task_id"],
        checked_at=row["checked_at"],
        approval=None if approval is None else Approval(approval),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        retried_from=row["retried_from"],
        resubmitted_at=row["resubmitted_at"],
        card_message_id=row["card_message_id"],
    )


def limits_from(row: Row | None) -> QuotaLimits:
    """A guild's own limits from its `guild_settings` row (none: all defaults)."""
    if row is None:
        return QuotaLimits()
    unit = row["quota_unit"]
    return QuotaLimits(
        daily=row["daily_limit"],
        monthly=row["monthly_limit"],
        user_daily=row["user_daily_limit"],
        unit=None if unit is None else QuotaUnit(unit),
    )


def log_entry_from(row: Row) -> StoredLogEntry:
    detail = json.loads(row["detail_json"])
    return StoredLogEntry(
        id=row["id"],
        entry=LogEntry(
            guild_id=row["guild_id"],
            kind=LogKind(row["kind"]),
            task_id=row["task_id"],
            actor_id=row["actor_id"],
            member_id=row["member_id"],
            detail={str(k): str(v) for k, v in detail.items()},
        ),
        channel_id=row["channel_id"],
        state=LogState(row["state"]),
        created_at=row["created_at"],
        message_id=row["message_id"],
    )


def health_from(provider: str, row: Row | None) -> Health:
    if row is None:
        return Health(provider)
    return Health(
        provider,
        failures_in_row=row["failures_in_row"],
        cooldown_until=row["cooldown_until"],
        last_reason=row["last_reason"],
        probing_until=row["probing_until"],
    )
