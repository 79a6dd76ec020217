"""Rows to domain objects and back: the one place that knows the tables' column shapes."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bot.domain import (
    Approval,
    Aspect,
    GenerationOptions,
    GuildRules,
    Mode,
    NotifyState,
    Quality,
    QuotaLimits,
    QuotaUnit,
    RoleAllowance,
    Task,
    TaskState,
)
from bot.modlog import LogEntry, LogKind, LogState, StoredLogEntry
from bot.store.sqlite.connection import dt


def options_json(options: GenerationOptions) -> str:
    return json.dumps(
        {
            "aspect": options.aspect.value,
            "duration_seconds": options.duration_seconds,
            "quality": options.quality.value,
        }
    )


def options_from(text: str) -> GenerationOptions:
    raw = json.loads(text)
    return GenerationOptions(
        aspect=Aspect(raw["aspect"]),
        duration_seconds=int(raw["duration_seconds"]),
        quality=Quality(raw["quality"]),
    )


def task_from(row: sqlite3.Row) -> Task:
    created_at = dt(row["created_at"])
    updated_at = dt(row["updated_at"])
    assert created_at is not None and updated_at is not None
    # Columns absent from databases opened at an older schema (the upgrade tests).
    # `in row` would search the values of a sqlite3.Row: its keys are what count.
    keys = row.keys()
    approval = row["approval"] if "approval" in keys else None
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
        created_at=created_at,
        updated_at=updated_at,
        image_url=row["image_url"],
        provider_task_id=row["provider_task_id"],
        progress=row["progress"],
        result_url=row["result_url"],
        thumbnail_url=row["thumbnail_url"],
        failure_code=row["failure_code"],
        failure_reason=row["failure_reason"],
        cost_videos=row["cost_videos"],
        cost_seconds=row["cost_seconds"],
        completed_at=dt(row["completed_at"]),
        next_check_at=dt(row["next_check_at"]),
        notify_state=NotifyState(row["notify_state"]),
        result_message_id=row["result_message_id"],
        callback_token=row["callback_token"],
        upload_limit=row["upload_limit"],
        remix_of_task_id=row["remix_of_task_id"] if "remix_of_task_id" in keys else None,
        checked_at=dt(row["checked_at"]) if "checked_at" in keys else None,
        approval=None if approval is None else Approval(approval),
        decided_by=row["decided_by"] if "decided_by" in keys else None,
        decided_at=dt(row["decided_at"]) if "decided_at" in keys else None,
        retried_from=row["retried_from"] if "retried_from" in keys else None,
        resubmitted_at=dt(row["resubmitted_at"]) if "resubmitted_at" in keys else None,
        card_message_id=row["card_message_id"] if "card_message_id" in keys else None,
    )


def limits_from(row: sqlite3.Row | None) -> QuotaLimits:
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


def rules_from(
    row: Any,
    blocked_phrases: tuple[str, ...],
    role_allowances: tuple[RoleAllowance, ...],
) -> GuildRules:
    """A guild's governance rules from its `guild_settings` row (none: all defaults) and
    its blocklist and role allowances, already read and sorted. Any row that reads by
    column name (the PostgreSQL store's too)."""
    if row is None:
        return GuildRules(blocked_phrases=blocked_phrases, role_allowances=role_allowances)
    return GuildRules(
        log_channel_id=row["log_channel_id"],
        log_problem=row["log_problem"],
        approval=bool(row["approval_mode"]),
        max_duration=row["max_duration"],
        high_quality=bool(row["high_quality"]),
        blocked_phrases=blocked_phrases,
        role_allowances=role_allowances,
    )


def log_entry_from(row: sqlite3.Row) -> StoredLogEntry:
    created_at = dt(row["created_at"])
    assert created_at is not None
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
        created_at=created_at,
        message_id=row["message_id"],
    )
