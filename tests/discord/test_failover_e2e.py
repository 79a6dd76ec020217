"""End to end, issue 15: provider failover and health, with two fake provider servers
(APIXO first, an OpenAI-compatible gateway second) on loopback, the real discord.py
client and the Discord fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import NotifyState, TaskState
from tests.conftest import MANAGE_GUILD, BotWorld, running_world
from tests.fakes import FakeDiscord
from tests.fakes.discord_fake.interactions import FakeInteraction
from tests.fakes.providers import FakeApixo, FakeOpenAI
from tests.helpers import eventually, posts

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
World = tuple[BotWorld, FakeApixo, FakeOpenAI]


@pytest.fixture
async def pair(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with (
        FakeApixo(generation_seconds=0.3) as first,
        FakeOpenAI(generation_seconds=0.3) as second,
    ):
        overrides: dict[str, Any] = {
            **first.settings_overrides(),
            **second.settings_overrides(),
            "sora_provider": "apixo,openai",
            "provider_cooldown_seconds": 1.5,
            "default_user_daily_quota": 50,
            **FAST,
        }
        async with running_world(fake_discord, tmp_path, **overrides) as world:
            yield world, first, second


async def ask(world: BotWorld, prompt: str) -> FakeInteraction:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
    )
    await answer.wait_final()
    return answer


async def used(world: BotWorld) -> int:
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    return status.user_used_today


async def only_task(world: BotWorld) -> Any:
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    return task


async def posted(world: BotWorld) -> Any:
    task = await only_task(world)
    return task if task.notify_state is NotifyState.POSTED else None


async def test_out_of_credits_moves_the_job_to_the_next_provider_charged_once(
    pair: World,
) -> None:
    world, apixo, openai = pair
    apixo.inject("insufficient_credits")
    answer = await ask(world, "a heron at dawn")
    assert "on its way" in answer.text(), answer.all_text()
    await answer.wait_followups(1)
    assert "OpenAI" in answer.all_text()  # the card names who took it
    assert len(apixo.requests_for("create")) == 1 and len(openai.requests_for("create")) == 1
    task = await eventually(lambda: posted(world))
    assert task.provider == "openai" and task.state is TaskState.SUCCEEDED
    (post,) = posts(world)
    made_by = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}["Made by"]
    assert "OpenAI" in made_by
    assert await used(world) == 1  # charged once
    creates = world.bot.metrics.provider_creates
    assert creates.labels(provider="apixo", result="out_of_credits")._value.get() == 1
    assert creates.labels(provider="openai", result="ok")._value.get() == 1
    assert world.bot.metrics.provider_failovers.labels(provider="apixo")._value.get() == 1


async def test_a_content_refusal_does_not_fail_over(pair: World) -> None:
    world, apixo, openai = pair
    apixo.inject("content_policy_on_create")
    answer = await ask(world, "something the filter dislikes")
    assert answer.ephemeral and "on its way" not in answer.text()
    assert len(apixo.requests_for("create")) == 1
    assert openai.requests_for("create") == []
    assert await used(world) == 0


async def test_every_create_failing_is_refused_uncharged(pair: World) -> None:
    world, apixo, openai = pair
    apixo.inject("server_error", times=-1, path="generate")
    openai.inject("server_error", times=-1, path="/videos")
    answer = await ask(world, "nobody can")
    assert answer.ephemeral
    assert "having trouble right now" in answer.text()
    assert len(apixo.requests_for("create")) >= 1 and len(openai.requests_for("create")) >= 1
    assert await used(world) == 0
    task = await only_task(world)
    assert task.state is TaskState.FAILED


async def test_a_failing_provider_cools_down_then_gets_one_probe(pair: World) -> None:
    world, apixo, openai = pair
    apixo.inject("insufficient_credits", times=-1)
    for n in range(3):
        assert "on its way" in (await ask(world, f"try {n}")).text()
    assert len(apixo.requests_for("create")) == 3

    shown = await world.fake.send_command(
        world.guild, world.moderator, "sora", world.fake.sub("providers"),
        permissions=MANAGE_GUILD,
    )  # fmt: skip
    await shown.wait_final()
    text = shown.text()
    assert shown.ephemeral and "cooling down until" in text and "out of credits" in text
    assert text.index("APIXO") < text.index("OpenAI")
    assert "3 out of credits" in text and "3 passed on to the next provider" in text

    assert "on its way" in (await ask(world, "during the cool-down")).text()
    assert len(apixo.requests_for("create")) == 3  # not asked while cooling
    assert len(openai.requests_for("create")) == 4

    await asyncio.sleep(1.6)
    apixo.clear_faults()
    assert "on its way" in (await ask(world, "the probe")).text()
    assert len(apixo.requests_for("create")) == 4  # one probe, which succeeds
    assert "on its way" in (await ask(world, "back to normal")).text()
    assert len(apixo.requests_for("create")) == 5
    health = await world.bot.providers.health()
    assert health["apixo"].cooldown_until is None and health["apixo"].failures_in_row == 0


async def test_an_accepted_task_failing_at_its_provider_is_retried_once_elsewhere(
    pair: World,
) -> None:
    world, apixo, openai = pair
    apixo.generation_seconds = 30  # still running when it is failed below
    answer = await ask(world, "a lantern festival")
    assert "on its way" in answer.text()
    (fake_task,) = apixo.unfinished_tasks()
    apixo.fail_task(fake_task.id, "provider_error")
    task = await eventually(lambda: posted(world))
    assert task.state is TaskState.SUCCEEDED and task.provider == "openai"
    assert task.retried_from == "apixo"
    (post,) = posts(world)
    made_by = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}["Made by"]
    assert "retried after APIXO failed" in made_by
    assert len(apixo.requests_for("create")) == 1 and len(openai.requests_for("create")) == 1
    assert await used(world) == 1  # still charged once


async def test_the_providers_command_is_for_moderators(pair: World) -> None:
    world, _, _ = pair
    refused = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("providers")
    )
    await refused.wait_final()
    assert "Manage Server" in refused.text() and refused.ephemeral
    shown = await world.fake.send_command(
        world.guild, world.moderator, "sora", world.fake.sub("providers"),
        permissions=MANAGE_GUILD,
    )  # fmt: skip
    await shown.wait_final()
    assert "1. APIXO" in shown.text() and "2. OpenAI" in shown.text()
    assert shown.text().count("✅ ok") == 2 and "no jobs" in shown.text()
