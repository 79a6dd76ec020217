"""End to end: the real discord.py client, unmodified, against the in-repo Discord fake."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.domain import QuotaLimits, QuotaUnit
from tests.conftest import MANAGE_GUILD, BotWorld, make_settings, start_bot, stop_bot
from tests.fakes import FakeDiscord

ADMINISTRATOR = 1 << 3


def by_name(options: list[dict], name: str) -> dict:
    return next(option for option in options if option["name"] == name)


async def test_bot_syncs_the_sora_tree_to_configured_guild(world: BotWorld) -> None:
    commands = world.fake.guild_commands[world.guild.id]
    assert [c["name"] for c in commands] == ["sora"]
    sora = commands[0]
    assert (
        sora["default_member_permissions"] is None
    )  # members use /sora; moderators checked at run time
    assert sora.get("contexts") in (None, [0])  # guild only where Discord honours it
    quota = by_name(sora["options"], "quota")
    assert quota["type"] == 2
    assert sorted(o["name"] for o in quota["options"]) == [
        "reset-user",
        "role-clear",
        "role-set",
        "roles",
        "set",
        "show",
    ]

    set_ = by_name(quota["options"], "set")
    params = {o["name"]: o for o in set_["options"]}
    assert list(params) == ["daily", "monthly", "user_daily", "unit"]
    for name in ("daily", "monthly", "user_daily"):
        assert params[name]["type"] == 4 and params[name]["min_value"] == 0
        assert params[name].get("required", False) is False
    assert [c["value"] for c in params["unit"]["choices"]] == ["videos", "seconds"]

    reset = by_name(quota["options"], "reset-user")
    assert reset["options"][0]["name"] == "user" and reset["options"][0]["type"] == 6
    assert reset["options"][0]["required"] is True
    assert world.fake.global_commands == []  # guild sync only: nothing pushed globally


async def test_commands_sync_globally_without_guild_ids(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    fake_discord.add_guild("Somewhere")
    bot, runner = await start_bot(make_settings(fake_discord, tmp_path), fake_discord)
    try:
        assert [c["name"] for c in fake_discord.global_commands] == ["sora"]
    finally:
        await stop_bot(bot, runner)
    # Login and sync went through DISCORD_API_BASE (the fake), not to Discord.
    seen = {(r.method, r.path) for r in fake_discord.requests}
    assert ("GET", "/users/@me") in seen
    assert ("PUT", f"/applications/{fake_discord.app_id}/commands") in seen


async def test_ready_line_names_bot_guilds_provider_and_database(
    fake_discord: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_discord.add_guild("One")
    fake_discord.add_guild("Two")
    caplog.set_level(logging.INFO, logger="bot.discord.app")
    bot, runner = await start_bot(make_settings(fake_discord, tmp_path), fake_discord)
    await stop_bot(bot, runner)
    ready = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ready as")]
    assert len(ready) == 1
    assert "SoraBot" in ready[0] and "in 2 guild(s)" in ready[0]
    assert "providers demo" in ready[0] and "bot.sqlite3" in ready[0]


async def test_moderator_sets_quota_and_member_sees_it(world: BotWorld) -> None:
    fake = world.fake
    answer = await fake.send_command(
        world.guild,
        world.moderator,
        "sora",
        fake.sub("quota", "set", daily=3, user_daily=1, unit="seconds"),
        permissions=MANAGE_GUILD,
    )
    final = await answer.wait_final()
    assert final["ephemeral"] is True
    text = answer.text()
    assert "Daily (server)**: 20 → **3**" in text
    assert "Daily (per member)**: 5 → **1**" in text
    assert "Monthly (server)**: 300" in text
    assert "videos → **seconds**" in text

    shown = await fake.send_command(world.guild, world.member, "sora", fake.sub("quota", "show"))
    final = await shown.wait_final()
    assert final["ephemeral"] is True
    text = shown.text()
    assert "Limits count **seconds**" in text
    assert "0 of 3 used" in text and "0 of 300 used" in text and "0 of 1 used" in text
    assert "alice today" in text
    assert "<t:" in text  # reset times as Discord timestamps

    stored = await world.bot.store.guild_settings(world.guild.id)
    assert stored.limits == QuotaLimits(daily=3, user_daily=1, unit=QuotaUnit.SECONDS)


async def test_administrator_may_set_quota(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        world.guild,
        world.moderator,
        "sora",
        world.fake.sub("quota", "set", monthly=0),
        permissions=ADMINISTRATOR,
    )
    await answer.wait_final()
    assert "Monthly (server)**: 300 → **off (0)**" in answer.text()
    assert "turns video generation off" in answer.text()


async def test_member_cannot_set_quota(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        world.guild,
        world.member,
        "sora",
        world.fake.sub("quota", "set", daily=1000),
        permissions=0,
    )
    final = await answer.wait_final()
    assert final["ephemeral"] is True
    assert "Only members with the **Manage Server** permission can do that." in answer.text()
    stored = await world.bot.store.guild_settings(world.guild.id)
    assert stored.limits == QuotaLimits()


async def test_set_without_values_explains_itself(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        world.guild,
        world.moderator,
        "sora",
        world.fake.sub("quota", "set"),
        permissions=MANAGE_GUILD,
    )
    await answer.wait_final()
    assert "give at least one of `daily`" in answer.text()


async def test_moderator_resets_a_members_usage(world: BotWorld) -> None:
    from bot.domain import GenerationOptions, Mode, NewTask, Settle, TaskState, TaskUpdate

    store, guild_id, alice = world.bot.store, world.guild.id, int(world.member["id"])
    for _ in range(2):
        made = await store.reserve(
            NewTask(guild_id, 1, alice, "demo", Mode.TEXT, "x", GenerationOptions()),
            world.settings.default_limits,
        )
        await store.finish(made.task.id, TaskUpdate(TaskState.SUCCEEDED), settle=Settle.CHARGE)
    flying = await store.reserve(
        NewTask(guild_id, 1, alice, "demo", Mode.TEXT, "x", GenerationOptions()),
        world.settings.default_limits,
    )
    answer = await world.fake.send_command(
        world.guild,
        world.moderator,
        "sora",
        world.fake.sub("quota", "reset-user", user=world.member),
        permissions=MANAGE_GUILD,
    )
    await answer.wait_final()
    assert f"Cleared <@{alice}>'s usage for today (2 videos" in answer.text()
    assert "1 video still being made keeps counting" in answer.text()
    status = await store.quota_status(guild_id, alice, world.settings.default_limits)
    assert status.user_used_today == 1 and status.guild_used_today == 3
    await store.finish(
        flying.task.id,
        TaskUpdate(TaskState.FAILED, failure_reason="the provider failed"),
        settle=Settle.REFUND,
    )
    status = await store.quota_status(guild_id, alice, world.settings.default_limits)
    assert status.user_used_today == 0 and status.guild_used_today == 2

    refused = await world.fake.send_command(
        world.guild,
        world.member,
        "sora",
        world.fake.sub("quota", "reset-user", user=world.member),
        permissions=0,
    )
    await refused.wait_final()
    assert "Manage Server" in refused.text()


async def test_commands_in_dms_are_refused(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        None, world.member, "sora", world.fake.sub("quota", "show")
    )
    final = await answer.wait_final()
    assert "work in servers only" in answer.text()
    assert final["ephemeral"] is True


async def test_unexpected_error_gets_a_reference_in_answer_and_log(
    world: BotWorld, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(world.bot.moderation, "quota_status", broken)
    caplog.set_level(logging.ERROR, logger="bot.discord.command_tree")
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("quota", "show")
    )
    final = await answer.wait_final()
    assert final["ephemeral"] is True
    text = answer.text()
    assert "Something went wrong on my side (reference `" in text
    assert "database on fire" not in text
    reference = text.split("reference `")[1].split("`")[0]
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


async def test_answers_arrive_well_within_three_seconds(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("quota", "show")
    )
    await answer.wait_callback()
    assert answer.first_callback_at is not None and answer.first_callback_at < 1.0
