-- Guild settings, tasks and the quota ledger: everything the bot must not forget.
-- PostgreSQL's schema mirrors SQLite's migration for migration, so a version number
-- means the same schema in both stores (SQLite's data-only fixes are no-ops here).

CREATE TABLE guild_settings (
    guild_id          BIGINT PRIMARY KEY,
    daily_limit       INTEGER CHECK (daily_limit >= 0),
    monthly_limit     INTEGER CHECK (monthly_limit >= 0),
    user_daily_limit  INTEGER CHECK (user_daily_limit >= 0),
    quota_unit        TEXT CHECK (quota_unit IN ('videos', 'seconds')),
    default_aspect    TEXT,
    default_duration  INTEGER,
    default_quality   TEXT,
    default_provider  TEXT,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE allowed_channels (
    guild_id    BIGINT NOT NULL,
    channel_id  BIGINT NOT NULL,
    added_by    BIGINT,
    added_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    guild_id           BIGINT NOT NULL,
    channel_id         BIGINT NOT NULL,
    user_id            BIGINT NOT NULL,
    interaction_id     BIGINT,
    interaction_token  TEXT,
    provider           TEXT NOT NULL,
    provider_task_id   TEXT,
    mode               TEXT NOT NULL CHECK (mode IN ('text', 'image')),
    options_json       TEXT NOT NULL,
    prompt             TEXT NOT NULL,
    image_url          TEXT,
    state              TEXT NOT NULL CHECK (state IN
                         ('queued', 'submitted', 'running', 'succeeded', 'failed', 'expired')),
    progress           INTEGER CHECK (progress BETWEEN 0 AND 100),
    result_url         TEXT,
    thumbnail_url      TEXT,
    failure_code       TEXT,
    failure_reason     TEXT,
    cost_videos        INTEGER NOT NULL DEFAULT 1,
    cost_seconds       INTEGER NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    completed_at       TIMESTAMPTZ,
    next_check_at      TIMESTAMPTZ,
    notify_state       TEXT NOT NULL DEFAULT 'pending' CHECK (notify_state IN
                         ('pending', 'posting', 'posted', 'direct_messaged', 'undeliverable')),
    upload_limit       BIGINT,
    result_message_id  BIGINT,
    callback_token     TEXT UNIQUE
);

-- Every quota movement is a row; usage is a sum. `entry_key` makes each entry idempotent:
-- reserve:<task>, charge:<task>, refund:<task>, reset:<guild>:<user>:<day>:<n>.
-- `day` and `month` are the UTC period keys the entry counts against.
CREATE TABLE quota_ledger (
    id          BIGSERIAL PRIMARY KEY,
    entry_key   TEXT NOT NULL UNIQUE,
    guild_id    BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    task_id     TEXT REFERENCES tasks (id) ON DELETE RESTRICT,
    kind        TEXT NOT NULL CHECK (kind IN ('reserve', 'charge', 'refund', 'reset')),
    videos      INTEGER NOT NULL,
    seconds     INTEGER NOT NULL,
    day         TEXT NOT NULL,
    month       TEXT NOT NULL,
    actor_id    BIGINT,
    note        TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX quota_ledger_guild_day ON quota_ledger (guild_id, day, kind, videos, seconds);
CREATE INDEX quota_ledger_guild_month ON quota_ledger (guild_id, month, kind, videos, seconds);
CREATE INDEX quota_ledger_user_day ON quota_ledger (guild_id, user_id, day, videos, seconds);
-- Settling reads a task's entries.
CREATE INDEX quota_ledger_task ON quota_ledger (task_id);
