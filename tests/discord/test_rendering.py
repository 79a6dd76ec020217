"""Fast checks of every embed and message a task produces (bot/discord/rendering.py):
the fields each must show, and Discord's limits at the worst case (the longest prompt,
made of nothing but characters that need escaping)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.discord import outcome_rendering, quota_rendering, rendering
from bot.domain import (
    Aspect,
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NotifyState,
    Quality,
    QuotaStatus,
    QuotaUnit,
    Task,
    TaskState,
)
from bot.service import SubmitResult
from bot.store import Page
from bot.wording import one_line

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
DISCORD_PROMPT_MAX = 6000
WORST_PROMPTS = {
    "plain": "a fox " * 1000,
    "all escapes": "*_[]<>#`|~\\" * 600,  # every character doubles when escaped
    "mentions": "@everyone @here " * 400,
    "lines and bidi": "line\n\u202eevil\u202c " * 500,
}
USER = SimpleNamespace(
    display_name="a" * 32, display_avatar=SimpleNamespace(url="https://cdn/a.png")
)


def make_task(**changes: Any) -> Task:
    task = Task(
        id="K7M3QX",
        guild_id=1,
        channel_id=2,
        user_id=3,
        provider="demo",
        mode=Mode.TEXT,
        prompt="a red fox in snow",
        options=GenerationOptions(Aspect.PORTRAIT, 12, Quality.HIGH),
        state=TaskState.SUCCEEDED,
        created_at=T0,
        updated_at=T0,
        completed_at=T0 + timedelta(seconds=75),
    )
    return replace(task, **changes)


def quota(unit: QuotaUnit = QuotaUnit.VIDEOS, user_daily: int | None = 5) -> QuotaStatus:
    limits = EffectiveLimits(daily=20, monthly=300, user_daily=user_daily, unit=unit)
    return QuotaStatus(limits, 3, 7, 2, T0 + timedelta(hours=5), T0 + timedelta(days=20))


def within_limits(embed: discord.Embed) -> None:
    """Discord's embed limits (https://discord.com/developers/docs/resources/message)."""
    assert len(embed.title or "") <= 256
    assert len(embed.description or "") <= 4096
    assert len(embed.fields) <= 25
    for item in embed.fields:
        assert 0 < len(item.name or "") <= 256 and 0 < len(item.value or "") <= 1024
    assert len(embed.footer.text or "") <= 2048
    assert len(embed.author.name or "") <= 256
    assert len(embed) <= 6000


def fields(embed: discord.Embed) -> dict[str, str]:
    return {item.name or "": item.value or "" for item in embed.fields}


def every_task_shape() -> list[Task]:
    return [
        make_task(prompt=prompt, state=state, progress=99, failure_code="content_policy")
        for prompt in WORST_PROMPTS.values()
        for state in TaskState
    ]


def test_the_longest_prompts_are_cut_escaped_and_on_one_line() -> None:
    for prompt in WORST_PROMPTS.values():
        assert len(prompt) >= DISCORD_PROMPT_MAX - 1000
        shown = rendering.short_prompt(prompt, 1000)
        assert len(shown) <= 1000 and shown.endswith("…") and "\n" not in shown
        assert "\u202e" not in shown and "@everyone" not in shown
    assert rendering.short_prompt("[a](https://x) # hi", 100) == r"\[a\](https://x) \# hi"


def test_submission_card_shows_task_options_wait_and_quota() -> None:
    task = make_task()
    result = SubmitResult(task, ("Duration set to 8 s",), quota(), T0 + timedelta(minutes=3))
    embed = rendering.submission_embed(result, USER, "Demo", 170.0)  # type: ignore[arg-type]
    shown = fields(embed)
    assert embed.title == "🎬 Your video is on its way"
    assert embed.description == "> a red fox in snow"
    assert shown["Options"] == "portrait · 12 s · high" and shown["Model"] == "Sora 2 Pro"
    assert shown["Expected"] == f"{rendering.relative(result.expected_ready_at)} (about 3 minutes)"
    # Public: the server's quota only, never the member's own.
    assert shown["Server quota left today"].startswith("**17 videos** · resets")
    assert "you" not in shown["Server quota left today"]
    assert shown["Note"] == "Duration set to 8 s"
    assert embed.author.name == USER.display_name and "Demo" not in (embed.footer.text or "")
    assert (embed.footer.text or "").startswith("Task K7M3QX")
    seconds = SubmitResult(task, (), quota(QuotaUnit.SECONDS), result.expected_ready_at)
    value = fields(rendering.submission_embed(seconds, USER, "Demo", 30))["Server quota left today"]  # type: ignore[arg-type]
    assert value.startswith("**17 s**")
    for task in every_task_shape():
        result = SubmitResult(task, ("a note",) * 5, quota(), T0)
        within_limits(rendering.submission_embed(result, USER, "Demo", 170.0))  # type: ignore[arg-type]


