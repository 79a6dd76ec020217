"""End to end on PostgreSQL: the real bot with `DATABASE_URL=postgresql://...` (a fresh
database of its own), the real discord.py client and the Discord fake. Skipped without a
server, unless REQUIRE_POSTGRES=1 (CI) makes that a failure."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

from bot.domain import NotifyState, TaskState
from tests.conftest import make_settings, start_bot, stop_bot
from tests.fakes import FakeDiscord
from tests.helpers import eventually

DSN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    try:
        admin = await asyncpg.connect(DSN, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        message = f"no PostgreSQL server at TEST_DATABASE_URL ({type(error).__name__})"
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"t_{uuid.uuid4().hex}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(DSN)
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_bot_runs_on_postgresql_and_posts_once_across_a_restart(
    fake_discord: FakeDiscord, tmp_path: Path, database: str
) -> None:
    guild = fake_discord.add_guild("On Postgres")
    alice = fake_discord.add_user("alice")
    guild.add_member(alice)
    settings = make_settings(
        fake_discord,
        tmp_path,
        database_url=database,
        discord_guild_ids=[guild.id],
        demo_generation_seconds=1.0,
        poll_first_delay_seconds=0.1,
        poll_interval_seconds=0.1,
    )
    bot, runner = await start_bot(settings, fake_discord)
    try:
        assert "postgresql://" in bot.store.description and await bot.store.schema_version() == 8
        answer = await fake_discord.send_command(
            guild, alice, "sora", fake_discord.sub("text", prompt="an elephant on a bicycle")
        )
        await answer.wait_final()
        assert "on its way" in answer.text()
    finally:
        await stop_bot(bot, runner)  # stopped while the video is being made
    channel = int(guild.channels[0]["id"])

    def posted() -> list[dict[str, object]]:
        return [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]

    bot, runner = await start_bot(settings, fake_discord)  # a new process, the same database
    try:
        await eventually(posted)
        await asyncio.sleep(0.5)
        assert len(posted()) == 1
        (task,) = (await bot.store.guild_tasks(guild.id)).tasks
        assert task.state is TaskState.SUCCEEDED and task.notify_state is NotifyState.POSTED
        status = await bot.store.quota_status(guild.id, int(alice["id"]), settings.default_limits)
        assert status.user_used_today == 1
    finally:
        await stop_bot(bot, runner)
