-- A task is final exactly when its reservation is settled: `finish` now writes the final
-- state and the charge or refund in one transaction. Before, the charge or refund had a
-- transaction of its own after the final state, and every restart settled final tasks
-- again in case a crash fell in between. This settles any task such a crash left, once,
-- as that retry would have: a made video is charged, anything else refunded.

INSERT INTO quota_ledger
    (entry_key, guild_id, user_id, task_id, kind, videos, seconds, day, month, note,
     created_at)
SELECT
    CASE WHEN t.state = 'succeeded' THEN 'charge:' ELSE 'refund:' END || t.id,
    r.guild_id,
    r.user_id,
    t.id,
    CASE WHEN t.state = 'succeeded' THEN 'charge' ELSE 'refund' END,
    CASE WHEN t.state = 'succeeded' THEN 0 ELSE -r.videos END,
    CASE WHEN t.state = 'succeeded' THEN 0 ELSE -r.seconds END,
    r.day,
    r.month,
    CASE WHEN t.state = 'succeeded' THEN NULL ELSE COALESCE(t.failure_reason, 'failed') END,
    strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')
FROM tasks t
JOIN quota_ledger r ON r.entry_key = 'reserve:' || t.id
WHERE t.state IN ('succeeded', 'failed', 'expired')
  AND NOT EXISTS (
      SELECT 1 FROM quota_ledger s
      WHERE s.entry_key IN ('charge:' || t.id, 'refund:' || t.id)
  );
