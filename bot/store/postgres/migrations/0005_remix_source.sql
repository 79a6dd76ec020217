-- A remix remembers the task it came from, so its result post can link to the original.

ALTER TABLE tasks ADD COLUMN remix_of_task_id TEXT;
