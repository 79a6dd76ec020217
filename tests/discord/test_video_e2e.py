"""End to end: /sora text, image, status, history and settings through the real discord.py
client, the Discord fake, and the demo provider or a fake provider server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.domain import TaskState
from tests.conftest import MANAGE_GUILD, BotWorld, running_world
from tests.fakes import FakeDiscord, FakeInteraction
from tests.fakes.providers import FakeApixo
from tests.helpers import posts

SEND = 1 << 11
EMBED = 1 << 14
ATTACH = 1 << 15
VIEW = 1 << 10
BOT_PERMS = SEND | EMBED | ATTACH | VIEW


def png(size: tuple[int, int] = (640, 360)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


async def settle(answer: FakeInteraction, messages: int = 1) -> None:
    """Wait until the interaction has its final message and `messages` followups/edits."""
    await answer.wait_final()
    async with asyncio.timeout(5):
        while len(answer.followups) + len(answer.edits) < messages:
            await asyncio.sleep(0.02)


async def text(
    world: BotWorld, user: dict[str, Any], prompt: str, **options: Any
) -> FakeInteraction:
    return await world.fake.send_command(
        world.guild, user, "sora", world.fake.sub("text", prompt=prompt, **options)
    )


@pytest.fixture
async def apixo_world(
    fake_discord: FakeDiscord, tmp_path: Path
) -> AsyncIterator[tuple[BotWorld, FakeApixo]]:
    async with FakeApixo(generation_seconds=60) as provider:
        async with running_world(fake_discord, tmp_path, **provider.settings_overrides()) as world:
            yield world, provider


async def test_text_submission_is_public_with_task_quota_and_wait(world: BotWorld) -> None:
    answer = await text(world, world.member, "a red fox in snow", aspect="portrait", duration=12)
    first = await answer.wait_callback()
    # Deferred privately: any refusal until the provider accepts stays with the member.
    assert first["type"] == 5 and (first.get("data") or {}).get("flags", 0) & 64
    assert answer.first_callback_at is not None and answer.first_callback_at < 1.0
    final = await answer.wait_final()
    assert final["ephemeral"] is True and "on its way" in final["content"]
    (card,) = await answer.wait_followups(1)
    assert not card.get("flags", 0) & 64  # the card is a new, public message
    body = answer.all_text()
    assert "Your video is on its way" in body and "a red fox in snow" in body
    assert "portrait · 12 s · standard" in body
    assert "**19 videos**" in body and "you:" not in body  # the member's own quota is private
    mentions = answer.followups[0]["allowed_mentions"]
    assert [str(u) for u in mentions["users"]] == [world.member["id"]] and mentions.get(
        "parse", []
    ) == []

    tasks = await world.bot.store.user_tasks(world.guild.id, int(world.member["id"]))
    (task,) = tasks.tasks
    assert f"Task {task.id}" in body
    assert task.state is TaskState.SUBMITTED and task.provider_task_id


async def test_over_quota_is_private_and_uncharged(world: BotWorld) -> None:
    """Acknowledged at once with a private "thinking..." (the reservation may queue behind
    others on the store), which the refusal then replaces: nothing public, nothing
    charged."""
    await world.bot.store.update_quota_limits(world.guild.id, _limits(user_daily=1))
    ok = await text(world, world.member, "first")
    await ok.wait_final()
    refused = await text(world, world.member, "second")
    final = await refused.wait_final()
    assert refused.callbacks[0]["type"] == 5 and refused.callbacks[0]["data"]["flags"] & 64
    assert final["ephemeral"] is True
    assert all(f["flags"] & 64 for f in refused.followups)  # every word of it private
    assert "You have used your 1 video for today. It resets <t:" in refused.text()
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 1
    assert (await world.bot.store.guild_tasks(world.guild.id)).total == 1


def _limits(**values: Any) -> Any:
    from bot.domain import QuotaLimits

    return QuotaLimits(**values)


async def test_generation_off_says_so(world: BotWorld) -> None:
    await world.bot.store.update_quota_limits(world.guild.id, _limits(daily=0))
    answer = await text(world, world.member, "anything")
    await answer.wait_final()
    assert "turned off in this server" in answer.text() and answer.ephemeral


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("   ", "the prompt is empty"), ("x" * 5001, "5,001 characters")],
)
async def test_bad_prompts_are_refused_privately(
    world: BotWorld, prompt: str, expected: str
) -> None:
    answer = await text(world, world.member, prompt)
    await answer.wait_final()
    assert expected in answer.text() and answer.ephemeral
    assert (await world.bot.store.guild_tasks(world.guild.id)).total == 0


async def test_provider_refusal_refunds_and_explains_privately(
    apixo_world: tuple[BotWorld, FakeApixo],
) -> None:
    world, provider = apixo_world
    answer = await text(world, world.member, "something #refuse")
    final = await answer.wait_final()
    # The "thinking" message was private and now holds the reason: no public trace.
    assert final["ephemeral"] is True and "content policy" in final["content"]
    assert not answer.edits and len(answer.followups) == 1
    assert not any(
        not int(m.get("flags") or 0) & 64
        for m in world.fake.channel_messages.get(answer.channel_id, [])
        if int(m["id"]) not in world.fake.deleted_messages
    )
    assert not posts(world)
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 0
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    assert task.state is TaskState.FAILED and task.failure_code == "content_policy"
    assert len(provider.requests_for("create")) == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("html_503", "having trouble right now"),
        ("insufficient_credits", "out of credits"),
        ("auth", "isn't set up correctly"),
    ],
)
async def test_provider_faults_on_create_are_friendly_and_uncharged(
    apixo_world: tuple[BotWorld, FakeApixo], fault: str, expected: str
) -> None:
    world, provider = apixo_world
    provider.inject(fault)
    answer = await text(world, world.member, "a calm lake")
    await settle(answer, messages=1)
    assert answer.ephemeral and expected in answer.followups[-1]["content"]
    assert "Traceback" not in answer.all_text()
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 0 and status.guild_used_today == 0


async def test_slow_provider_still_acknowledged_within_three_seconds(
    apixo_world: tuple[BotWorld, FakeApixo],
) -> None:
    world, provider = apixo_world
    provider.inject("slow", delay=3.5)
    answer = await text(world, world.member, "a slow one")
    await answer.wait_callback()
    assert answer.first_callback_at is not None and answer.first_callback_at < 1.0
    assert not answer.late
    final = await answer.wait_final(timeout=15)
    assert "on its way" in answer.text(), final


async def test_apixo_offers_only_what_it_can_make(apixo_world: tuple[BotWorld, FakeApixo]) -> None:
    world, _ = apixo_world
    sora = world.fake.guild_commands[world.guild.id][0]
    command = next(o for o in sora["options"] if o["name"] == "text")
    params = {o["name"]: o for o in command["options"]}
    assert [c["value"] for c in params["aspect"]["choices"]] == ["landscape", "portrait"]
    assert [c["value"] for c in params["duration"]["choices"]] == [4, 8, 12]
    assert params["prompt"]["required"] is True and params["prompt"]["max_length"] == 5000


async def test_image_to_video_reads_the_attachment_by_content(world: BotWorld) -> None:
    attachment = world.fake.make_attachment("still.png", png(), content_type="image/png")
    answer = await world.fake.send_command(
        world.guild, world.member, "sora",
        world.fake.sub("image", image=attachment, prompt="make the water move"),
    )  # fmt: skip
    await answer.wait_final()
    assert "on its way" in answer.text()
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    assert task.mode.value == "image" and task.image_url == attachment["url"]


async def test_a_renamed_non_image_is_refused_and_refunded(world: BotWorld) -> None:
    attachment = world.fake.make_attachment(
        "cat.png", b"this is really a text file" * 10, content_type="image/png"
    )
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("image", image=attachment, prompt="go")
    )
    await answer.wait_final()
    # Deferred privately to read the picture: the refusal replaces the private "thinking".
    assert "isn't a PNG, JPEG or WebP image" in answer.text() and answer.ephemeral
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 0


async def test_declared_non_image_and_oversize_are_refused_before_anything(world: BotWorld) -> None:
    pdf = world.fake.make_attachment("doc.pdf", b"%PDF-1.7", content_type="application/pdf")
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("image", image=pdf, prompt="go")
    )
    await answer.wait_final()
    assert answer.callbacks[0]["type"] == 4 and answer.ephemeral
    assert "`doc.pdf` isn't a picture" in answer.text()

    big = world.fake.make_attachment("big.png", png() + b"\0" * (11 * 1024 * 1024))
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("image", image=big, prompt="go")
    )
    await answer.wait_final()
    assert "the limit is 10 MB" in answer.text() and answer.ephemeral
    assert (await world.bot.store.guild_tasks(world.guild.id)).total == 0


async def test_bot_without_attach_permission_says_so(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt="x"),
        app_permissions=SEND | EMBED | VIEW,
    )  # fmt: skip
    await answer.wait_final()
    assert "I need the **Attach Files** permission in this channel" in answer.text()
    assert answer.ephemeral


async def test_bot_missing_two_permissions_names_both_in_a_sentence(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt="x"),
        app_permissions=EMBED | VIEW,
    )  # fmt: skip
    await answer.wait_final()
    assert answer.text().startswith(
        "I need the **Send Messages** and **Attach Files** permissions in this channel to "
        "deliver videos. Ask a moderator to give me them"
    )
    assert answer.ephemeral


async def test_status_lists_own_tasks_and_hides_others(world: BotWorld) -> None:
    mine = await text(world, world.member, "my own video")
    await mine.wait_final()
    theirs = await text(world, world.moderator, "the moderator's video")
    await theirs.wait_final()
    store = world.bot.store
    (my_task,) = (await store.user_tasks(world.guild.id, int(world.member["id"]))).tasks
    (mod_task,) = (await store.user_tasks(world.guild.id, int(world.moderator["id"]))).tasks

    listing = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status")
    )
    await listing.wait_final()
    assert my_task.id in listing.text() and mod_task.id not in listing.text() and listing.ephemeral

    detail = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status", task=my_task.id.lower())
    )
    await detail.wait_final()
    assert f"Task {my_task.id}" in detail.text() and "my own video" in detail.text()

    snoop = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status", task=mod_task.id)
    )
    await snoop.wait_final()
    assert f"I can't find a task `{mod_task.id}` of yours" in snoop.text()

    moderator = await world.fake.send_command(
        world.guild, world.moderator, "sora", world.fake.sub("status", task=my_task.id),
        permissions=MANAGE_GUILD,
    )  # fmt: skip
    await moderator.wait_final()
    assert f"Task {my_task.id}" in moderator.text()

    unknown = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status", task="ZZZZZZ")
    )
    await unknown.wait_final()
    assert "I can't find a task `ZZZZZZ`" in unknown.text()


async def test_status_autocomplete_offers_only_own_tasks(world: BotWorld) -> None:
    for who, prompt in ((world.member, "sunset over hills"), (world.moderator, "other")):
        await (await text(world, who, prompt)).wait_final()
    (my_task,) = (await world.bot.store.user_tasks(world.guild.id, int(world.member["id"]))).tasks
    answer = await world.fake.send_autocomplete(
        world.guild, world.member, "sora", world.fake.sub("status", task="sun"), focused="task"
    )
    callback = await answer.wait_callback()
    choices = callback["data"]["choices"]
    assert [c["value"] for c in choices] == [my_task.id]
    assert "sunset over hills" in choices[0]["name"]


async def test_history_pages_and_permissions(world: BotWorld) -> None:
    from bot.domain import EffectiveLimits, GenerationOptions, Mode, NewTask, QuotaUnit

    alice = int(world.member["id"])
    roomy = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)
    for n in range(13):
        await world.bot.store.reserve(
            NewTask(world.guild.id, 1, alice, "demo", Mode.TEXT, f"clip {n}", GenerationOptions()),
            roomy,
        )
    page2 = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("history", page=2)
    )
    await page2.wait_final()
    assert "Page 2 of 2 · 13 videos" in page2.text() and page2.ephemeral
    assert page2.text().count("clip ") == 3

    snoop = await world.fake.send_command(
        world.guild, world.moderator, "sora", world.fake.sub("history", user=world.member)
    )
    await snoop.wait_final()
    assert "Manage Server" in snoop.text()

    allowed = await world.fake.send_command(
        world.guild, world.moderator, "sora", world.fake.sub("history", user=world.member),
        permissions=MANAGE_GUILD,
    )  # fmt: skip
    await allowed.wait_final()
    assert "alice's videos" in allowed.text() and "Page 1 of 2" in allowed.text()


async def test_allowed_channels_and_defaults(world: BotWorld) -> None:
    fake, guild = world.fake, world.guild
    studio = guild.add_text_channel("video-studio")
    added = await fake.send_command(
        guild, world.moderator, "sora", fake.sub("settings", "channel-add", channel=studio),
        permissions=MANAGE_GUILD,
    )  # fmt: skip
    await added.wait_final()
    assert f"Added <#{studio['id']}>" in added.text()

    elsewhere = await text(world, world.member, "a fox")
    await elsewhere.wait_final()
    assert f"Videos can be made in <#{studio['id']}> only" in elsewhere.text()
    assert elsewhere.ephemeral

    there = await fake.send_command(
        guild, world.member, "sora", fake.sub("text", prompt="a fox"), channel_id=int(studio["id"])
    )
    await there.wait_final()
    assert "on its way" in there.text()

    defaults = await fake.send_command(
        guild,
        world.moderator,
        "sora",
        fake.sub("settings", "defaults", aspect="portrait", duration=10),
        permissions=MANAGE_GUILD,
    )
    await defaults.wait_final()
    assert "portrait · 12 s · standard" in defaults.text()  # 10 s is not offered: nearest

    member_try = await fake.send_command(
        guild, world.member, "sora", fake.sub("settings", "channel-remove", channel=studio)
    )
    await member_try.wait_final()
    assert "Manage Server" in member_try.text()
    assert await world.bot.moderation.allowed_channels(guild.id) == frozenset({int(studio["id"])})


async def test_image_and_text_in_dm_are_refused(world: BotWorld) -> None:
    answer = await world.fake.send_command(
        None, world.member, "sora", world.fake.sub("text", prompt="x")
    )
    await answer.wait_final()
    assert "work in servers only" in answer.text()


async def test_status_with_a_dozen_unfinished_tasks_lists_them(world: BotWorld) -> None:
    from bot.domain import EffectiveLimits, GenerationOptions, Mode, NewTask, QuotaUnit

    alice = int(world.member["id"])
    roomy = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)
    for n in range(12):
        await world.bot.store.reserve(
            NewTask(
                world.guild.id, 1, alice, "demo", Mode.TEXT,
                f"clip {n} " + "*_[]<>#`|~\\" * 500, GenerationOptions(),
            ),
            roomy,
        )  # fmt: skip
    listing = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status")
    )
    await listing.wait_final()
    body = listing.text()
    assert "Something went wrong" not in body and listing.ephemeral
    assert "In progress" in body
    shown = body.count("clip ")
    assert shown >= 5 and f"+{12 - shown} more" in body  # the count stays honest
    assert body.count("usually ready in about a minute") == shown  # the demo takes seconds