def test_progress_card_shows_state_options_and_the_task_footer() -> None:
    running = make_task(state=TaskState.RUNNING, progress=40)
    embed = rendering.progress_embed(running)
    assert embed.title == "🎬 Generating 40%"  # (the label brings its own emoji)
    assert fields(embed) == {"Options": "portrait · 12 s · high", "Model": "Sora 2 Pro"}
    assert embed.footer.text == "Task K7M3QX · I'll post it here when it's ready."
    # Edited from the submission card, it keeps every field, once each.
    result = SubmitResult(running, ("a note",), quota(), T0 + timedelta(minutes=3))
    card = rendering.submission_embed(result, USER, "Demo", 170.0)  # type: ignore[arg-type]
    edited = rendering.progress_embed(running, card)
    assert [f.name for f in edited.fields] == [f.name for f in card.fields]
    assert edited.title == "🎬 Generating 40%" and edited.footer.text == card.footer.text
    assert sum("about 3 minutes" in (f.value or "") for f in edited.fields) == 1
    for task in every_task_shape():
        within_limits(rendering.progress_embed(task))
        within_limits(rendering.progress_embed(task, card))


@pytest.mark.parametrize("direct", [False, True])
def test_result_post_links_or_explains_the_video(direct: bool) -> None:
    task = make_task()
    content, embed = outcome_rendering.result_post(
        task, provider_name="Demo", link="https://cdn.example/v.mp4", direct=direct
    )
    assert content.startswith("<@3> your video is ready") and content.endswith("!")
    assert ("(I couldn't post in <#2>)" in content) is direct
    shown = fields(embed)
    assert shown["Model"] == "Sora 2 Pro" and shown["Took"] == "1 min 15 s"
    assert shown["Video"] == "[Open the video](https://cdn.example/v.mp4)"
    assert embed.footer.text == rendering.footer_for(task) == "Task K7M3QX"
    assert outcome_rendering.video_link(embed) == "https://cdn.example/v.mp4"
    _, explained = outcome_rendering.result_post(
        task, provider_name="Demo", problem=outcome_rendering.NO_FILE
    )
    assert fields(explained)["Video"] == outcome_rendering.NO_FILE
    assert outcome_rendering.video_link(explained) is None
    for task in every_task_shape():
        for problem in (
            outcome_rendering.too_large(10**10),
            outcome_rendering.UNSAFE_ADDRESS,
            None,
        ):
            _, embed = outcome_rendering.result_post(
                task, provider_name="D" * 100, link="https://x/" + "v" * 900, problem=problem
            )
            within_limits(embed)


def test_failure_post_says_why_refunds_and_suggests() -> None:
    content, embed = outcome_rendering.failure_post(
        make_task(state=TaskState.FAILED, failure_code="content_policy")
    )
    assert content == "<@3> sorry." and embed.title == "❌ Your video couldn't be made"
    assert "content policy" in (embed.description or "")
    assert "**Your quota was refunded.**" in (embed.description or "")
    assert set(fields(embed)) == {"Prompt", "Options"}
    content, _ = outcome_rendering.failure_post(make_task(state=TaskState.EXPIRED), direct=True)
    assert content == "<@3> sorry (I couldn't post in <#2>)."
    for task in every_task_shape():
        within_limits(outcome_rendering.failure_post(task)[1])


def test_outcome_lines_point_at_the_result() -> None:
    done, failed = make_task(), make_task(state=TaskState.FAILED)
    assert outcome_rendering.posted_line(done, "https://j") == "✅ Your video is ready: https://j"
    assert outcome_rendering.posted_line(failed, "https://j") == "❌ It didn't work out: https://j"
    assert "in a DM" in outcome_rendering.direct_messaged_line(done)
    assert "`/sora status K7M3QX`" in outcome_rendering.undeliverable_line(done)
    assert outcome_rendering.deleted_line(done) == "Deleted the video for task `K7M3QX`."


