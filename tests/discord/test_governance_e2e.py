"""End to end, issue 14: role allowances, the moderation log, approval mode, the server's
limits and the blocklist, through the real discord.py client against the Discord fake."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import Approval, NotifyState, TaskState
from tests.conftest import MANAGE_GUILD, BotWorld, make_settings, running_world, start_bot, stop_bot
from tests.fakes import FakeDiscord
from tests.fakes.discord_fake.interactions import FakeInteraction
from tests.helpers import eventually, posts

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
JSON = dict[str, Any]


@pytest.fixture
async def world(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotWorld]:
    async with running_world(fake_discord, tmp_path, demo_generation_seconds=0.4, **FAST) as w:
        yield w


async def as_mod(world: BotWorld, *path: str, **values: Any) -> FakeInteraction:
    answer = await world.fake.send_command(
        world.guild,
        world.moderator,
        "sora",
        world.fake.sub(*path, **values),
        permissions=MANAGE_GUILD,
    )
    await answer.wait_final()
    return answer


async def as_member(
    world: BotWorld, *path: str, user: JSON | None = None, **values: Any
) -> FakeInteraction:
    answer = await world.fake.send_command(
        world.guild, user or world.member, "sora", world.fake.sub(*path, **values)
    )
    await answer.wait_final()
    return answer


async def with_log(world: BotWorld) -> int:
    channel = world.guild.add_text_channel("mod-log")
    answer = await as_mod(world, "settings", "log-channel", channel=channel)
    assert "now goes to" in answer.text(), answer.text()
    return int(channel["id"])


def entries(world: BotWorld, log_id: int) -> list[JSON]:
    """The log's entries (its first line, posted when it was set, left out)."""
    return [
        m for m in world.fake.channel_messages.get(log_id, []) if not m["content"].startswith("📋")
    ]


def entry_with(world: BotWorld, log_id: int, text: str) -> JSON | None:
    return next((m for m in entries(world, log_id) if text in m["content"]), None)


def all_disabled(message: JSON) -> bool:
    buttons = [c for row in message["components"] for c in row["components"]]
    return len(buttons) == 2 and all(b.get("disabled") for b in buttons)


async def used(world: BotWorld, user: JSON | None = None) -> int:
    status = await world.bot.store.quota_status(
        world.guild.id, int((user or world.member)["id"]), world.settings.default_limits
    )
    return status.user_used_today


# Who may change what


@pytest.mark.parametrize(
    "path, values",
    [
        (("settings", "log-channel"), {}),
        (("settings", "approval"), {"mode": "on"}),
        (("settings", "limits"), {"max_duration": 4}),
        (("settings", "blocklist-add"), {"phrase": "fox"}),
        (("settings", "blocklist-remove"), {"phrase": "fox"}),
        (("settings", "blocklist"), {}),
        (("quota", "roles"), {}),
    ],
)
async def test_members_without_manage_server_are_refused_privately(
    world: BotWorld, path: tuple[str, ...], values: dict[str, Any]
) -> None:
    answer = await as_member(world, *path, **values)
    assert "Only members with the **Manage Server** permission can do that." in answer.text()
    assert answer.ephemeral
    assert (await world.bot.store.guild_settings(world.guild.id)).rules == type(
        (await world.bot.store.guild_settings(world.guild.id + 1)).rules
    )()


async def test_role_commands_are_refused_to_members(world: BotWorld) -> None:
    role = world.guild.add_role("Patron")
    for path, values in ((("quota", "role-set"), {"daily": 9}), (("quota", "role-clear"), {})):
        answer = await as_member(world, *path, role=role, **values)
        assert "Manage Server" in answer.text() and answer.ephemeral
    assert (await world.bot.store.guild_settings(world.guild.id)).rules.role_allowances == ()


# Role allowances


