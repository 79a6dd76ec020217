"""Tests of `bot/discord/` and the cogs: rendering, components, and end to end
through the Discord fake."""
