-- Provider failover and health (issue 15): each provider's health, shared by every
-- process; the events the last day's statistics are counted from; and a task's move
-- to another provider after its first one failed it.

CREATE TABLE provider_health (
    provider         TEXT PRIMARY KEY,
    failures_in_row  INTEGER NOT NULL DEFAULT 0,
    cooldown_until   TEXT,
    last_reason      TEXT,
    probing_until    TEXT,
    updated_at       TEXT NOT NULL
);

-- One row per create: its outcome, and whether the job then went to the next provider.
CREATE TABLE provider_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    provider  TEXT NOT NULL,
    at        TEXT NOT NULL,
    ok        INTEGER NOT NULL CHECK (ok IN (0, 1)),
    reason    TEXT,
    failover  INTEGER NOT NULL DEFAULT 0 CHECK (failover IN (0, 1))
);

CREATE INDEX provider_events_by_time ON provider_events (at, provider);
CREATE INDEX tasks_by_provider_time ON tasks (provider, created_at);
CREATE INDEX generation_times_by_time ON generation_times (provider, finished_at);

ALTER TABLE tasks ADD COLUMN retried_from TEXT;
ALTER TABLE tasks ADD COLUMN resubmitted_at TEXT;
