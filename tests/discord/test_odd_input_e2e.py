"""End to end: odd input gets a clear, private answer and costs nothing; what is echoed in
public is the member's words as plain text.

Every refusal about a member's own picture (empty, not a picture, truncated, too many
pixels, animated) must be private and leave no public message: the picture is read while
only the member sees "thinking...", and quota is reserved only once it has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import BotWorld, running_world
from tests.fakes import EPHEMERAL, FakeDiscord, FakeInteraction
from tests.helpers import eventually, posts
from tests.pictures import animated, png_claiming, still

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def demo_world(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotWorld]:
    """Videos finish in well under a second, so results are posted during the test."""
    async with running_world(fake_discord, tmp_path, demo_generation_seconds=0.6, **FAST) as world:
        yield world


def is_private(message: dict[str, Any]) -> bool:
    return bool(int(message.get("flags") or 0) & EPHEMERAL)


def public_messages(answer: FakeInteraction) -> list[dict[str, Any]]:
    """What the interaction left in the channel for everyone to see."""
    return [
        m for mid, m in answer.messages.items() if mid not in answer.deleted and not is_private(m)
    ]


async def animate(
    world: BotWorld, attachment: dict[str, Any], prompt: str = "make it move"
) -> FakeInteraction:
    return await world.fake.send_command(
        world.guild, world.member, "sora",
        world.fake.sub("image", image=attachment, prompt=prompt),
    )  # fmt: skip


async def assert_private_and_uncharged(world: BotWorld, answer: FakeInteraction) -> None:
    assert answer.ephemeral, answer.all_text()
    assert all(
        int((c.get("data") or {}).get("flags") or 0) & EPHEMERAL for c in answer.callbacks
    ), answer.callbacks
    assert public_messages(answer) == [] and posts(world) == []
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    assert status.user_used_today == 0 and status.guild_used_today == 0
    assert (await world.bot.store.guild_tasks(world.guild.id)).total == 0  # nothing reserved


@pytest.mark.parametrize(
    "prompt",
    ["\u200b\u200d \u2060\ufeff", "\u3164\u3164", "\u2800 \u034f", "\u00ad\u200e\u180e\u2061"],
    ids=["zero-width", "hangul-filler", "braille-blank", "format-characters"],
)
async def test_an_invisible_prompt_is_refused_privately_and_uncharged(
    world: BotWorld, prompt: str
) -> None:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
    )
    await answer.wait_final()
    assert "the prompt is empty" in answer.text()
    assert answer.callbacks[0]["type"] == 4  # refused at once, before anything was reserved
    await assert_private_and_uncharged(world, answer)


@pytest.mark.parametrize(
    ("filename", "data", "content_type", "expected"),
    [
        ("empty.png", b"", "image/png", "That image is empty"),
        ("cat.png", b"this is really a text file\n" * 20, "image/png", "isn't a PNG, JPEG"),
        ("cut.png", still()[:-30], "image/png", "looks damaged"),
        ("bomb.png", png_claiming(6000, 5000), "image/png", "6000x5000 pixels"),
        ("party.gif", animated("GIF"), "image/gif", "That picture is animated"),
    ],
    ids=["zero-bytes", "not-a-picture", "truncated", "too-many-pixels", "animated-gif"],
)
async def test_a_bad_picture_is_refused_privately_leaving_nothing_public(
    world: BotWorld, filename: str, data: bytes, content_type: str, expected: str
) -> None:
    attachment = world.fake.make_attachment(filename, data, content_type=content_type)
    answer = await animate(world, attachment)
    await answer.wait_final()
    assert expected in answer.text()
    await assert_private_and_uncharged(world, answer)


async def test_a_good_picture_is_checked_privately_then_announced_publicly(
    demo_world: BotWorld,
) -> None:
    world = demo_world
    attachment = world.fake.make_attachment("still.png", still(), content_type="image/png")
    answer = await animate(world, attachment, "make the water move")
    final = await answer.wait_final()
    # The private "thinking..." became a private confirmation...
    assert answer.callbacks[0]["type"] == 5 and final["ephemeral"]
    assert final["content"].startswith("✅ Your video is on its way")
    # ...and the announcement is a separate public message that mentions the member.
    (announcement,) = await eventually(lambda: public_messages(answer))
    assert announcement["content"] == f"<@{world.member['id']}>"
    assert announcement["embeds"][0]["title"] == "🎬 Your video is on its way"
    assert "make the water move" in announcement["embeds"][0]["description"]
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    assert task.mode.value == "image" and task.image_url == attachment["url"]
    # The result is posted in the channel; the requester's private line points to it.
    (post,) = await eventually(lambda: posts(world))
    assert post["embeds"][0]["footer"]["text"] == f"Task {task.id}"
    await eventually(lambda: post["id"] in (answer.original or {}).get("content", ""))
    assert answer.original is not None and is_private(answer.original)


async def test_again_on_an_image_task_reads_the_picture_privately_too(
    demo_world: BotWorld,
) -> None:
    world = demo_world
    attachment = world.fake.make_attachment("still.png", still(), content_type="image/png")
    await (await animate(world, attachment)).wait_final()
    (post,) = await eventually(lambda: posts(world))
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks

    again = await world.fake.send_component(
        world.guild, world.moderator, post, f"sora:again:{task.id}"
    )
    final = await again.wait_final()
    assert final["ephemeral"] and final["content"].startswith("✅ Your video is on its way")
    (announcement,) = await eventually(lambda: public_messages(again))
    assert announcement["embeds"][0]["title"] == "🎬 Your video is on its way"

    # The stored picture is no longer a picture: the refusal is private and free.
    world.fake.attachment_data[int(attachment["id"])] = b"not a picture any more" * 10
    refused = await world.fake.send_component(
        world.guild, world.moderator, post, f"sora:again:{task.id}"
    )
    await refused.wait_final()
    assert "isn't a PNG, JPEG or WebP image" in refused.text() and refused.ephemeral
    assert public_messages(refused) == []
    moderator = int(world.moderator["id"])
    assert (await world.bot.store.user_tasks(world.guild.id, moderator)).total == 1
    status = await world.bot.store.quota_status(
        world.guild.id, moderator, world.settings.default_limits
    )
    assert status.user_used_today == 1  # the first Again only


async def test_prompts_are_echoed_as_plain_text_with_inert_mentions(demo_world: BotWorld) -> None:
    world = demo_world
    prompt = "# HEADING [click](https://evil) and [b](https://evil) @everyone <@123> **bold**"
    shown = (
        "\\# HEADING \\[click\\](https://evil) and \\[b\\](https://evil) "
        "@\u200beveryone \\<@123\\> \\*\\*bold\\*\\*"
    )
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
    )
    final = await answer.wait_final()
    (card,) = await answer.wait_followups(1)
    assert card["embeds"][0]["description"] == f"> {shown}"
    (post,) = await eventually(lambda: posts(world))
    assert post["embeds"][0]["description"] == f"> {shown}"
    assert post["mention_everyone"] is False and final["mention_everyone"] is False
    assert "\\# HEADING \\[click\\]" in post["content"] and "@everyone" not in post["content"]
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    assert task.prompt == prompt  # stored and sent as typed; only the echo is escaped


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A stand-in for Discord's CDN that misbehaves as `handler` does."""
    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def hosted(world: BotWorld, base: str, name: str) -> dict[str, Any]:
    attachment = world.fake.make_attachment(name, still(), content_type="image/png")
    attachment["url"] = attachment["proxy_url"] = f"{base}/{name}"
    return attachment


async def test_a_dripping_image_download_is_cut_by_a_total_deadline(world: BotWorld) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(still()[:64])
            for _ in range(600):  # a byte every 50 ms: no single read ever times out
                await asyncio.sleep(0.05)
                await response.write(b"\0")
        return response

    world.bot.service.image_download_seconds = 0.5
    async with serving(drip) as base:
        started = asyncio.get_running_loop().time()
        answer = await animate(world, hosted(world, base, "slow.png"))
        await answer.wait_final(timeout=10)
        took = asyncio.get_running_loop().time() - started
    assert "couldn't download that image from Discord in time" in answer.text()
    assert took < 5, took
    await assert_private_and_uncharged(world, answer)


async def test_an_endless_image_download_stops_at_the_size_cap(world: BotWorld) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while sent < 200 * 1024 * 1024:
                await response.write(b"\0" * 65536)
                sent += 65536
        return response

    async with serving(endless) as base:
        answer = await animate(world, hosted(world, base, "endless.png"))
        await answer.wait_final(timeout=10)
    assert "larger than 10 MB, the limit" in answer.text()
    assert sent < 40 * 1024 * 1024, sent  # reading stopped, not the server
    await assert_private_and_uncharged(world, answer)
