"""End to end: provider callbacks and webhooks reach the bot's listener and deliver fast."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.domain import NotifyState, TaskState
from tests.conftest import BotWorld, running_world
from tests.fakes import FakeDiscord
from tests.fakes.providers import FakeApixo, FakeOpenAI, FakeSora2API
from tests.helpers import eventually, free_port, posts


def listener(port: int) -> dict[str, Any]:
    return {
        "webhook_listen": f"127.0.0.1:{port}",
        "webhook_public_url": f"http://127.0.0.1:{port}",
        # Polling would only start after a minute: anything faster came by callback.
        "poll_first_delay_seconds": 60,
        "poll_interval_seconds": 60,
    }


async def submit(world: BotWorld, prompt: str) -> None:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt)
    )
    await answer.wait_final()
    assert "on its way" in answer.text(), answer.all_text()


@pytest.mark.parametrize("variant", ["record", "urls"])
async def test_sora2api_callbacks_deliver_without_polling(
    fake_discord: FakeDiscord, tmp_path: Path, variant: str
) -> None:
    port = free_port()
    async with FakeSora2API(generation_seconds=0.3) as provider:
        provider.callback_variant = variant  # type: ignore[assignment]
        provider.duplicate_callbacks = 3
        async with running_world(
            fake_discord, tmp_path, **listener(port), **provider.settings_overrides()
        ) as world:
            await submit(world, "a paper boat in the rain")
            (post,) = await eventually(lambda: posts(world))
            (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
            await asyncio.sleep(0.3)  # the duplicate callbacks have arrived by now
            assert len(posts(world)) == 1
    sent = provider.requests_for("create")[0].json
    assert sent["callBackUrl"] == f"http://127.0.0.1:{port}/callbacks/{task.callback_token}"
    assert provider.requests_for("status") == []
    assert task.state is TaskState.SUCCEEDED and post["attachments"]


async def test_bad_forged_and_late_callbacks_change_nothing(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    port = free_port()
    async with FakeApixo(generation_seconds=0.3) as provider:
        async with running_world(
            fake_discord, tmp_path, **listener(port), **provider.settings_overrides()
        ) as world:
            await submit(world, "a kite over the sea")
            await eventually(lambda: posts(world))
            (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
            raw_id = (task.provider_task_id or "").split(":")[-1]
            url = f"http://127.0.0.1:{port}/callbacks/{task.callback_token}"
            async with httpx.AsyncClient() as client:
                garbage = await client.post(url, content=b"{not json")
                other = await client.post(
                    url, json={"code": 200, "data": {"taskId": "someone-else", "state": "failed"}}
                )
                unknown = await client.post(
                    f"http://127.0.0.1:{port}/callbacks/guessed-token",
                    json={"code": 200, "data": {"taskId": raw_id, "state": "failed"}},
                )
                late = await client.post(
                    url, json={"code": 200, "data": {"taskId": raw_id, "state": "processing"}}
                )
                contradicting = await client.post(
                    url,
                    json={"code": 200, "data": {"taskId": raw_id, "state": "failed",
                                                "failCode": "CONTENT_VIOLATION"}},
                )  # fmt: skip
            after = await world.bot.store.get_task(task.id)
            # One refusal for all three (the same as an unknown path): nothing to probe.
            refusals = {(r.status_code, r.content) for r in (garbage, other, unknown)}
            assert refusals == {(404, b"404: Not Found")}
            assert late.status_code == 200 and contradicting.status_code == 200
            assert after is not None and after.state is TaskState.SUCCEEDED
            assert after.notify_state is NotifyState.POSTED
            assert len(posts(world)) == 1
            status = await world.bot.store.quota_status(
                world.guild.id, int(world.member["id"]), world.settings.default_limits
            )
            assert status.user_used_today == 1  # charged once, never refunded by a late "failed"


async def test_openai_webhooks_are_verified(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    port = free_port()
    async with FakeOpenAI(generation_seconds=0.3) as provider:
        provider.webhook_url = f"http://127.0.0.1:{port}/webhooks/openai"
        provider.duplicate_callbacks = 2
        overrides = {
            **provider.settings_overrides(),
            "openai_webhook_secret": provider.webhook_secret,
        }
        async with running_world(fake_discord, tmp_path, **listener(port), **overrides) as world:
            async with httpx.AsyncClient() as client:
                body = json.dumps({"type": "video.completed", "data": {"id": "video_x"}}).encode()
                forged = await client.post(
                    provider.webhook_url,
                    content=body,
                    headers=provider.sign_webhook(body, secret="whsec_" + "B" * 44),
                )
                unsigned = await client.post(provider.webhook_url, content=body)
            assert forged.status_code == 404 and unsigned.status_code == 404
            await submit(world, "a clockwork bird")
            (post,) = await eventually(lambda: posts(world))
            await asyncio.sleep(0.3)
            assert len(posts(world)) == 1
    assert post["attachments"]  # downloaded with the key and attached
    assert len(provider.requests_for("status")) <= 1


async def test_healthz_and_metrics(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    port = free_port()
    async with running_world(
        fake_discord, tmp_path, demo_generation_seconds=0.2, **listener(port)
    ) as world:
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert health["status"] == "ok" and health["database"] is True
    assert health["provider"] == "demo" and health["discord_ready"] is True
    assert 'sora_tasks{state="running"} 0.0' in metrics
    assert "sora_provider_status_checks_total" in metrics
    assert "sora_observe_lag_seconds_bucket" in metrics
    assert world.bot.webhooks is not None


async def test_openai_remix_button_asks_for_the_change_and_remixes(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with FakeOpenAI(generation_seconds=0.3) as provider:
        fast = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
        async with running_world(
            fake_discord, tmp_path, **fast, **provider.settings_overrides()
        ) as world:
            await submit(world, "a city street")
            (post,) = await eventually(lambda: posts(world))
            labels = [c["label"] for row in post["components"] for c in row["components"]]
            assert labels == ["Again", "Remix", "Delete"]
            (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks

            click = await world.fake.send_component(
                world.guild, world.member, post, f"sora:remix:{task.id}"
            )
            modal = await click.wait_callback()
            assert modal["type"] == 9 and modal["data"]["title"] == "Remix this video"
            field = modal["data"]["components"][0]
            field_id = (field.get("component") or field["components"][0])["custom_id"]
            submitted = await click.submit_modal({field_id: "make it night, neon signs"})
            await submitted.wait_final()
            assert "on its way" in submitted.text(), submitted.all_text()
            (remix,) = provider.requests_for("remix")
            assert remix.json == {"prompt": "make it night, neon signs"}
            assert remix.path.endswith(f"/videos/{task.provider_task_id}/remix")
            await eventually(lambda: len(posts(world)) == 2)
            tasks = (await world.bot.store.guild_tasks(world.guild.id)).tasks
            assert {t.prompt for t in tasks} == {"a city street", "make it night, neon signs"}


async def test_too_big_without_public_link_is_served_by_the_bot(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    port = free_port()
    async with FakeOpenAI(generation_seconds=0.3) as provider:
        provider.video_bytes = b"\x00\x00\x00\x18ftypmp42" + b"\1" * 4000
        settings = {**listener(port), "poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}
        async with running_world(
            fake_discord, tmp_path, **settings, **provider.settings_overrides()
        ) as world:
            answer = await world.fake.send_command(
                world.guild, world.member, "sora", world.fake.sub("text", prompt="big"),
                attachment_size_limit=1024,
            )  # fmt: skip
            await answer.wait_final()
            (post,) = await eventually(lambda: posts(world))
            fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
            link = fields["Video"].split("(", 1)[1].rstrip(")")
            assert link.startswith(f"http://127.0.0.1:{port}/media/") and not post["attachments"]
            async with httpx.AsyncClient() as client:
                served = await client.get(link)
                guessed = await client.get(f"http://127.0.0.1:{port}/media/{'A' * 43}.mp4")
                escape = await client.get(f"http://127.0.0.1:{port}/media/..%2Fbot.sqlite3")
    assert served.status_code == 200 and served.content == provider.video_bytes
    assert served.headers["content-type"] == "video/mp4"
    assert guessed.status_code == 404 and escape.status_code == 404
