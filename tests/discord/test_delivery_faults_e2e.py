"""End to end: Discord failing while a result is posted never loses or doubles it.

The real discord.py client against the fake: 5xx answers and dropped connections on the
result post are retried with backoff through the look-then-send-with-the-nonce path; a
result that still cannot be posted goes by DM, else stays in `/sora status`; Delete
removes the video itself; and the notifier keeps nothing per task once a delivery ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from bot.discord.retries import RetryPolicy
from bot.domain import NotifyState, Task
from bot.media import MediaHost
from tests.conftest import (
    MANAGE_GUILD,
    BotWorld,
    make_settings,
    running_world,
    start_bot,
    stop_bot,
)
from tests.fakes import FakeDiscord, FakeInteraction
from tests.fakes.providers import FakeApixo, FakeOpenAI
from tests.helpers import eventually, free_port, posts

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
# Retries a test can wait for; the production policy starts at 2 s and goes on for 15 min.
QUICK = RetryPolicy(first_delay=0.05, max_delay=0.2, window=60)


@contextlib.asynccontextmanager
async def world_with(
    fake: FakeDiscord, tmp_path: Path, policy: RetryPolicy = QUICK, **overrides: Any
) -> AsyncIterator[BotWorld]:
    """A running bot whose notifier retries on `policy`, closed before the bot stops
    (as `SoraBot.close` is meant to), so no retry outlives the test."""
    async with running_world(fake, tmp_path, **{**FAST, **overrides}) as world:
        world.bot.notifier.retry_policy = policy
        try:
            yield world
        finally:
            await world.bot.notifier.close()


def channel_route(world: BotWorld) -> str:
    """Posts in the task's channel only (a DM is a channel too, on the same route)."""
    return rf"^/channels/{world.guild.channels[0]['id']}/messages$"


def dm_route(world: BotWorld) -> str:
    dm = world.fake.dm_channel_for(int(world.member["id"]))
    return rf"^/channels/{dm['id']}/messages$"


async def only_task(world: BotWorld) -> Task:
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    return task


async def in_state(world: BotWorld, state: NotifyState) -> Task | None:
    task = await only_task(world)
    return task if task.notify_state is state else None


async def submit(world: BotWorld, prompt: str, **command: Any) -> FakeInteraction:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt), **command
    )
    await answer.wait_final()
    assert "on its way" in answer.text(), answer.all_text()
    return answer


def footers(answer: FakeInteraction) -> list[str]:
    """Footers the interaction's own response has shown (its progress edits)."""
    return [
        (e["embeds"][0].get("footer") or {}).get("text", "")
        for e in answer.edits
        if e.get("embeds")
    ]


async def nothing_held(world: BotWorld) -> None:
    """The notifier keeps no per-task state once deliveries have ended (no leak)."""
    await eventually(lambda: not world.bot.notifier.tracked_tasks(), timeout=5)


async def status_text(world: BotWorld, task_id: str | None = None) -> str:
    options = {"task": task_id} if task_id else {}
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status", **options)
    )
    await answer.wait_final()
    return answer.text()


# A 503 (which discord.py never retries) on the result post


