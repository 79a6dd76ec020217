-- Provider failover and health (issue 15), shared by every process.

CREATE TABLE provider_health (
    provider         TEXT PRIMARY KEY,
    failures_in_row  INTEGER NOT NULL DEFAULT 0,
    cooldown_until   TIMESTAMPTZ,
    last_reason      TEXT,
    probing_until    TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE provider_events (
    id        BIGSERIAL PRIMARY KEY,
    provider  TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    ok        INTEGER NOT NULL CHECK (ok IN (0, 1)),
    reason    TEXT,
    failover  INTEGER NOT NULL DEFAULT 0 CHECK (failover IN (0, 1))
);

CREATE INDEX provider_events_by_time ON provider_events (at, provider);
CREATE INDEX tasks_by_provider_time ON tasks (provider, created_at);
CREATE INDEX generation_times_by_time ON generation_times (provider, finished_at);

ALTER TABLE tasks ADD COLUMN retried_from TEXT;
ALTER TABLE tasks ADD COLUMN resubmitted_at TIMESTAMPTZ;
