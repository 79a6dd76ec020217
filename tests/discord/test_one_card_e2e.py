"""End to end: after the outcome is out, the channel holds one public message per video
(issue 12). The "on its way" card is removed on success, failure and Delete, says where
the video went after a DM, and a refusal at create leaves nothing public."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import NotifyState
from tests.conftest import BotWorld, running_world
from tests.fakes import FakeDiscord, FakeInteraction
from tests.fakes.providers import FakeApixo, FakeOpenAI
from tests.helpers import eventually, posts

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
EPHEMERAL = 64


def public(world: BotWorld) -> list[dict[str, Any]]:
    """Every public message still in the guild's channel: the bot's own posts and every
    interaction's responses and followups."""
    cid = int(world.guild.channels[0]["id"])
    found = list(world.fake.channel_messages.get(cid, []))
    for interaction in world.fake.interactions:
        found += [m for m in interaction.messages.values() if m not in found]
        if interaction.original is not None and interaction.original not in found:
            found.append(interaction.original)
    return [
        m
        for m in found
        if int(m["id"]) not in world.fake.deleted_messages
        and not int(m.get("flags") or 0) & EPHEMERAL
        and int(m.get("channel_id") or cid) == cid
    ]


async def submit(world: BotWorld, prompt: str) -> tuple[FakeInteraction, dict[str, Any]]:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
    )
    await answer.wait_final()
    (card,) = await answer.wait_followups(1)
    return answer, card


@pytest.fixture
async def demo_world(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotWorld]:
    async with running_world(fake_discord, tmp_path, demo_generation_seconds=0.6, **FAST) as world:
        yield world


async def test_success_leaves_only_the_result(demo_world: BotWorld) -> None:
    world = demo_world
    answer, _ = await submit(world, "a red fox in fresh snow")
    assert [m["embeds"][0]["title"] for m in public(world)] == ["🎬 Your video is on its way"]
    (post,) = await eventually(lambda: posts(world))
    await eventually(lambda: [m["id"] for m in public(world)] == [post["id"]])
    # The member's private line points at the result.
    await eventually(
        lambda: any("Your video is ready" in (e.get("content") or "") for e in answer.edits)
    )


async def test_failure_leaves_only_the_failure_post(demo_world: BotWorld) -> None:
    world = demo_world
    await submit(world, "something #fail")
    (post,) = await eventually(lambda: posts(world))
    await eventually(lambda: [m["id"] for m in public(world)] == [post["id"]])
    assert all("#fail" not in str(m) for m in public(world))


async def test_delete_leaves_nothing(demo_world: BotWorld) -> None:
    world = demo_world
    answer, _ = await submit(world, "a short-lived clip")
    (post,) = await eventually(lambda: posts(world))
    await eventually(lambda: [m["id"] for m in public(world)] == [post["id"]])
    click = await answer.click("Delete", message=post)
    await click.wait_final()
    await eventually(lambda: public(world) == [])


async def test_dm_fallback_turns_the_card_into_a_pointer(demo_world: BotWorld) -> None:
    world = demo_world
    cid = int(world.guild.channels[0]["id"])
    world.fake.fail_next(
        "POST", rf"^/channels/{cid}/messages$", 403,
        body={"message": "Missing Permissions", "code": 50013},
    )  # fmt: skip
    await submit(world, "a quiet forest")
    try:
        await eventually(
            lambda: any(
                "sent to them by direct message" in (m.get("content") or "") for m in public(world)
            )
        )
    except TimeoutError:
        raise AssertionError(public(world)) from None
    (left,) = public(world)
    assert not left.get("embeds")  # no stale "on its way" card, no prompt, no progress
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    assert task.notify_state is NotifyState.DIRECT_MESSAGED


async def test_refusal_at_create_leaves_nothing_public(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with FakeApixo(generation_seconds=60) as provider:
        async with running_world(fake_discord, tmp_path, **provider.settings_overrides()) as world:
            answer = await world.fake.send_command(
                world.guild, world.member, "sora", world.fake.sub("text", prompt="x #refuse")
            )
            final = await answer.wait_final()
            assert final["ephemeral"] and "content policy" in final["content"]
            assert public(world) == []


async def test_expired_token_leaves_a_card_that_claims_no_progress(demo_world: BotWorld) -> None:
    world = demo_world
    answer, card = await submit(world, "late bloomer")
    answer.expire()
    (post,) = await eventually(lambda: posts(world))
    # If the card could not be removed it still reads as announced, never as progress.
    for left in [m for m in public(world) if m["id"] != post["id"]]:
        assert left["embeds"][0]["title"] == card["embeds"][0]["title"]
        assert "Generating" not in str(left)


async def test_try_again_opens_the_prompt_and_submits_the_edit(demo_world: BotWorld) -> None:
    """A failure post's Try again: the prompt (refused for content, so never shown in the
    channel) is offered for editing to its requester only; the edit is a new video."""
    world = demo_world
    await submit(world, "a duel #fail")
    (post,) = await eventually(lambda: posts(world))
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    custom_id = f"sora:retry:{task.id}"

    stranger = await world.fake.send_component(world.guild, world.moderator, post, custom_id)
    await stranger.wait_final()
    assert stranger.modal is None
    assert "Only the member who asked for this video" in stranger.text()

    clicked = await world.fake.send_component(world.guild, world.member, post, custom_id)
    await clicked.wait_callback()
    assert clicked.modal is not None and "a duel #fail" in str(clicked.modal)
    edited = await clicked.submit_modal({"prompt": "a calm lake at dawn"})
    await edited.wait_final()
    await edited.wait_followups(1)
    tasks = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    retried = [t for t in tasks if t.id != task.id]
    assert [(t.prompt, t.user_id) for t in retried] == [
        ("a calm lake at dawn", int(world.member["id"]))
    ]


async def test_a_remix_links_to_the_video_it_came_from(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with FakeOpenAI(generation_seconds=0.3) as provider:
        async with running_world(
            fake_discord, tmp_path, **FAST, **provider.settings_overrides()
        ) as world:
            await submit(world, "a lighthouse at night")
            (original,) = await eventually(lambda: posts(world))
            (source,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
            clicked = await world.fake.send_component(
                world.guild, world.member, original, f"sora:remix:{source.id}"
            )
            await clicked.wait_callback()
            edited = await clicked.submit_modal({"change": "make it snow"})
            await edited.wait_final()
            posted = await eventually(lambda: len(posts(world)) == 2 and posts(world))
    remix = posted[1]
    fields = {f["name"]: f["value"] for f in remix["embeds"][0]["fields"]}
    url = f"https://discord.com/channels/{world.guild.id}/{original['channel_id']}/{original['id']}"
    assert fields["Remixed from"] == f"[the original video]({url})"
    assert provider.requests_for("remix"), "the remix was sent to the provider's remix route"