def test_task_detail_shows_what_happened() -> None:
    posted = make_task(
        result_url="https://cdn.example/v.mp4",
        result_message_id=99,
        notify_state=NotifyState.POSTED,
    )
    embed = rendering.task_embed(posted)
    shown = fields(embed)
    assert embed.title == "✅ Done" and embed.footer.text == "Task K7M3QX"
    assert {"Options", "Model", "Requested by", "Started", "Finished", "Video"} <= set(shown)
    assert "Mode" not in shown and "What happened" not in shown
    assert shown["Video"] == "[Go to the video](https://discord.com/channels/1/2/99)"
    assert "cdn.example" not in str(embed.to_dict())
    assert "discord.com/channels/1/2/99" in rendering.task_line(posted)
    dm = fields(rendering.task_embed(replace(posted, notify_state=NotifyState.DIRECT_MESSAGED)))
    assert "Video" not in dm
    gone = make_task(state=TaskState.FAILED, failure_code="expired")
    failed = fields(rendering.task_embed(gone))
    assert "Video" not in failed and "Your quota was refunded" in failed["What happened"]
    theirs = fields(rendering.task_embed(gone, viewer_id=42))["What happened"]
    assert "Their quota was refunded" in theirs and "Your" not in theirs
    running = fields(rendering.task_embed(make_task(state=TaskState.RUNNING, completed_at=None)))
    assert "Finished" not in running
    for task in every_task_shape():
        within_limits(rendering.task_embed(replace(task, result_url="https://x/" + "v" * 900)))


def test_task_lines_and_choices_stay_short() -> None:
    for task in every_task_shape():
        line = rendering.task_line(task)
        assert line.startswith("`K7M3QX` ") and "\n" not in line and len(line) <= 130
        choice = rendering.task_choice_name(task)
        assert choice.startswith("K7M3QX · ") and len(choice) <= 100
        assert one_line(task.prompt)[:5] in choice  # verbatim: a choice shows no Markdown


def test_your_tasks_lists_work_in_progress_and_recent_within_a_field() -> None:
    empty = rendering.your_tasks_embed(Page([], 0, 1, 10))
    assert "haven't made any videos" in (empty.description or "") and not empty.fields
    # The worst page: ten unfinished tasks with the longest label and prompt.
    waiting = make_task(state=TaskState.SUBMITTED, prompt=WORST_PROMPTS["all escapes"])
    embed = rendering.your_tasks_embed(Page([waiting] * 10, 10, 1, 10))
    within_limits(embed)
    assert fields(embed)["In progress"].endswith("more in `/sora history`")
    mixed = rendering.your_tasks_embed(Page([make_task(), waiting], 2, 1, 10))
    assert set(fields(mixed)) == {"In progress", "Recent"}
    assert (mixed.footer.text or "").startswith("/sora status <task>")
    done = fields(rendering.your_tasks_embed(Page([make_task()], 1, 1, 10)))
    assert done["In progress"] == "nothing right now"


def test_history_pages() -> None:
    tasks = [make_task(prompt=WORST_PROMPTS["all escapes"])] * 10
    embed = rendering.history_embed(Page(tasks, 25, 1, 10), 1)
    assert embed.title == "Your videos" and embed.footer.text == "Page 1 of 3 · 25 videos"
    within_limits(embed)
    theirs = rendering.history_embed(Page([], 25, 9, 10), 9, other="bob")
    assert theirs.title == "bob's videos" and theirs.description == "There are only 3 pages."
    assert theirs.footer.text == "Page 3 of 3 · 25 videos"
    one = rendering.history_embed(Page([], 1, 5, 10), 5)
    assert one.description == "There is only 1 page." and one.footer.text == "Page 1 of 1 · 1 video"
    assert rendering.history_embed(Page([], 0, 1, 10), 1).description == "No videos yet."


