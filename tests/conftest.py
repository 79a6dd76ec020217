"""Shared fixtures: the real bot, built as `main` builds it, against the in-repo Discord fake."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.__main__ import make_http_client
from bot.discord.app import SoraBot
from bot.providers.registry import build_providers
from bot.settings import Settings
from bot.store import create_store
from tests.fakes import FakeDiscord, FakeGuild

MANAGE_GUILD = 1 << 5


@dataclass
class BotWorld:
    """A running bot, the fake Discord it talks to, and the people in its test server."""

    fake: FakeDiscord
    bot: SoraBot
    guild: FakeGuild
    member: dict[str, Any]
    moderator: dict[str, Any]
    settings: Settings


def make_settings(fake: FakeDiscord, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "discord_token": fake.token,
        "discord_api_base": fake.api_base,
        "discord_gateway_url": fake.gateway_url,
        "database_url": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        "default_daily_quota": 20,
        "default_monthly_quota": 300,
        "default_user_daily_quota": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        yield fake
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
        await fake.stop()


async def start_bot(settings: Settings, fake: FakeDiscord) -> tuple[SoraBot, asyncio.Task[None]]:
    """Start the bot exactly as `main` does (settings -> store -> bot) and wait for ready."""
    http_client = make_http_client()
    bot = SoraBot(
        settings=settings,
        store=create_store(settings.database_url),
        http_client=http_client,
        provider=build_providers(settings, http_client),
        guild_ready_timeout=0.05,
    )
    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({runner, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        ready.cancel()
        runner.result()
    if ready not in done:
        ready.cancel()
        await bot.close()
        raise TimeoutError("the bot did not become ready")
    return bot, runner


async def stop_bot(bot: SoraBot, runner: asyncio.Task[None]) -> None:
    """Close the bot; one that does not stop within 20 s fails the test with every
    task's stack (a hang in teardown otherwise shows nothing until CI gives up)."""
    closing = asyncio.ensure_future(bot.close())
    done, _ = await asyncio.wait({closing}, timeout=20)
    if not done:
        for task in asyncio.all_tasks():
            print("still running:", task, file=sys.stderr)
            task.print_stack(file=sys.stderr)
        raise TimeoutError("the bot did not stop within 20 s (stacks above)")
    closing.result()
    await asyncio.wait_for(runner, timeout=10)


@contextlib.asynccontextmanager
async def running_world(
    fake: FakeDiscord, tmp_path: Path, **overrides: Any
) -> AsyncIterator[BotWorld]:
    """A guild with a member and a moderator, and the bot running against `fake`."""
    guild = fake.add_guild("Video Makers")
    member = fake.add_user("alice")
    moderator = fake.add_user("mod")
    guild.add_member(member)
    guild.add_member(moderator)
    settings = make_settings(fake, tmp_path, discord_guild_ids=[guild.id], **overrides)
    bot, runner = await start_bot(settings, fake)
    try:
        yield BotWorld(fake, bot, guild, member, moderator, settings)
    finally:
        await stop_bot(bot, runner)


@pytest.fixture
async def world(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotWorld]:
    # Demo videos take a minute here: commands see them in progress.
    async with running_world(fake_discord, tmp_path, demo_generation_seconds=60) as world:
        yield world
