"""End to end: a submitted job is followed to the end and posted exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import NotifyState, Task, TaskState
from tests.conftest import BotWorld, make_settings, running_world, start_bot, stop_bot
from tests.fakes import FakeDiscord, FakeInteraction
from tests.fakes.providers import FakeApixo
from tests.helpers import eventually, posts

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}


async def only_task(world: BotWorld) -> Task:
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    return task


async def submit(world: BotWorld, prompt: str, **options: Any) -> FakeInteraction:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt, **options)
    )
    await answer.wait_final()
    assert "on its way" in answer.text(), answer.all_text()
    return answer


@pytest.fixture
async def demo_world(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotWorld]:
    async with running_world(fake_discord, tmp_path, demo_generation_seconds=0.6, **FAST) as world:
        yield world


async def test_success_is_posted_once_with_the_video_attached(demo_world: BotWorld) -> None:
    world = demo_world
    answer = await submit(world, "a lighthouse at dusk")
    (post,) = await eventually(lambda: posts(world))
    task = await only_task(world)
    assert task.state is TaskState.SUCCEEDED
    assert task.notify_state is NotifyState.POSTED and task.result_message_id == int(post["id"])
    assert post["nonce"] == f"sora-{task.id}"
    assert post["content"] == f"<@{world.member['id']}> your video is ready: *a lighthouse at dusk*"
    assert post["attachments"][0]["filename"] == f"sora-{task.id}.mp4"
    embed = post["embeds"][0]
    # The outcome is said once, in the content; the embed doesn't repeat it as a title.
    assert not embed.get("title") and "a lighthouse at dusk" in embed["description"]
    assert embed["footer"]["text"] == f"Task {task.id}"
    labels = [c["label"] for row in post["components"] for c in row["components"]]
    assert labels == ["Again", "Delete"]

    sent = next(
        r for r in world.fake.requests
        if r.method == "POST" and r.path.endswith("/messages") and r.json and r.json.get("nonce")
    )  # fmt: skip
    assert sent.json["enforce_nonce"] is True
    assert sent.json["allowed_mentions"] == {
        "parse": [],
        "users": [world.member["id"]],
        "replied_user": False,
    } or [str(u) for u in sent.json["allowed_mentions"]["users"]] == [world.member["id"]]

    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 1  # charged once, and final
    await asyncio.sleep(0.5)
    assert len(posts(world)) == 1
    # While the token lives, the original response showed progress...
    progress_titles = [e["embeds"][0]["title"] for e in answer.edits if e.get("embeds")]
    assert any("Generating" in t for t in progress_titles), answer.edits
    # ...and now points at the posted message.
    await eventually(
        lambda: any("Your video is ready" in (e.get("content") or "") for e in answer.edits)
    )


async def test_failure_is_explained_and_refunded(demo_world: BotWorld) -> None:
    world = demo_world
    await submit(world, "something #fail")
    (post,) = await eventually(lambda: posts(world))
    embed = post["embeds"][0]
    assert post["content"] == (
        f"<@{world.member['id']}> I couldn't make your video: it was refused by the content "
        "filter. Nothing was charged."
    )
    assert not embed.get("title")
    assert "#fail" not in str(post)  # a prompt refused for content is never shown publicly
    assert "refunded" not in embed["description"]  # said once, in the content
    assert "rephrasing" in embed["description"]
    assert not post["attachments"]
    labels = [c["label"] for row in post["components"] for c in row["components"]]
    assert labels == ["Try again"]
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 0 and status.guild_used_today == 0


async def test_too_big_to_attach_is_linked(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    async with FakeApixo(generation_seconds=0.3) as provider:
        provider.video_bytes = b"\x00\x00\x00\x18ftypmp42" + b"\0" * 5000
        async with running_world(
            fake_discord, tmp_path, **FAST, **provider.settings_overrides()
        ) as world:
            answer = await world.fake.send_command(
                world.guild, world.member, "sora", world.fake.sub("text", prompt="big one"),
                attachment_size_limit=1024,
            )  # fmt: skip
            await answer.wait_final()
            (post,) = await eventually(lambda: posts(world))
            task = await only_task(world)
    assert not post["attachments"]
    fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
    assert (
        fields["Video"]
        == f"[Open the video]({provider.media_url(task.provider_task_id.split(':')[-1])})"
    )


async def test_provider_faults_while_polling_are_ridden_out(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with FakeApixo(generation_seconds=0.3) as provider:
        async with running_world(
            fake_discord, tmp_path, **FAST, **provider.settings_overrides()
        ) as world:
            provider.inject("html_502", times=3, path="statusTask")
            provider.inject("truncated_json", times=2, path="statusTask")
            await submit(world, "through the storm")
            (post,) = await eventually(lambda: posts(world), timeout=20)
            assert "your video is ready" in post["content"]
            assert post["attachments"]
            assert len(provider.requests_for("create")) == 1


async def test_restart_mid_task_posts_exactly_once(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    guild = fake_discord.add_guild("Restarts")
    alice = fake_discord.add_user("alice")
    guild.add_member(alice)
    settings = make_settings(
        fake_discord, tmp_path, discord_guild_ids=[guild.id], demo_generation_seconds=1.5, **FAST
    )
    bot, runner = await start_bot(settings, fake_discord)
    answer = await fake_discord.send_command(
        guild, alice, "sora", fake_discord.sub("text", prompt="survive a restart")
    )
    await answer.wait_final()
    await stop_bot(bot, runner)  # killed while the video is being made
    channel = int(guild.channels[0]["id"])
    assert not [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]

    bot, runner = await start_bot(settings, fake_discord)  # a new process, the same database
    try:
        await eventually(
            lambda: [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]
        )
        await asyncio.sleep(0.6)
        delivered = [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]
        assert len(delivered) == 1
        (task,) = (await bot.store.guild_tasks(guild.id)).tasks
        assert task.state is TaskState.SUCCEEDED and task.notify_state is NotifyState.POSTED
    finally:
        await stop_bot(bot, runner)


@pytest.mark.parametrize("nonce_window_passed", [False, True])
async def test_crash_between_posting_and_recording_does_not_post_twice(
    fake_discord: FakeDiscord, tmp_path: Path, nonce_window_passed: bool
) -> None:
    """The post reached Discord but the bot died before writing it down."""
    guild = fake_discord.add_guild("Crashes")
    alice = fake_discord.add_user("alice")
    guild.add_member(alice)
    settings = make_settings(
        fake_discord, tmp_path, discord_guild_ids=[guild.id], demo_generation_seconds=0.3, **FAST
    )
    bot, runner = await start_bot(settings, fake_discord)
    answer = await fake_discord.send_command(
        guild, alice, "sora", fake_discord.sub("text", prompt="exactly once")
    )
    await answer.wait_final()
    channel = int(guild.channels[0]["id"])

    def bot_posts() -> list[dict[str, Any]]:
        return [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]

    await eventually(bot_posts)
    (task,) = (await bot.store.guild_tasks(guild.id)).tasks
    await stop_bot(bot, runner)
    # Rewind the record to "posting", as if the process died right after Discord answered.
    import sqlite3

    with sqlite3.connect(settings.sqlite_path) as db:  # type: ignore[arg-type]
        db.execute(
            "UPDATE tasks SET notify_state = 'posting', result_message_id = NULL WHERE id = ?",
            (task.id,),
        )
    if nonce_window_passed:
        fake_discord.forget_nonces()  # only the channel history can tell now
    bot, runner = await start_bot(settings, fake_discord)
    try:
        recovered = await eventually(lambda: _posted(bot.store, task.id))
        assert recovered.result_message_id == int(bot_posts()[0]["id"])
        assert len(bot_posts()) == 1
    finally:
        await stop_bot(bot, runner)


async def _posted(store: Any, task_id: str) -> Task | None:
    task = await store.get_task(task_id)
    return task if task and task.notify_state is NotifyState.POSTED else None


async def test_channel_closed_to_the_bot_falls_back_to_dm(demo_world: BotWorld) -> None:
    world = demo_world
    world.fake.fail_next(
        "POST", r"/channels/\d+/messages$", 403,
        body={"message": "Missing Permissions", "code": 50013},
    )  # fmt: skip
    await submit(world, "a quiet forest")
    dms = await eventually(lambda: world.fake.dm_messages(int(world.member["id"])))
    assert "your video is ready (I couldn't post in <#" in dms[0]["content"]
    assert dms[0]["attachments"]
    task = await eventually(lambda: _state(world, NotifyState.DIRECT_MESSAGED))
    assert task.result_message_id == int(dms[0]["id"])


async def _state(world: BotWorld, state: NotifyState) -> Task | None:
    task = await only_task(world)
    return task if task.notify_state is state else None


async def test_discord_rate_limit_on_post_is_retried_not_duplicated(demo_world: BotWorld) -> None:
    world = demo_world
    world.fake.fail_next("POST", r"/channels/\d+/messages$", 429, retry_after=0.2)
    await submit(world, "patience")
    await eventually(lambda: posts(world))
    await asyncio.sleep(0.5)
    assert len(posts(world)) == 1


async def test_expired_interaction_token_still_delivers(demo_world: BotWorld) -> None:
    world = demo_world
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt="late bloomer")
    )
    await answer.wait_final()
    answer.expire()  # edits of the original response now fail like a dead token
    (post,) = await eventually(lambda: posts(world))
    assert "your video is ready" in post["content"]


async def test_a_task_that_never_finishes_expires_with_refund(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with running_world(
        fake_discord, tmp_path, demo_generation_seconds=600, task_max_age_minutes=0.01, **FAST
    ) as world:
        await submit(world, "forever")
        (post,) = await eventually(lambda: posts(world))
        task = await only_task(world)
        status = await world.bot.store.quota_status(
            world.guild.id, int(world.member["id"]), world.settings.default_limits
        )
    assert task.state is TaskState.EXPIRED
    assert "it took far too long" in post["content"] and "Nothing was charged." in post["content"]
    assert status.user_used_today == 0


async def test_again_button_reruns_for_whoever_clicks_and_delete_is_guarded(
    demo_world: BotWorld,
) -> None:
    world = demo_world
    await submit(world, "fireworks over a harbour")
    (post,) = await eventually(lambda: posts(world))
    task = await only_task(world)

    again = await world.fake.send_component(
        world.guild, world.moderator, post, f"sora:again:{task.id}"
    )
    await again.wait_final()
    assert "on its way" in again.text()
    mod_tasks = await world.bot.store.user_tasks(world.guild.id, int(world.moderator["id"]))
    (rerun,) = mod_tasks.tasks
    assert rerun.prompt == task.prompt and rerun.options == task.options
    mod_quota = await world.bot.store.quota_status(
        world.guild.id, int(world.moderator["id"]), world.settings.default_limits
    )
    assert mod_quota.user_used_today == 1  # charged to whoever clicked

    stranger = world.fake.add_user("bob")
    world.guild.add_member(stranger)
    refused = await world.fake.send_component(world.guild, stranger, post, f"sora:delete:{task.id}")
    await refused.wait_final()
    assert "Only the member who asked for this video" in refused.text() and refused.ephemeral
    assert int(post["id"]) not in world.fake.deleted_messages

    deleted = await world.fake.send_component(
        world.guild, world.member, post, f"sora:delete:{task.id}"
    )
    await deleted.wait_final()
    assert f"Deleted the video for task `{task.id}`" in deleted.text()
    assert int(post["id"]) in world.fake.deleted_messages


async def test_too_big_without_link_or_listener_says_why(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    from tests.fakes.providers import FakeOpenAI

    async with FakeOpenAI(generation_seconds=0.2) as provider:
        provider.video_bytes = b"\x00\x00\x00\x18ftypmp42" + b"\1" * 4000
        async with running_world(
            fake_discord, tmp_path, **FAST, **provider.settings_overrides()
        ) as world:
            answer = await world.fake.send_command(
                world.guild, world.member, "sora", world.fake.sub("text", prompt="big"),
                attachment_size_limit=1024,
            )  # fmt: skip
            await answer.wait_final()
            (post,) = await eventually(lambda: posts(world))
    fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
    assert "larger than this server's upload limit" in fields["Video"]
    assert "no public web address (WEBHOOK_PUBLIC_URL)" in fields["Video"]
    assert not post["attachments"]
