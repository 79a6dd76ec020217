-- How long the provider took for each finished video, per provider and kind (model tier,
-- length, text or picture): the polling schedule learns when to check from it. Only the
-- latest few hundred of each kind are kept (the store prunes on every insert). The
-- tracker's last check of each task bounds a generation time the provider does not state.

CREATE TABLE generation_times (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    low_seconds REAL NOT NULL,
    high_seconds REAL NOT NULL,
    finished_at TEXT NOT NULL
);

CREATE INDEX generation_times_by_kind ON generation_times (provider, kind, id);

ALTER TABLE tasks ADD COLUMN checked_at TEXT;
