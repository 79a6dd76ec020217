"""End to end: the bot learns when to check a video, and how long it usually takes, from
how long the provider took for the latest videos of its kind (`bot.polling`).

The real bot against the Discord fake and the fake APIXO, whose documentation says
"wait about 180 s, then poll every 10 s": the guidance checks first after 90 s and
tells members "about 3 minutes". The history used here (100-140 s, median 120) is far
enough from both that every assertion tells learned from documented apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    GenerationTime,
    Mode,
    NewTask,
    QuotaUnit,
    Settle,
    Task,
    TaskState,
    TaskUpdate,
    kind_of,
)
from bot.polling import MIN_SAMPLES
from bot.providers.apixo import CAPABILITIES as APIXO
from bot.schedule import Schedule
from bot.store import SqliteStore
from tests.conftest import BotWorld, running_world
from tests.fakes import FakeDiscord
from tests.fakes.providers import FakeApixo
from tests.helpers import eventually, free_port, posts

KIND = kind_of(Mode.TEXT, GenerationOptions())  # what `/sora text` sends by default
HISTORY = [100.0 + 2 * n for n in range(21)]  # 100, 102, ... 140 s: median 120 s
LAG = 2.0  # POLL_LAG_TARGET_SECONDS' default
GUIDANCE = Schedule.for_provider(APIXO, first_delay=None, interval=None, callbacks=False)
FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}


def database(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": f"sqlite:///{tmp_path / 'learned.sqlite3'}"}


async def seed_history(tmp_path: Path, seconds: list[float]) -> None:
    """Videos of the default kind finished before the bot starts (in another server),
    written as the tracker writes them: reserved, submitted, finished with their time."""
    store = SqliteStore(tmp_path / "learned.sqlite3")
    await store.open()
    roomy = EffectiveLimits(1000, 1000, None, QuotaUnit.VIDEOS)
    try:
        for n, took in enumerate(seconds):
            new = NewTask(
                guild_id=1, channel_id=2, user_id=3, provider="apixo", mode=Mode.TEXT,
                prompt=f"an earlier video {n}", options=GenerationOptions(),
            )  # fmt: skip
            task = (await store.reserve(new, roomy)).task
            await store.mark_submitted(
                task.id, f"task_old{n}", TaskState.RUNNING, None, task.created_at
            )
            done = TaskUpdate(
                TaskState.SUCCEEDED,
                result_url=f"https://cdn.example/{n}.mp4",
                took=GenerationTime.exact(took),
            )
            await store.finish(task.id, done, settle=Settle.CHARGE, delivered=True)
    finally:
        await store.close()


async def submit(world: BotWorld, prompt: str) -> tuple[Task, str]:
    """`/sora text` with the default options: the stored task and the public card's
    "Expected" field."""
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
    )
    await answer.wait_final()
    assert "on its way" in answer.text(), answer.all_text()
    (card,) = await answer.wait_followups(1)
    fields = {f["name"]: f["value"] for f in card["embeds"][0]["fields"]}
    page = await world.bot.store.user_tasks(world.guild.id, int(world.member["id"]))
    (task,) = [t for t in page.tasks if t.prompt == prompt]
    assert kind_of(task.mode, task.options) == KIND
    return task, fields["Expected"]


async def status(world: BotWorld, **options: str) -> str:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("status", **options)
    )
    await answer.wait_final()
    assert answer.ephemeral
    return answer.text()


def first_check(task: Task) -> float:
    """Seconds from the task's creation to its first check, as stored."""
    assert task.next_check_at is not None, task
    return (task.next_check_at - task.created_at).total_seconds()


def ready_in(expected: str, task: Task) -> float:
    """Seconds from the task's creation to the time the card says it is expected."""
    found = re.search(r"<t:(\d+):R>", expected)
    assert found is not None, expected
    return int(found[1]) - task.created_at.timestamp()


def metric(text: str, name: str, **labels: str) -> float:
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (name, labels, values)
    return values[0]


def test_the_history_is_far_from_the_documentation() -> None:
    """What the other tests rely on to tell learned from documented apart."""
    assert APIXO.expected_seconds == 180 and GUIDANCE.first_delay == 90
    assert len(HISTORY) > MIN_SAMPLES - 1 and min(HISTORY) > GUIDANCE.first_delay + 5