async def test_503_on_the_post_is_retried_and_posted_once(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with world_with(fake_discord, tmp_path, demo_generation_seconds=0.6) as world:
        world.fake.fail_next("POST", channel_route(world), 503)
        answer = await submit(world, "a storm at sea")
        (post,) = await eventually(lambda: posts(world))
        task = await eventually(lambda: in_state(world, NotifyState.POSTED))
        # The interaction's response showed "Task <id> · ..." when the retry looked
        # through the channel, and was not taken for the result.
        assert any(f.startswith(f"Task {task.id}") for f in footers(answer)), answer.edits
        assert task.result_message_id == int(post["id"])
        assert "your video is ready" in post["content"]
        attempts = world.fake.requests_matching("POST", channel_route(world))
        assert [r.status for r in attempts] == [503, 200]
        await asyncio.sleep(0.5)
        assert len(posts(world)) == 1
        await eventually(lambda: any(post["id"] in (e.get("content") or "") for e in answer.edits))
        await nothing_held(world)


async def test_a_post_interrupted_before_a_restart_is_not_confused_with_the_progress_message(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """The store says `posting`, nothing was posted, and the channel's history has the
    interaction's response with "Task <id>" in its footer: the result must still go out."""
    guild = fake_discord.add_guild("Outage")
    alice = fake_discord.add_user("alice")
    guild.add_member(alice)
    settings = make_settings(
        fake_discord, tmp_path, discord_guild_ids=[guild.id], demo_generation_seconds=0.6, **FAST
    )
    channel = int(guild.channels[0]["id"])
    route = rf"^/channels/{channel}/messages$"

    def bot_posts() -> list[dict[str, Any]]:
        return [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]

    bot, runner = await start_bot(settings, fake_discord)
    bot.notifier.retry_policy = RetryPolicy(first_delay=60, max_delay=60, window=900)
    fake_discord.fail_next("POST", route, 503, times=1000)
    answer = await fake_discord.send_command(
        guild, alice, "sora", fake_discord.sub("text", prompt="lost in the outage")
    )
    await answer.wait_final()
    await eventually(lambda: [r for r in fake_discord.requests_matching("POST", route) if r.status])
    (task,) = (await bot.store.guild_tasks(guild.id)).tasks
    await bot.notifier.close()
    await stop_bot(bot, runner)
    assert task.notify_state is NotifyState.POSTING and not bot_posts()
    assert answer.original is not None
    footer = answer.original["embeds"][0]["footer"]["text"]
    assert footer.startswith(f"Task {task.id}")  # what the old history scan matched

    fake_discord.clear_faults()  # Discord is back
    bot, runner = await start_bot(settings, fake_discord)
    try:
        (post,) = await eventually(bot_posts)
        delivered = await eventually(lambda: _posted(bot.store, task.id))
        assert delivered.result_message_id == int(post["id"])
        await asyncio.sleep(0.3)
        assert len(bot_posts()) == 1
    finally:
        await bot.notifier.close()
        await stop_bot(bot, runner)


async def _posted(store: Any, task_id: str) -> Task | None:
    task = await store.get_task(task_id)
    return task if task and task.notify_state is NotifyState.POSTED else None


# Discord created the message, then the answer was lost: exactly one must remain


@pytest.mark.parametrize(
    ("fault", "history_readable", "sends"),
    [
        ("500", True, 2),  # discord.py itself sends the same request again after 1 s
        ("503", False, 2),  # our retry; the bot may not read the channel's history
        ("drop", False, 2),  # the connection breaks after Discord created the message
        ("drop", True, 1),  # ... and the history shows the message: nothing is re-sent
    ],
)
async def test_a_post_created_then_answered_with_a_failure_stays_single(
    fake_discord: FakeDiscord, tmp_path: Path, fault: str, history_readable: bool, sends: int
) -> None:
    """Fails if the result post goes out without its nonce."""
    async with world_with(fake_discord, tmp_path, demo_generation_seconds=0.3) as world:
        route = channel_route(world)
        if fault == "drop":
            world.fake.drop_next("POST", route, after=True)
        else:
            world.fake.fail_next("POST", route, int(fault), after=True)
        if not history_readable:  # no Read Message History: only the nonce can tell
            world.fake.fail_next(
                "GET", route, 403, times=1000, body={"message": "Missing Access", "code": 50001}
            )
        await submit(world, "only one of me")
        task = await eventually(lambda: in_state(world, NotifyState.POSTED), timeout=15)
        await asyncio.sleep(0.5)
        (post,) = posts(world)
        assert task.result_message_id == int(post["id"])
        attempts = world.fake.requests_matching("POST", route)
        assert attempts[0].injected and len(attempts) == sends
        assert {r.json["nonce"] for r in attempts} == {f"sora-{task.id}"}
        await nothing_held(world)


# Discord down for longer than the retry window


async def test_persistent_5xx_past_the_window_goes_by_dm(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    policy = RetryPolicy(first_delay=0.05, max_delay=0.2, window=1.0)
    async with world_with(fake_discord, tmp_path, policy, demo_generation_seconds=0.3) as world:
        route = channel_route(world)
        world.fake.fail_next("POST", route, 503, times=1000)
        answer = await submit(world, "through the outage")
        task = await eventually(lambda: in_state(world, NotifyState.DIRECT_MESSAGED), timeout=15)
        (dm,) = world.fake.dm_messages(int(world.member["id"]))
        assert task.result_message_id == int(dm["id"])
        assert "your video is ready (I couldn't post in <#" in dm["content"]
        assert dm["attachments"]
        assert not dm.get("components")  # Again and Delete work in the server only
        attempts = world.fake.requests_matching("POST", route)
        assert len(attempts) >= 3 and all(r.status == 503 for r in attempts)
        assert not posts(world)
        await eventually(lambda: any("sent it to you in a DM" in (e.get("content") or "")
                                     for e in answer.edits))  # fmt: skip
        await nothing_held(world)


async def test_a_post_discord_refuses_outright_is_kept_for_status_not_retried_forever(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """A 400 about the message itself is an answer, not a hiccup: sending the same post
    again every half minute would never work, so the result waits in `/sora status`."""
    async with world_with(fake_discord, tmp_path, demo_generation_seconds=0.3) as world:
        route = channel_route(world)
        world.fake.fail_next(
            "POST", route, 400, times=1000,
            body={"message": "Invalid Form Body", "code": 50035},
        )  # fmt: skip
        answer = await submit(world, "a refused post")
        await eventually(lambda: in_state(world, NotifyState.UNDELIVERABLE))
        await eventually(lambda: any("/sora status" in (e.get("content") or "")
                                     for e in answer.edits))  # fmt: skip
        sent = len(world.fake.requests_matching("POST", route))
        await world.bot.tracker.run_once()  # a redelivery pass finds nothing to send
        world.bot.tracker._next_redelivery = world.bot.tracker._clock()
        await world.bot.tracker.run_once()
        await world.bot.tracker.drain()
        assert len(world.fake.requests_matching("POST", route)) == sent == 1
        await nothing_held(world)


@pytest.mark.parametrize("dm_fault", ["closed", "503"])
async def test_when_the_dm_fails_too_the_result_waits_in_status(
    fake_discord: FakeDiscord, tmp_path: Path, dm_fault: str
) -> None:
    policy = RetryPolicy(first_delay=0.05, max_delay=0.2, window=0.5)
    async with world_with(fake_discord, tmp_path, policy, demo_generation_seconds=0.3) as world:
        world.fake.fail_next("POST", channel_route(world), 503, times=1000)
        if dm_fault == "closed":
            world.fake.dms_closed.add(int(world.member["id"]))
        else:
            world.fake.fail_next("POST", dm_route(world), 503, times=1000)
        answer = await submit(world, "nobody hears it")
        task = await eventually(lambda: in_state(world, NotifyState.UNDELIVERABLE), timeout=15)
        assert not posts(world) and not world.fake.dm_messages(int(world.member["id"]))
        listing = await status_text(world)
        assert task.id in listing and "✅ Done" in listing
        assert f"Task {task.id}" in await status_text(world, task.id)
        assert any(f"/sora status {task.id}" in (e.get("content") or "") for e in answer.edits)
        await asyncio.sleep(0.3)
        assert (await only_task(world)).notify_state is NotifyState.UNDELIVERABLE
        await nothing_held(world)


async def test_the_periodic_redelivery_does_not_cut_the_backoff_short(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """The tracker calls `deliver` for undelivered tasks every 30 s; a scheduled retry
    owns the task until it runs, so extra calls neither post nor duplicate."""
    policy = RetryPolicy(first_delay=2.0, max_delay=2.0, window=60)
    async with world_with(fake_discord, tmp_path, policy, demo_generation_seconds=0.3) as world:
        route = channel_route(world)
        world.fake.fail_next("POST", route, 503)
        await submit(world, "not so fast")
        await eventually(lambda: world.fake.requests_matching("POST", route))
        task = await only_task(world)
        for _ in range(3):
            await world.bot.notifier.deliver(task)
        assert len(world.fake.requests_matching("POST", route)) == 1
        assert task.id in world.bot.notifier.tracked_tasks()
        await eventually(lambda: posts(world))
        assert len(world.fake.requests_matching("POST", route)) == 2
        await nothing_held(world)


async def test_close_cancels_scheduled_retries(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    policy = RetryPolicy(first_delay=60, max_delay=60, window=900)
    async with world_with(fake_discord, tmp_path, policy, demo_generation_seconds=0.3) as world:
        world.fake.fail_next("POST", channel_route(world), 503, times=1000)
        await submit(world, "bedtime")
        await eventually(lambda: world.bot.notifier.tracked_tasks())
        await eventually(lambda: world.fake.requests_matching("POST", channel_route(world)))
        await world.bot.notifier.close()
        assert not world.bot.notifier.tracked_tasks()
        assert (await only_task(world)).notify_state is NotifyState.POSTING  # for the next start


# The notifier's per-task maps


async def test_remember_after_the_delivery_keeps_nothing(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """A task can be delivered before its announcement registers the interaction."""
    async with world_with(fake_discord, tmp_path, demo_generation_seconds=0.3) as world:
        await submit(world, "quick one")
        await eventually(lambda: in_state(world, NotifyState.POSTED))
        await nothing_held(world)
        task = await only_task(world)
        world.bot.notifier.remember(task.id, cast(Any, object()))
        await nothing_held(world)


async def test_dm_delivery_of_a_closed_channel_keeps_nothing(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with world_with(fake_discord, tmp_path, demo_generation_seconds=0.3) as world:
        world.fake.fail_next(
            "POST", channel_route(world), 403,
            body={"message": "Missing Permissions", "code": 50013},
        )  # fmt: skip
        answer = await submit(world, "a quiet forest")
        await eventually(lambda: in_state(world, NotifyState.DIRECT_MESSAGED))
        await eventually(lambda: any("DM" in (e.get("content") or "") for e in answer.edits))
        await nothing_held(world)


# Delete removes the video, not only the post


async def test_delete_removes_the_self_hosted_file_and_the_stored_link(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    port = free_port()
    listener = {
        "webhook_listen": f"127.0.0.1:{port}",
        "webhook_public_url": f"http://127.0.0.1:{port}",
    }
    async with FakeOpenAI(generation_seconds=0.2) as provider:
        provider.video_bytes = b"\x00\x00\x00\x18ftypmp42" + b"\1" * 4000
        async with world_with(
            fake_discord, tmp_path, **listener, **provider.settings_overrides()
        ) as world:
            await submit(world, "too big to attach", attachment_size_limit=1024)
            (post,) = await eventually(lambda: posts(world))
            fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
            link = fields["Video"].split("(", 1)[1].rstrip(")")
            assert link.startswith(f"http://127.0.0.1:{port}/media/")
            host = world.bot.media_host
            assert host is not None
            file = host.folder / link.rsplit("/", 1)[1]
            assert file.is_file()
            task = await eventually(lambda: in_state(world, NotifyState.POSTED))
            assert task.result_url == link  # stored, so /sora status shows it too
            assert "Go to the video" in await status_text(world, task.id)

            deleted = await world.fake.send_component(
                world.guild, world.moderator, post, f"sora:delete:{task.id}",
                permissions=MANAGE_GUILD,
            )  # fmt: skip
            await deleted.wait_final()
            assert f"Deleted the video for task `{task.id}`" in deleted.text()
            assert int(post["id"]) in world.fake.deleted_messages
            assert not file.exists()
            async with httpx.AsyncClient() as client:
                assert (await client.get(link)).status_code == 404
            assert (await only_task(world)).result_url is None
            shown = await status_text(world, task.id)
            assert "Go to the video" not in shown and "Open the video" not in shown


async def test_delete_forgets_a_providers_link(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    async with FakeApixo(generation_seconds=0.2) as provider:
        async with world_with(fake_discord, tmp_path, **provider.settings_overrides()) as world:
            await submit(world, "a provider-hosted video")
            (post,) = await eventually(lambda: posts(world))
            task = await eventually(lambda: in_state(world, NotifyState.POSTED))
            assert task.result_url
            deleted = await world.fake.send_component(
                world.guild, world.member, post, f"sora:delete:{task.id}"
            )
            await deleted.wait_final()
            assert int(post["id"]) in world.fake.deleted_messages
            assert (await only_task(world)).result_url is None


def test_media_host_removes_only_its_own_files(tmp_path: Path) -> None:
    host = MediaHost(tmp_path / "media", "https://bot.example/")
    name = "A" * 43 + ".mp4"
    host.folder.mkdir()
    (host.folder / name).write_bytes(b"video")
    (tmp_path / "bot.sqlite3").write_bytes(b"db")
    assert not host.remove(f"https://cdn.example/media/{name}")  # someone else's
    assert not host.remove("https://bot.example/media/../bot.sqlite3")
    assert not host.remove("../bot.sqlite3")
    assert (host.folder / name).exists() and (tmp_path / "bot.sqlite3").exists()
    assert host.remove(f"https://bot.example/media/{name}")
    assert not (host.folder / name).exists()
    assert not host.remove(name)  # already gone