def test_quota_embeds() -> None:
    embed = quota_rendering.quota_embed(quota(), USER)  # type: ignore[arg-type]
    shown = fields(embed)
    assert shown["Server today"].startswith("3 of 20 used · **17 left**")
    assert shown["Server this month"].startswith("7 of 300 used")
    assert shown[f"{USER.display_name} today"].startswith("2 of 5 used")
    within_limits(embed)
    off = EffectiveLimits(daily=0, monthly=300, user_daily=None, unit=QuotaUnit.SECONDS)
    before = quota().limits
    change = quota_rendering.quota_change_embed(before, off)
    assert "**Daily (server)**: 20 → **off (0)** ✏️" in (change.description or "")
    assert "**Daily (per member)**: 5 → **none** ✏️" in (change.description or "")
    assert "**Unit**: videos → **seconds**" in (change.description or "")
    assert change.footer.text and "turns video generation off" in change.footer.text
    assert "✏️" not in (quota_rendering.quota_change_embed(before, before).description or "")
    cleared = quota_rendering.usage_cleared_line("<@3>", 2, 24, quota())
    assert cleared.startswith("Cleared <@3>'s usage for today (2 videos, 24 s)")
    assert "2 videos still being made keep counting" in cleared and "ledger" not in cleared
    zero = EffectiveLimits(daily=20, monthly=300, user_daily=0, unit=QuotaUnit.VIDEOS)
    off = fields(quota_rendering.quota_embed(replace(quota(), limits=zero), USER))  # type: ignore[arg-type]
    assert off[f"{USER.display_name} today"].startswith("**off**")
    assert "of 0" not in off[f"{USER.display_name} today"]
    assert "nothing to clear" in quota_rendering.usage_cleared_line("<@3>", 0, 0, quota())


def test_timestamps_and_channel_lists() -> None:
    assert rendering.relative(T0) == f"<t:{int(T0.timestamp())}:R>"
    assert quota_rendering.channel_list(frozenset({3, 1})) == "<#1>, <#3>"


def test_fit_embed_enforces_every_discord_limit() -> None:
    wild = discord.Embed(title="t" * 999, description="d" * 9999)
    for _ in range(30):
        wild.add_field(name="n" * 999, value="v" * 2000)
    wild.set_footer(text="f" * 9999)
    wild.set_author(name="a" * 999)
    fitted = rendering.fit_embed(wild)
    within_limits(fitted)
    assert fitted.title is not None and fitted.title.endswith("…")


def test_every_embed_at_its_worst_case() -> None:
    long_member = SimpleNamespace(
        display_name="ẞ" * 200, display_avatar=SimpleNamespace(url="https://cdn/a.png")
    )
    worst = [
        replace(t, result_message_id=9, notify_state=NotifyState.POSTED) for t in every_task_shape()
    ]
    for unit in QuotaUnit:
        status = quota(unit)
        within_limits(quota_rendering.quota_embed(status, long_member))  # type: ignore[arg-type]
        for task in worst:
            result = SubmitResult(task, ("n" * 2000,) * 25, status, T0)
            card = rendering.submission_embed(result, long_member, "D" * 300, 1e6)  # type: ignore[arg-type]
            within_limits(card)
            within_limits(rendering.progress_embed(task, card))
            within_limits(rendering.task_embed(task, viewer_id=42))
    page = Page(worst[:25], 500, 1, 25)
    listing = rendering.your_tasks_embed(page)
    within_limits(listing)
    within_limits(rendering.history_embed(page, 1, other="ẞ" * 200))
    unfinished = [t for t in worst if not t.state.is_terminal][:10]
    busy = rendering.your_tasks_embed(Page(unfinished, 12, 1, 10))
    within_limits(busy)
    assert "more in `/sora history`" in fields(busy)["In progress"]


def test_wait_phrase_reads_right_from_a_second_to_minutes() -> None:
    from bot.wording import wait_phrase

    assert wait_phrase(0.4) == "about a second"  # was "about 1 seconds"
    assert wait_phrase(1.2) == "about a second"
    assert wait_phrase(20) == "about 20 seconds"
    assert wait_phrase(50) == "about a minute"
    assert wait_phrase(125) == "about 2 minutes"


def test_usually_ready_counts_down_from_the_learned_time() -> None:
    from datetime import timedelta

    task = make_task(state=TaskState.RUNNING, completed_at=None)
    start = task.created_at
    assert rendering.usually_ready(task, 180, start + timedelta(seconds=60)) == (
        "usually ready in about 2 minutes"
    )
    assert rendering.usually_ready(task, 180, start + timedelta(seconds=150)) == (
        "usually ready within a minute"
    )
    assert rendering.usually_ready(task, 180, start + timedelta(seconds=200)).startswith(
        "taking longer than usual"
    )