async def test_enough_history_plans_the_first_check_and_the_expected_time(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    await seed_history(tmp_path, HISTORY)
    async with (
        FakeApixo(generation_seconds=600) as provider,
        running_world(
            fake_discord, tmp_path, **database(tmp_path), **provider.settings_overrides()
        ) as world,
    ):
        task, expected = await submit(world, "a lighthouse in fog")
        detail = await status(world, task=task.id)
        listing = await status(world)
    learned = Schedule.from_history([GenerationTime.exact(s) for s in HISTORY], lag=LAG)
    # Just after the fastest (100 s), a lag target's worth at most: not the guidance's 90 s.
    assert min(HISTORY) - 4 <= first_check(task) <= min(HISTORY) + LAG
    assert first_check(task) == pytest.approx(learned.first_delay, abs=0.01)
    # The card and both status answers go by the learned median (120 s), not 180 s.
    assert "(about 2 minutes)" in expected and "3 minutes" not in expected
    assert ready_in(expected, task) == pytest.approx(120, abs=1.01)
    assert "Usually ready in about 2 minutes" in detail and f"Task {task.id}" in detail
    assert f"`{task.id}`" in listing and "usually ready in about 2 minutes" in listing
    assert "3 minutes" not in detail + listing


async def test_too_little_history_follows_the_documentation(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    await seed_history(tmp_path, HISTORY[: MIN_SAMPLES - 1])
    async with (
        FakeApixo(generation_seconds=600) as provider,
        running_world(
            fake_discord, tmp_path, **database(tmp_path), **provider.settings_overrides()
        ) as world,
    ):
        assert len((await world.bot.store.generation_times("apixo"))[KIND]) == MIN_SAMPLES - 1
        task, expected = await submit(world, "a lighthouse in fog")
        detail = await status(world, task=task.id)
        listing = await status(world)
    assert first_check(task) == pytest.approx(GUIDANCE.first_delay, abs=0.01)
    assert "(about 3 minutes)" in expected
    assert ready_in(expected, task) == pytest.approx(APIXO.expected_seconds, abs=1.01)
    assert "Usually ready in about 3 minutes" in detail
    assert "usually ready in about 3 minutes" in listing


async def test_poll_first_delay_setting_wins_over_the_history(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    await seed_history(tmp_path, HISTORY)
    async with (
        FakeApixo(generation_seconds=600) as provider,
        running_world(
            fake_discord, tmp_path, poll_first_delay_seconds=30, **database(tmp_path),
            **provider.settings_overrides(),
        ) as world,
    ):  # fmt: skip
        task, expected = await submit(world, "a lighthouse in fog")
    assert first_check(task) == pytest.approx(30, abs=0.01)
    # The history was read all the same: the expected time is still the learned one.
    assert "(about 2 minutes)" in expected


async def test_polled_videos_are_learned_and_shown_in_metrics(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    port = free_port()
    took = [0.3, 0.4, 0.5]
    async with (
        FakeApixo() as provider,
        running_world(
            fake_discord, tmp_path, webhook_listen=f"127.0.0.1:{port}", **FAST,
            **database(tmp_path), **provider.settings_overrides(),
        ) as world,
    ):  # fmt: skip
        for n, seconds in enumerate(took):
            provider.generation_seconds = seconds
            await submit(world, f"clip {n}")
        await eventually(lambda: len(posts(world)) == len(took))
        history = await world.bot.store.generation_times("apixo")
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert provider.requests_for("status")  # found done by polling: no callbacks asked for
    assert [r.json["request_type"] for r in provider.requests_for("create")] == ["async"] * 3
    assert list(history) == [KIND]
    # APIXO's own costTime: exact, one per video, in the order they finished.
    assert [t.low for t in history[KIND]] == pytest.approx(took, abs=0.01)
    assert all(t.low == t.high for t in history[KIND])
    assert answer.status_code == 200
    text = answer.text
    assert metric(text, "sora_generation_samples", provider="apixo", kind=KIND) == len(took)
    median = metric(text, "sora_generation_seconds", provider="apixo", kind=KIND, quantile="0.5")
    assert median == pytest.approx(0.4, abs=0.01)
    # Too few to learn from: the first check is still POLL_FIRST_DELAY_SECONDS.
    assert metric(text, "sora_poll_first_check_seconds", provider="apixo", kind=KIND) == 0.1
    assert metric(text, "sora_notice_lag_seconds_count") == len(took)
    # Checked every 0.1 s: each end noticed well within a second.
    assert 0 <= metric(text, "sora_notice_lag_seconds_sum") < len(took)


async def test_history_from_one_run_plans_the_next(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    quotas = {"default_daily_quota": 100, "default_user_daily_quota": None}
    async with FakeApixo() as provider:
        overrides = {**quotas, **database(tmp_path), **provider.settings_overrides()}
        async with running_world(fake_discord, tmp_path, **FAST, **overrides) as world:
            for n in range(MIN_SAMPLES):
                provider.generation_seconds = 0.2 + 0.01 * n
                answer = await world.fake.send_command(
                    world.guild, world.member, "sora", world.fake.sub("text", prompt=f"v{n}")
                )
                await answer.wait_final()
            await eventually(lambda: len(posts(world)) == MIN_SAMPLES)
        # A new process on the same database, without the POLL_* overrides.
        async with running_world(fake_discord, tmp_path, **overrides) as world:
            times = (await world.bot.store.generation_times("apixo"))[KIND]
            task, expected = await submit(world, "after the restart")
    assert len(times) == MIN_SAMPLES
    assert sorted(t.seconds for t in times) == pytest.approx(
        [0.2 + 0.01 * n for n in range(MIN_SAMPLES)], abs=0.002
    )
    learned = Schedule.from_history(times, lag=LAG)
    assert first_check(task) == pytest.approx(learned.first_delay, abs=0.01)
    assert first_check(task) < 0.2 + LAG + 0.1  # not the guidance's 90 s
    # Expected at about the median (0.3 s) after creation, not three minutes.
    assert ready_in(expected, task) == pytest.approx(0.3, abs=1.01)
    assert "3 minutes" not in expected
