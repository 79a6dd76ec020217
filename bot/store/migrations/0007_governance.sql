-- Server governance (issue 14): role allowances, the blocklist, the server's own limits,
-- approval mode, and the moderation log's outbox.

ALTER TABLE guild_settings ADD COLUMN log_channel_id INTEGER;
-- Why the last post to the log channel failed (NULL: it works), shown in /sora settings show.
ALTER TABLE guild_settings ADD COLUMN log_problem TEXT;
ALTER TABLE guild_settings ADD COLUMN approval_mode INTEGER NOT NULL DEFAULT 0
    CHECK (approval_mode IN (0, 1));
ALTER TABLE guild_settings ADD COLUMN max_duration INTEGER CHECK (max_duration > 0);
ALTER TABLE guild_settings ADD COLUMN high_quality INTEGER NOT NULL DEFAULT 1
    CHECK (high_quality IN (0, 1));

-- Members holding `role_id` get `daily` (in the quota unit) instead of the server's
-- per-member limit; the largest of a member's roles counts.
CREATE TABLE role_allowances (
    guild_id  INTEGER NOT NULL,
    role_id   INTEGER NOT NULL,
    daily     INTEGER NOT NULL CHECK (daily BETWEEN 0 AND 1000000),
    set_by    INTEGER,
    set_at    TEXT NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

-- Phrases refused in prompts, stored normalised (`bot.governance.normalise_phrase`).
CREATE TABLE blocked_phrases (
    guild_id  INTEGER NOT NULL,
    phrase    TEXT NOT NULL,
    added_by  INTEGER,
    added_at  TEXT NOT NULL,
    PRIMARY KEY (guild_id, phrase)
);

-- Approval mode: a held task stays `queued` with approval 'pending' until a moderator
-- decides or it expires (its next_check_at is then). NULL for tasks never held.
ALTER TABLE tasks ADD COLUMN approval TEXT
    CHECK (approval IN ('pending', 'approved', 'rejected', 'expired'));
ALTER TABLE tasks ADD COLUMN decided_by INTEGER;
ALTER TABLE tasks ADD COLUMN decided_at TEXT;
-- The bot's own public message about the task (the held notice, then the card).
ALTER TABLE tasks ADD COLUMN card_message_id INTEGER;

-- The moderation log's outbox: one row per event, posted once to the channel it names.
CREATE TABLE mod_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    task_id     TEXT,
    actor_id    INTEGER,
    member_id   INTEGER,
    detail_json TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'posting', 'posted', 'dropped')),
    message_id  INTEGER,
    created_at  TEXT NOT NULL
);

CREATE INDEX mod_log_unposted ON mod_log (state, id) WHERE state IN ('pending', 'posting');
CREATE INDEX mod_log_by_task ON mod_log (task_id, kind);
