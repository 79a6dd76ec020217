-- Indexes for the queries the product runs most: a user's history, a guild's tasks,
-- and the tracker's "what is due for a check" (only unfinished tasks carry next_check_at).

CREATE INDEX tasks_user_history ON tasks (guild_id, user_id, created_at DESC, id DESC);
CREATE INDEX tasks_guild_recent ON tasks (guild_id, created_at DESC, id DESC);
CREATE INDEX tasks_due ON tasks (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX tasks_provider_task ON tasks (provider, provider_task_id);
CREATE INDEX tasks_unfinished ON tasks (state) WHERE state IN ('queued', 'submitted', 'running');
CREATE INDEX tasks_undelivered ON tasks (notify_state) WHERE notify_state IN ('pending', 'posting');
