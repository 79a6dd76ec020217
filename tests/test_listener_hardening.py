"""The listener under attack: misrouted reports, stalled sockets, probes, floods (issue 10).

Every test runs the real bot (its own listener on 127.0.0.1) against the Discord fake and,
where a provider matters, the provider fakes; every socket a test opens is closed by it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import webhooks
from bot.domain import NotifyState, TaskState
from bot.webhooks import ListenerLimits
from tests.conftest import BotWorld, running_world
from tests.fakes import FakeDiscord
from tests.fakes.providers import FakeApixo, FakeOpenAI, FakeSora2API
from tests.helpers import eventually, free_port, posts
from tests.test_callbacks_e2e import listener, submit

Stalled = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def use_limits(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> ListenerLimits:
    """Shorter deadlines for the bot started next (the listener reads `LIMITS` when built)."""
    limits = ListenerLimits(**changes)
    monkeypatch.setattr(webhooks, "LIMITS", limits)
    return limits


async def stall(port: int, partial: bytes) -> Stalled:
    """A connection that sends part of a request and then nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(partial)
    await writer.drain()
    return reader, writer


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionError:
        pass
    return data


def is_closed(reader: asyncio.StreamReader) -> bool:
    """Closed by the server, as the client has seen so far (EOF, or reset)."""
    return reader.at_eof() or reader.exception() is not None


def close_all(connections: list[Stalled]) -> None:
    for _, writer in connections:
        writer.close()


async def used_today(world: BotWorld) -> int:
    status = await world.bot.store.quota_status(
        world.guild.id, int(world.member["id"]), world.settings.default_limits
    )
    return status.user_used_today


def forged_reports(kind: str, task_id: str) -> list[dict[str, Any]]:
    """A forged failure, then a forged success pointing at an address of the attacker's."""
    evil = "http://127.0.0.1:9/evil.mp4"
    if kind == "apixo":
        return [
            {"code": 200, "data": {"taskId": task_id, "state": "failed",
                                   "failCode": "CONTENT_VIOLATION", "failMsg": "forged"}},
            {"code": 200, "data": {"taskId": task_id, "state": "success",
                                   "resultJson": json.dumps({"resultUrls": [evil]})}},
        ]  # fmt: skip
    return [
        {"code": 500, "msg": "forged", "data": {"taskId": task_id, "resultUrls": []}},
        {"code": 200, "msg": "success", "data": {"taskId": task_id, "resultUrls": [evil]}},
    ]