async def test_largest_role_allowance_replaces_the_member_limit(world: BotWorld) -> None:
    patron = world.guild.add_role("Patron")
    vip = world.guild.add_role("VIP")
    world.guild.add_member(world.member, roles=[int(patron["id"]), int(vip["id"])])
    await as_mod(world, "quota", "role-set", role=patron, daily=2)
    answer = await as_mod(world, "quota", "role-set", role=vip, daily=1)
    assert f"<@&{vip['id']}>" in answer.text() and "**1** a day" in answer.text()

    shown = await as_member(world, "quota", "show")
    assert f"Your limit: **2 a day**, from the role <@&{patron['id']}>" in shown.text()

    for n in range(2):
        ok = await as_member(world, "text", prompt=f"allowed {n}")
        assert "on its way" in ok.text()
    over = await as_member(world, "text", prompt="one too many")
    assert "You have used your 2 videos for today" in over.text() and over.ephemeral
    assert await used(world) == 2

    listed = await as_mod(world, "quota", "roles")
    assert f"<@&{patron['id']}>: **2** a day" in listed.text()
    cleared = await as_mod(world, "quota", "role-clear", role=patron)
    assert "Removed" in cleared.text() and "allowance of 2" in cleared.text()
    shown = await as_member(world, "quota", "show")
    assert f"Your limit: **1 a day**, from the role <@&{vip['id']}>" in shown.text()


async def test_a_member_without_an_allowance_role_keeps_the_server_limit(world: BotWorld) -> None:
    patron = world.guild.add_role("Patron")
    await as_mod(world, "quota", "role-set", role=patron, daily=50)
    shown = await as_member(world, "quota", "show")
    assert "Your limit: **5 a day**, the server's default for members" in shown.text()


async def test_a_zero_allowance_refuses_and_the_server_limit_still_caps(world: BotWorld) -> None:
    muted = world.guild.add_role("No videos")
    world.guild.add_member(world.member, roles=[int(muted["id"])])
    await as_mod(world, "quota", "role-set", role=muted, daily=0)
    refused = await as_member(world, "text", prompt="may I")
    assert "Your roles in this server don't include making videos" in refused.text()
    assert refused.ephemeral and await used(world) == 0

    big = world.guild.add_role("Big")
    world.guild.add_member(world.member, roles=[int(muted["id"]), int(big["id"])])
    await as_mod(world, "quota", "role-set", role=big, daily=100)
    await as_mod(world, "quota", "set", daily=1)
    assert "on its way" in (await as_member(world, "text", prompt="first")).text()
    capped = await as_member(world, "text", prompt="second")
    assert "This server has used its 1 video for today" in capped.text()


# The moderation log


async def test_log_gets_one_unpinging_entry_per_event(world: BotWorld) -> None:
    log_id = await with_log(world)
    await as_member(world, "text", prompt="a lighthouse in a storm @everyone")
    task = (await world.bot.store.guild_tasks(world.guild.id)).tasks[0]
    submitted = await eventually(lambda: entry_with(world, log_id, "asked for a video"))
    assert f"`{task.id}` <@{world.member['id']}>" in submitted["content"]
    assert "lighthouse in a storm" in submitted["content"] and "Demo" in submitted["content"]
    assert "@everyone" not in submitted["content"].replace("@\u200beveryone", "")

    (post,) = await eventually(lambda: posts(world))
    done = await eventually(lambda: entry_with(world, log_id, "video is done"))
    assert f"/{post['id']}" in done["content"]  # links the result message

    await as_mod(world, "quota", "set", daily=7)
    action = await eventually(lambda: entry_with(world, log_id, "set the quota"))
    assert f"<@{world.moderator['id']}>" in action["content"] and "daily 7" in action["content"]

    sent = world.fake.requests_matching("POST", rf"/channels/{log_id}/messages$")
    assert sent and all(r.json["allowed_mentions"]["parse"] == [] for r in sent)
    assert all(not r.json["allowed_mentions"].get("users") for r in sent)
    await world.bot.modlog_poster.post_pending()
    contents = [m["content"] for m in entries(world, log_id)]
    assert len(contents) == len(set(contents)) == 3  # each event once


async def test_a_moderator_deleting_someone_elses_video_is_logged(world: BotWorld) -> None:
    log_id = await with_log(world)
    await as_member(world, "text", prompt="a paper boat")
    (post,) = await eventually(lambda: posts(world))
    task = (await world.bot.store.guild_tasks(world.guild.id)).tasks[0]
    deleted = await world.fake.send_component(
        world.guild, world.moderator, post, f"sora:delete:{task.id}", permissions=MANAGE_GUILD
    )
    await deleted.wait_final()
    entry = await eventually(lambda: entry_with(world, log_id, "deleted"))
    assert f"deleted <@{world.member['id']}>'s video {task.id}" in entry["content"]


