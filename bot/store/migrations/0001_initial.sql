-- Guild settings, tasks and the quota ledger: everything the bot must not forget.

CREATE TABLE guild_settings (
    guild_id          INTEGER PRIMARY KEY,
    daily_limit       INTEGER CHECK (daily_limit >= 0),
    monthly_limit     INTEGER CHECK (monthly_limit >= 0),
    user_daily_limit  INTEGER CHECK (user_daily_limit >= 0),
    quota_unit        TEXT CHECK (quota_unit IN ('videos', 'seconds')),
    default_aspect    TEXT,
    default_duration  INTEGER,
    default_quality   TEXT,
    default_provider  TEXT,
    updated_at        TEXT NOT NULL
);

CREATE TABLE allowed_channels (
    guild_id    INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,
    added_by    INTEGER,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    guild_id           INTEGER NOT NULL,
    channel_id         INTEGER NOT NULL,
    user_id            INTEGER NOT NULL,
    interaction_id     INTEGER,
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
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    completed_at       TEXT,
    next_check_at      TEXT,
    notify_state       TEXT NOT NULL DEFAULT 'pending' CHECK (notify_state IN
                         ('pending', 'posting', 'posted', 'direct_messaged', 'undeliverable')),
    upload_limit       INTEGER,
    result_message_id  INTEGER,
    callback_token     TEXT UNIQUE
);

-- Every quota movement is a row; usage is a sum. `entry_key` makes each entry idempotent:
-- reserve:<task>, charge:<task>, refund:<task>, reset:<guild>:<user>:<day>:<n>.
-- `day` and `month` are the UTC period the entry counts against (a refund counts
-- against the period of the reservation it undoes).
CREATE TABLE quota_ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_key   TEXT NOT NULL UNIQUE,
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    task_id     TEXT REFERENCES tasks (id) ON DELETE RESTRICT,
    kind        TEXT NOT NULL CHECK (kind IN ('reserve', 'charge', 'refund', 'reset')),
    videos      INTEGER NOT NULL,
    seconds     INTEGER NOT NULL,
    day         TEXT NOT NULL,
    month       TEXT NOT NULL,
    actor_id    INTEGER,
    note        TEXT,
    created_at  TEXT NOT NULL
);

-- Covering indexes: a usage sum reads the index only, never the table.
CREATE INDEX quota_ledger_guild_day ON quota_ledger (guild_id, day, kind, videos, seconds);
CREATE INDEX quota_ledger_guild_month ON quota_ledger (guild_id, month, kind, videos, seconds);
CREATE INDEX quota_ledger_user_day ON quota_ledger (guild_id, user_id, day, videos, seconds);