@pytest.mark.parametrize("fake", [FakeApixo, FakeSora2API], ids=["apixo", "sora2api"])
async def test_unsigned_reports_at_the_webhook_door_change_nothing(
    fake_discord: FakeDiscord, tmp_path: Path, fake: Callable[..., Any]
) -> None:
    """APIXO and Sora2API report only at /callbacks/{token}: /webhooks/openai is not there."""
    port = free_port()
    async with fake(generation_seconds=1.0) as provider:
        async with running_world(
            fake_discord, tmp_path, **listener(port), **provider.settings_overrides()
        ) as world:
            await submit(world, "a heron at dawn")
            (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
            stored_id = task.provider_task_id or ""
            url = f"http://127.0.0.1:{port}/webhooks/openai"
            async with httpx.AsyncClient() as client:
                answers = [
                    await client.post(url, json=body)
                    for task_id in (stored_id, stored_id.split(":")[-1], "not-a-task")
                    for body in forged_reports(provider.name, task_id)
                ]
                probe = await client.get(url)
            (post,) = await eventually(lambda: posts(world))
            after = await world.bot.store.get_task(task.id)
            assert {(a.status_code, a.content) for a in answers} == {(404, b"404: Not Found")}
            assert probe.status_code == 404  # no such door at all, not "wrong method"
            assert after is not None and after.state is TaskState.SUCCEEDED
            assert after.notify_state is NotifyState.POSTED
            assert post["attachments"]  # the real video, from the real callback
            assert await used_today(world) == 1  # charged once, never refunded
            assert len(posts(world)) == 1


async def test_no_webhook_door_without_a_webhook_secret(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """An OpenAI-compatible provider without OPENAI_WEBHOOK_SECRET has no webhook door,
    and no per-task callback door either (those are for callback providers)."""
    port = free_port()
    async with FakeOpenAI(generation_seconds=0.3) as provider:
        async with running_world(
            fake_discord, tmp_path, **listener(port), **provider.settings_overrides()
        ) as world:
            body = json.dumps({"type": "video.failed", "data": {"id": "video_x"}}).encode()
            async with httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{port}"
                unsigned = await client.post(f"{base}/webhooks/openai", content=body)
                signed = await client.post(
                    f"{base}/webhooks/openai", content=body, headers=provider.sign_webhook(body)
                )
                probe = await client.get(f"{base}/webhooks/openai")
                callback = await client.post(f"{base}/callbacks/some-token", content=body)
            statuses = [r.status_code for r in (unsigned, signed, probe, callback)]
            assert statuses == [404, 404, 404, 404]
            registry = world.bot.metrics.registry
            applied = registry.get_sample_value("sora_callbacks_total", {"result": "applied"})
            assert not applied


async def test_webhook_answers_do_not_tell_whose_video_it_is(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    port = free_port()
    async with FakeOpenAI(generation_seconds=0.3) as provider:
        overrides = {
            **provider.settings_overrides(),
            "openai_webhook_secret": provider.webhook_secret,
        }
        url = provider.webhook_url = f"http://127.0.0.1:{port}/webhooks/openai"
        async with running_world(fake_discord, tmp_path, **listener(port), **overrides) as world:
            await submit(world, "a paper lantern")
            await eventually(lambda: posts(world))
            (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks

            def event(video_id: str) -> bytes:
                return json.dumps({"type": "video.completed", "data": {"id": video_id}}).encode()

            async with httpx.AsyncClient() as client:

                async def send(body: bytes, secret: str | None = None) -> httpx.Response:
                    headers = provider.sign_webhook(body, secret=secret)
                    return await client.post(url, content=body, headers=headers)

                forged_ours = await send(event(task.provider_task_id or ""), "whsec_" + "B" * 44)
                forged_unknown = await send(event("video_not_ours"), "whsec_" + "B" * 44)
                signed_ours = await send(event(task.provider_task_id or ""))
                signed_unknown = await send(event("video_not_ours"))
            assert len(posts(world)) == 1
    assert answer(forged_ours) == answer(forged_unknown) == (404, b"404: Not Found")
    assert answer(signed_ours) == answer(signed_unknown)
    assert signed_ours.status_code == 200


def answer(response: httpx.Response) -> tuple[int, bytes]:
    return response.status_code, response.content


async def test_stalled_clients_do_not_hold_up_callbacks_and_are_closed(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = use_limits(monkeypatch, request_timeout=2.0, body_timeout=2.0, lingering_time=0.2)
    port = free_port()
    partials = [
        b"GET /heal",  # half a request line
        b"POST /callbacks/abc HTTP/1.1\r\nHost: bot\r\nContent-Type: app",  # half the headers
        b"POST /callbacks/abc HTTP/1.1\r\nHost: bot\r\nContent-Length: 200\r\n\r\n{",  # a body
    ]
    loop = asyncio.get_running_loop()
    async with FakeApixo(generation_seconds=0.3) as provider:
        async with running_world(
            fake_discord, tmp_path, **listener(port), **provider.settings_overrides()
        ) as world:
            stalled = list(
                await asyncio.gather(*(stall(port, partials[i % 3]) for i in range(200)))
            )
            try:
                opened = loop.time()
                async with httpx.AsyncClient(timeout=5) as client:
                    started = loop.time()
                    health = await client.get(f"http://127.0.0.1:{port}/healthz")
                    health_seconds = loop.time() - started
                    held_meanwhile = sum(not is_closed(reader) for reader, _ in stalled)
                    await submit(world, "a moth at a window")
                    (post,) = await eventually(lambda: posts(world), timeout=5)
                    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
                    raw_id = (task.provider_task_id or "").split(":")[-1]
                    started = loop.time()
                    late = await client.post(
                        f"http://127.0.0.1:{port}/callbacks/{task.callback_token}",
                        json={"code": 200, "data": {"taskId": raw_id, "state": "processing"}},
                    )
                    late_seconds = loop.time() - started
                answers = await asyncio.wait_for(
                    asyncio.gather(*(read_until_closed(reader) for reader, _ in stalled)),
                    timeout=limits.request_timeout + 10,
                )
                closed_after = loop.time() - opened
            finally:
                close_all(stalled)
    assert health.status_code == 200 and health_seconds < 1.0
    assert held_meanwhile >= 200  # they really were open while /healthz was answered
    (delivery,) = provider.callback_deliveries
    assert delivery.status == 200 and post["attachments"]
    assert late.status_code == 200 and late_seconds < 1.0
    assert closed_after < limits.request_timeout + 5  # closed by the server, well within 30 s
    assert all(a == b"" for a in answers[0::3]) and all(a == b"" for a in answers[1::3])
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers[2::3])  # body never finished


async def test_a_kept_alive_connection_whose_next_request_stalls_is_closed(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_limits(monkeypatch, keepalive_timeout=1.0)
    port = free_port()
    loop = asyncio.get_running_loop()
    async with running_world(fake_discord, tmp_path, **listener(port)):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")
            writer.write(b"GET /healthz HTTP/1.1\r\nHo")
            started = loop.time()
            rest = await asyncio.wait_for(read_until_closed(reader), timeout=10)
            waited = loop.time() - started
        finally:
            writer.close()
    assert rest == b"" and waited < 5


async def test_at_the_cap_a_stalled_connection_makes_room(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_limits(monkeypatch, max_connections=20, request_timeout=30)
    port = free_port()
    async with running_world(fake_discord, tmp_path, **listener(port)):
        stalled: list[Stalled] = []
        try:
            for _ in range(20):
                stalled.append(await stall(port, b"GET /healthz HTTP/1.1\r\n"))
            async with httpx.AsyncClient(timeout=5) as client:
                health = await client.get(f"http://127.0.0.1:{port}/healthz")
            oldest = await asyncio.wait_for(read_until_closed(stalled[0][0]), timeout=5)
            for _ in range(30):
                stalled.append(await stall(port, b"GET /healthz HTTP/1.1\r\n"))
            await eventually(lambda: sum(not is_closed(r) for r, _ in stalled) <= 20, timeout=5)
            await asyncio.sleep(0.2)  # nothing further happens: the newest 20 stay open
            still_open = [not is_closed(r) for r, _ in stalled]
        finally:
            close_all(stalled)
    assert health.status_code == 200
    assert oldest == b""  # the oldest stalled one was closed to make room
    assert still_open == [False] * 30 + [True] * 20  # oldest out first, never over the cap


async def test_metrics_ask_for_the_bearer_token_when_one_is_set(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    port = free_port()
    token = "metrics-token-for-tests-0123"
    async with running_world(fake_discord, tmp_path, **listener(port), metrics_token=token):
        url = f"http://127.0.0.1:{port}/metrics"
        async with httpx.AsyncClient() as client:
            refused = [
                await client.get(url),
                await client.get(url, headers={"Authorization": "Bearer wrong-token"}),
                await client.get(url, headers={"Authorization": f"Basic {token}"}),
                await client.get(url, headers={"Authorization": f"Bearer {token}x"}),
            ]
            allowed = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
    assert [r.status_code for r in refused] == [401] * 4
    assert all(b"sora_" not in r.content and token.encode() not in r.content for r in refused)
    assert allowed.status_code == 200 and b"sora_tasks" in allowed.content
    assert health.status_code == 200  # probes stay open


async def test_healthz_reads_the_counts_once_for_a_burst_of_probes(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_limits(monkeypatch, counts_ttl=60)
    port = free_port()
    async with running_world(fake_discord, tmp_path, **listener(port)) as world:
        store = world.bot.store
        real = store.task_counts
        reads = 0

        async def counting() -> dict[str, int]:
            nonlocal reads
            reads += 1
            return await real()

        monkeypatch.setattr(store, "task_counts", counting)
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(client.get(f"http://127.0.0.1:{port}/{p}") for p in ["healthz", "metrics"] * 50)
            )
    assert all(a.status_code == 200 for a in answers)
    assert reads == 1


async def test_healthz_still_reports_a_failing_or_stuck_database(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_limits(monkeypatch, counts_ttl=0.2, counts_timeout=0.5)
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    release = asyncio.Event()
    async with running_world(fake_discord, tmp_path, **listener(port)) as world:
        store = world.bot.store
        real = store.task_counts

        async def failing() -> dict[str, int]:
            raise OSError("disk I/O error")

        async def stuck() -> dict[str, int]:
            await release.wait()
            return await real()

        async with httpx.AsyncClient() as client:

            async def probe() -> httpx.Response:
                return await client.get(url)

            assert (await probe()).status_code == 200
            monkeypatch.setattr(store, "task_counts", failing)
            failed = await eventually(answered(probe, 503))
            monkeypatch.setattr(store, "task_counts", stuck)
            await asyncio.sleep(0.3)  # past the TTL: the next probe starts a read that hangs
            started = asyncio.get_running_loop().time()
            hung = await probe()
            hung_seconds = asyncio.get_running_loop().time() - started
            release.set()
            recovered = await eventually(answered(probe, 200))
    assert failed.json() == {"status": "unhealthy", "database": False}
    assert hung.status_code == 503 and hung_seconds < 3
    assert recovered.json()["database"] is True


def answered(
    probe: Callable[[], Awaitable[httpx.Response]], status: int
) -> Callable[[], Awaitable[httpx.Response | None]]:
    async def check() -> httpx.Response | None:
        response = await probe()
        return response if response.status_code == status else None

    return check


async def test_refusals_are_logged_at_a_bounded_rate_without_secrets(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_limits(monkeypatch, rejections_per_minute=5)
    caplog.set_level(logging.WARNING, logger="bot.webhooks")
    port = free_port()
    guessed_token = "guessed-token-SECRET-4f9a2c"
    async with FakeApixo() as provider:
        async with running_world(
            fake_discord, tmp_path, **listener(port), **provider.settings_overrides()
        ):
            async with httpx.AsyncClient() as client:
                answers = [
                    await client.post(
                        f"http://127.0.0.1:{port}/callbacks/{guessed_token}",
                        json={"data": {"taskId": "BODY-MARKER", "state": "failed"}},
                    )
                    for _ in range(30)
                ]
            during = [r.getMessage() for r in caplog.records if r.name == "bot.webhooks"]
    after = [r.getMessage() for r in caplog.records if r.name == "bot.webhooks"]
    assert all(a.status_code == 404 for a in answers)
    assert len(during) == 5  # one line per refusal for the first five, then silence
    assert "refused 25 more requests in the last minute (not logged one by one)" in after
    assert guessed_token not in caplog.text and "BODY-MARKER" not in caplog.text
