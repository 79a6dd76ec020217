-- Server governance (issue 14): role allowances, the blocklist, the server's own limits,
-- approval mode, and the moderation log's outbox.

ALTER TABLE guild_settings ADD COLUMN log_channel_id BIGINT;
ALTER TABLE guild_settings ADD COLUMN log_problem TEXT;
ALTER TABLE guild_settings ADD COLUMN approval_mode INTEGER NOT NULL DEFAULT 0
    CHECK (approval_mode IN (0, 1));
ALTER TABLE guild_settings ADD COLUMN max_duration INTEGER CHECK (max_duration > 0);
ALTER TABLE guild_settings ADD COLUMN high_quality INTEGER NOT NULL DEFAULT 1
    CHECK (high_quality IN (0, 1));

CREATE TABLE role_allowances (
    guild_id  BIGINT NOT NULL,
    role_id   BIGINT NOT NULL,
    daily     INTEGER NOT NULL CHECK (daily BETWEEN 0 AND 1000000),
    set_by    BIGINT,
    set_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

CREATE TABLE blocked_phrases (
    guild_id  BIGINT NOT NULL,
    phrase    TEXT NOT NULL,
    added_by  BIGINT,
    added_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (guild_id, phrase)
);

ALTER TABLE tasks ADD COLUMN approval TEXT
    CHECK (approval IN ('pending', 'approved', 'rejected', 'expired'));
ALTER TABLE tasks ADD COLUMN decided_by BIGINT;
ALTER TABLE tasks ADD COLUMN decided_at TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN card_message_id BIGINT;

CREATE TABLE mod_log (
    id          BIGSERIAL PRIMARY KEY,
    guild_id    BIGINT NOT NULL,
    channel_id  BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    task_id     TEXT,
    actor_id    BIGINT,
    member_id   BIGINT,
    detail_json TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'posting', 'posted', 'dropped')),
    message_id  BIGINT,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX mod_log_unposted ON mod_log (state, id) WHERE state IN ('pending', 'posting');
CREATE INDEX mod_log_by_task ON mod_log (task_id, kind);