async def test_a_log_channel_that_is_gone_stops_nothing_and_is_reported_once(
    world: BotWorld, caplog: pytest.LogCaptureFixture
) -> None:
    log_id = await with_log(world)
    world.guild.channels[:] = [c for c in world.guild.channels if int(c["id"]) != log_id]
    caplog.set_level(logging.WARNING, logger="bot.discord.modlog")
    for n in range(2):
        assert "on its way" in (await as_member(world, "text", prompt=f"still {n}")).text()
    await eventually(lambda: len(posts(world)) == 2)
    shown = await as_member(world, "settings", "show")
    assert f"I can't post in <#{log_id}>" in shown.text()
    warnings = [r for r in caplog.records if "refuses posts" in r.getMessage()]
    assert len(warnings) == 1


async def test_setting_a_log_channel_the_bot_cannot_post_in_says_so(world: BotWorld) -> None:
    channel = world.guild.add_text_channel("locked")
    world.fake.fail_next(
        "POST", rf"/channels/{channel['id']}/messages$", 403,
        body={"message": "Missing Permissions", "code": 50013},
    )  # fmt: skip
    answer = await as_mod(world, "settings", "log-channel", channel=channel)
    assert "but I can't post in" in answer.text() and "Send Messages" in answer.text()
    shown = await as_member(world, "settings", "show")
    assert "⚠️ I can't post in" in shown.text()

    off = await as_mod(world, "settings", "log-channel")
    assert "The moderation log is off." in off.text()
    assert (await world.bot.store.guild_settings(world.guild.id)).rules.log_channel_id is None


# Limits and the blocklist


async def test_limits_refuse_before_anything_is_charged(world: BotWorld) -> None:
    log_id = await with_log(world)
    answer = await as_mod(world, "settings", "limits", max_duration=4, high_quality=False)
    assert "at most 4 s; standard quality only" in answer.text()
    long = await as_member(world, "text", prompt="a long one", duration=8)
    assert "at most **4 seconds** (you asked for 8)" in long.text() and long.ephemeral
    high = await as_member(world, "text", prompt="a fine one", duration=4, quality="high")
    assert "**standard** quality only" in high.text()
    assert "Nothing was charged" in high.text()
    assert await used(world) == 0
    assert (await world.bot.store.guild_tasks(world.guild.id)).total == 0
    refused = await eventually(lambda: entry_with(world, log_id, "refused"))
    assert "beyond the server's limits" in refused["content"]
    ok = await as_member(world, "text", prompt="a short one", duration=4)
    assert "on its way" in ok.text()


async def test_blocklist_refuses_without_quoting_and_logs(world: BotWorld) -> None:
    log_id = await with_log(world)
    added = await as_mod(world, "settings", "blocklist-add", phrase="Red Fox")
    assert "now refused" in added.text()
    for prompt in ("a \uff32\uff25\uff24   fox at dawn", "a réd\u200b fox", "RED\nFOX!"):
        refused = await as_member(world, "text", prompt=prompt)
        assert "contains a word or phrase this server doesn't allow" in refused.text()
        assert "red fox" not in refused.text().lower() and refused.ephemeral
    assert await used(world) == 0
    logged = await eventually(lambda: entry_with(world, log_id, "blocked phrase"))
    assert "refused before anything was charged" in logged["content"]
    assert "on its way" in (await as_member(world, "text", prompt="a red foxglove")).text()

    listed = await as_mod(world, "settings", "blocklist")
    assert "red fox" in listed.text() and listed.ephemeral
    removed = await as_mod(world, "settings", "blocklist-remove", phrase="RED FOX")
    assert "Removed" in removed.text()
    assert "on its way" in (await as_member(world, "text", prompt="a red fox")).text()


async def test_settings_show_lists_every_setting(world: BotWorld) -> None:
    log_id = await with_log(world)
    patron = world.guild.add_role("Patron")
    await as_mod(world, "quota", "role-set", role=patron, daily=3)
    await as_mod(world, "settings", "limits", max_duration=8)
    await as_mod(world, "settings", "blocklist-add", phrase="secret word")
    await as_mod(world, "settings", "approval", mode="on")
    shown = await as_member(world, "settings", "show")
    text = shown.text()
    assert shown.ephemeral
    assert "every channel" in text and f"<#{log_id}> (working)" in text
    assert f"<@&{patron['id']}>: **3** a day" in text
    assert "at most 8 s; high quality allowed" in text
    assert "on: members' requests wait" in text and "1 phrase" in text
    assert "secret word" not in text  # only how many
    assert "20 a day and 300 a month" in text


