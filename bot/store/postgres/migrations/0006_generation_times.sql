-- How long the provider took for each finished video, per provider and kind. Only the
-- latest few hundred of each kind are kept (the store prunes on insert).

CREATE TABLE generation_times (
    id            BIGSERIAL PRIMARY KEY,
    provider      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    low_seconds   DOUBLE PRECISION NOT NULL,
    high_seconds  DOUBLE PRECISION NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX generation_times_by_kind ON generation_times (provider, kind, id);

ALTER TABLE tasks ADD COLUMN checked_at TIMESTAMPTZ;
