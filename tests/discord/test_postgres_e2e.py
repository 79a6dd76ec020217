"""End to end on PostgreSQL: the real bot with `DATABASE_URL=postgresql://...` (a fresh
database of its own), the real discord.py client and the Discord fake. Skipped without a
server, unless REQUIRE_POSTGRES=1 (CI) makes that a failure."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
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


async def test_two_sharded_processes_share_the_work_and_post_each_video_once(
    fake_discord: FakeDiscord, tmp_path: Path, database: str
) -> None:
    """Two bot processes (SHARD_COUNT=2, SHARD_IDS 0 and 1) over one PostgreSQL database:
    each serves its shard's server, only shard 0 syncs the commands, and when one stops
    mid-generation the other finishes and posts its video (posting is REST); starting it
    again posts nothing twice."""
    from tests.fakes.providers import FakeApixo

    shard_of = {0: fake_discord.add_guild("Shard zero"), 1: fake_discord.add_guild("Shard one")}
    while any((g.id >> 22) % 2 != shard for shard, g in shard_of.items()):
        for shard, guild in list(shard_of.items()):
            if (guild.id >> 22) % 2 != shard:
                fake_discord.guilds.pop(guild.id)
                shard_of[shard] = fake_discord.add_guild(f"Shard {shard}")
    alice = fake_discord.add_user("alice")
    for guild in shard_of.values():
        guild.add_member(alice)

    async with FakeApixo(generation_seconds=1.5) as provider:

        def settings_for(shard: int, folder: str) -> Any:
            (tmp_path / folder).mkdir()
            return make_settings(
                fake_discord,
                tmp_path / folder,
                database_url=database,
                discord_guild_ids=[g.id for g in shard_of.values()],
                shard_count=2,
                shard_ids=[shard],
                poll_first_delay_seconds=0.1,
                poll_interval_seconds=0.1,
                **provider.settings_overrides(),
            )

        first, second = settings_for(0, "p0"), settings_for(1, "p1")
        bot0, run0 = await start_bot(first, fake_discord)
        bot1, run1 = await start_bot(second, fake_discord)
        stopped = False
        try:
            # Each process holds its own shard's server only.
            assert bot0.get_guild(shard_of[0].id) and not bot0.get_guild(shard_of[1].id)
            assert bot1.get_guild(shard_of[1].id) and not bot1.get_guild(shard_of[0].id)
            syncs = [scope for scope, _ in fake_discord.command_syncs]
            assert sorted(syncs) == sorted(g.id for g in shard_of.values())  # shard 0's only
            for shard, guild in shard_of.items():
                answer = await fake_discord.send_command(
                    guild, alice, "sora", fake_discord.sub("text", prompt=f"shard {shard}")
                )
                await answer.wait_final()
                assert "on its way" in answer.text()
            await stop_bot(bot1, run1)  # the second process goes away mid-generation
            stopped = True

            def posts_in(guild: Any) -> list[dict[str, object]]:
                channel = int(guild.channels[0]["id"])
                return [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]

            await eventually(lambda: all(posts_in(g) for g in shard_of.values()), timeout=20)
            bot1, run1 = await start_bot(second, fake_discord)  # back again
            stopped = False
            await asyncio.sleep(1.0)
            assert [len(posts_in(g)) for g in shard_of.values()] == [1, 1]
            for guild in shard_of.values():
                (task,) = (await bot0.store.guild_tasks(guild.id)).tasks
                assert task.state is TaskState.SUCCEEDED
                assert task.notify_state is NotifyState.POSTED
            assert len(provider.requests_for("create")) == 2
        finally:
            if not stopped:
                await stop_bot(bot1, run1)
            await stop_bot(bot0, run0)
