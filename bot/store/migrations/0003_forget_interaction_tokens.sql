-- Each task kept the token of the interaction that asked for it, and nothing read it
-- back. An interaction token lets whoever holds it answer as the bot for 15 minutes: the
-- bot no longer stores them, and forgets the ones it kept. The columns stay, unused.

UPDATE tasks SET interaction_token = NULL WHERE interaction_token IS NOT NULL;