# Approval mode


async def test_approval_mode_needs_a_log_channel(world: BotWorld) -> None:
    answer = await as_mod(world, "settings", "approval", mode="on")
    assert "Approval mode needs a log channel" in answer.text()
    assert not (await world.bot.store.guild_settings(world.guild.id)).rules.approval


async def held_request(world: BotWorld, log_id: int, prompt: str) -> tuple[str, JSON]:
    answer = await as_member(world, "text", prompt=prompt)
    assert "waits for them" in answer.text() and answer.ephemeral
    task = (await world.bot.store.user_tasks(world.guild.id, int(world.member["id"]))).tasks[0]
    assert task.approval is Approval.PENDING and task.provider_task_id is None
    status = await as_member(world, "status", task=task.id)
    assert "Waiting for a moderator's approval" in status.text()
    held = await eventually(lambda: entry_with(world, log_id, "waits for a moderator"))
    assert {c["custom_id"] for row in held["components"] for c in row["components"]} == {
        f"sora:approve:{task.id}",
        f"sora:reject:{task.id}",
    }
    return task.id, held


async def test_approved_request_runs_after_a_restart_and_is_charged_once(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with running_world(fake_discord, tmp_path, demo_generation_seconds=0.4, **FAST) as world:
        log_id = await with_log(world)
        await as_mod(world, "settings", "approval", mode="on")
        task_id, held = await held_request(world, log_id, "a dragon kite")
        notice = await eventually(lambda: posts(world))
        assert "waiting for a moderator's approval" in notice[0]["content"]
        assert "dragon" not in notice[0]["content"]  # no prompt before a moderator saw it
        assert await used(world) == 1  # reserved while it waits
        settings = world.settings
    # A new process on the same database: the buttons still work.
    bot, runner = await start_bot(settings, fake_discord)
    try:
        member = {"id": str(fake_discord.users[int(world.member["id"])]["id"])}
        forged = await fake_discord.send_component(
            world.guild, world.member, held, f"sora:approve:{task_id}"
        )
        await forged.wait_final()
        assert "Manage Server" in forged.text() and forged.ephemeral

        # Two moderators click at once (both clicks carry the buttons): one decides.
        clicks = await asyncio.gather(
            *(
                fake_discord.send_component(
                    world.guild,
                    world.moderator,
                    held,
                    f"sora:{action}:{task_id}",
                    permissions=MANAGE_GUILD,
                )
                for action in ("approve", "approve")
            )
        )
        for click in clicks:
            await click.wait_final()
        answers = sorted(click.text() for click in clicks)
        assert f"Approved `{task_id}`: it is on its way" in answers[0]
        assert "already decided: Approved by" in answers[1]
        assert all(click.ephemeral for click in clicks)
        edited = fake_discord.messages[int(held["id"])]
        assert f"Approved by <@{world.moderator['id']}>" in edited["content"]
        assert all_disabled(edited)

        async def delivered() -> bool:
            task = await bot.store.get_task(task_id)
            return task is not None and task.notify_state is NotifyState.POSTED

        await eventually(delivered)
        task = await bot.store.get_task(task_id)
        assert task is not None and task.state is TaskState.SUCCEEDED
        result = [m for m in posts(world) if "your video is ready" in m["content"]]
        assert len(result) == 1 and result[0]["content"].startswith(f"<@{member['id']}>")
        # The notice became the card and went once the result was out: one message.
        assert int(notice[0]["id"]) in fake_discord.deleted_messages
        status = await bot.store.quota_status(
            world.guild.id, int(world.member["id"]), settings.default_limits
        )
        assert status.user_used_today == 1  # charged once
        await eventually(lambda: entry_with(world, log_id, "approved by"))
    finally:
        await stop_bot(bot, runner)


async def test_rejected_request_is_refunded_and_the_requester_told(world: BotWorld) -> None:
    log_id = await with_log(world)
    await as_mod(world, "settings", "approval", mode="on")
    task_id, held = await held_request(world, log_id, "something dubious")
    click = await world.fake.send_component(
        world.guild, world.moderator, held, f"sora:reject:{task_id}", permissions=MANAGE_GUILD
    )
    await click.wait_final()
    assert f"Rejected `{task_id}`" in click.text()
    told = await eventually(
        lambda: [m for m in posts(world) if "didn't approve the request" in m["content"]]
    )
    assert told[0]["content"].startswith(f"<@{world.member['id']}> I couldn't make your video")
    assert "dubious" not in str(told[0])  # a rejected prompt is not repeated publicly
    assert [u["id"] for u in told[0]["mentions"]] == [world.member["id"]]
    assert await used(world) == 0
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.approval is Approval.REJECTED
    assert task.decided_by == int(world.moderator["id"])
    assert (
        f"Rejected by <@{world.moderator['id']}>" in world.fake.messages[int(held["id"])]["content"]
    )
    await eventually(lambda: entry_with(world, log_id, "rejected by"))


async def test_moderators_requests_are_not_held(world: BotWorld) -> None:
    log_id = await with_log(world)
    await as_mod(world, "settings", "approval", mode="on")
    answer = await as_mod(world, "text", prompt="a moderator's own video")
    assert "on its way" in answer.text()
    assert entry_with(world, log_id, "waits for a moderator") is None


async def test_a_click_from_another_server_reads_as_not_found(world: BotWorld) -> None:
    log_id = await with_log(world)
    await as_mod(world, "settings", "approval", mode="on")
    task_id, held = await held_request(world, log_id, "mine")
    other = world.fake.add_guild("Elsewhere")
    stranger = world.fake.add_user("eve")
    other.add_member(stranger)
    click = await world.fake.send_component(
        other, stranger, held, f"sora:approve:{task_id}", permissions=MANAGE_GUILD,
        channel_id=int(other.channels[0]["id"]),
    )  # fmt: skip
    await click.wait_final()
    assert f"I can't find a task `{task_id}`" in click.text()
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.approval is Approval.PENDING


async def test_undecided_request_expires_refunded(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with running_world(
        fake_discord, tmp_path, demo_generation_seconds=0.4, approval_timeout_hours=1 / 3600,
        **FAST,
    ) as world:  # fmt: skip
        log_id = await with_log(world)
        await as_mod(world, "settings", "approval", mode="on")
        task_id, held = await held_request(world, log_id, "nobody looks")
        told = await eventually(
            lambda: [m for m in posts(world) if "no moderator approved" in m["content"]]
        )
        assert told[0]["content"].startswith(f"<@{world.member['id']}>")
        assert await used(world) == 0
        await eventually(lambda: entry_with(world, log_id, "expired"))
        closed = await eventually(
            lambda: (
                all_disabled(world.fake.messages[int(held["id"])])
                and world.fake.messages[int(held["id"])]
            )
        )
        assert "Expired" in closed["content"]
        # A click sent anyway (a stale client, or forged) changes nothing.
        late = await world.fake.send_component(
            world.guild, world.moderator, held, f"sora:approve:{task_id}",
            permissions=MANAGE_GUILD,
        )  # fmt: skip
        await late.wait_final()
        assert "already decided: Expired" in late.text() and late.ephemeral
        task = await world.bot.store.get_task(task_id)
        assert task is not None and task.approval is Approval.EXPIRED
        assert await world.bot.store.decide(task_id, world.guild.id, Approval.APPROVED, 1) is None


def test_settings_default_timeout_is_a_day(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    assert make_settings(fake_discord, tmp_path).approval_timeout_hours == 24


async def test_an_approved_picture_request_reads_its_picture_again(world: BotWorld) -> None:
    from tests.pictures import still

    log_id = await with_log(world)
    await as_mod(world, "settings", "approval", mode="on")
    attachment = world.fake.make_attachment("still.png", still("PNG"), content_type="image/png")
    answer = await world.fake.send_command(
        world.guild, world.member, "sora",
        world.fake.sub("image", image=attachment, prompt="make the water move"),
    )  # fmt: skip
    await answer.wait_final()
    assert "waits for them" in answer.text()
    held = await eventually(lambda: entry_with(world, log_id, "from a picture"))
    task = (await world.bot.store.guild_tasks(world.guild.id)).tasks[0]
    click = await world.fake.send_component(
        world.guild, world.moderator, held, f"sora:approve:{task.id}", permissions=MANAGE_GUILD
    )
    await click.wait_final()
    assert f"Approved `{task.id}`: it is on its way" in click.text()
    done = await eventually(
        lambda: [m for m in posts(world) if "your video is ready" in m["content"]]
    )
    assert len(done) == 1
    final = await world.bot.store.get_task(task.id)
    assert final is not None and final.state is TaskState.SUCCEEDED and final.mode.value == "image"
