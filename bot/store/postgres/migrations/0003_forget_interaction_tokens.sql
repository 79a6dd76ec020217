-- SQLite's migration 3 forgot stored interaction tokens; a PostgreSQL database never
-- stored any. Kept so the version numbers match SQLite's.
UPDATE tasks SET interaction_token = NULL WHERE interaction_token IS NOT NULL;
