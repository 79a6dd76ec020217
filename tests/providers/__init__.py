"""Tests of `bot/providers`."""
