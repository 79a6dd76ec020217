"""End to end: provider-named media addresses are vetted, downloads are bounded, and
`sora-bot generate --image ./file` can serve the picture to a provider that wants a URL.

The "internal" servers here stand for what an attacker would aim at (a metadata service,
an admin port): they are started by the test on 127.0.0.1 and must never be asked for
anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from bot.domain import TaskState
from tests.conftest import BotWorld, running_world
from tests.fakes import FakeDiscord
from tests.fakes.providers import FakeApixo, FakeOpenAI, make_png
from tests.fakes.providers.base import FakeTask, ProviderRequest, Reply
from tests.helpers import eventually, free_port, posts

FAST = {"poll_first_delay_seconds": 0.1, "poll_interval_seconds": 0.1}


@asynccontextmanager
async def internal_server() -> AsyncIterator[tuple[int, list[str]]]:
    """Something inside the network: yields its port and every path asked of it."""
    hits: list[str] = []

    async def anything(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.Response(body=b"\x00\x00\x00\x18ftypmp42 internal secrets")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield int(runner.addresses[0][1]), hits
    finally:
        await runner.cleanup()


class PointingApixo(FakeApixo):
    """An APIXO whose finished tasks name whatever video address the test sets, as a
    compromised or malicious provider (or a forged report) would."""

    video_address: str | None = None

    def media_url(self, task_id: str) -> str:
        return self.video_address or super().media_url(task_id)


async def submit(world: BotWorld, prompt: str, **extra: Any) -> None:
    answer = await world.fake.send_command(
        world.guild, world.member, "sora", world.fake.sub("text", prompt=prompt), **extra
    )
    await answer.wait_final()
    assert "on its way" in answer.text(), answer.all_text()


async def only_task(world: BotWorld) -> Any:
    (task,) = (await world.bot.store.guild_tasks(world.guild.id)).tasks
    return task


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:{port}/secret.mp4",  # plain http to another port of this host
        "https://127.0.0.1:{port}/secret.mp4",
        "https://[::ffff:127.0.0.1]:{port}/secret.mp4",
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    ],
)
async def test_a_success_naming_an_internal_address_fails_refunded_and_fetches_nothing(
    fake_discord: FakeDiscord, tmp_path: Path, address: str
) -> None:
    async with internal_server() as (port, hits), PointingApixo(generation_seconds=0.3) as fake:
        fake.video_address = address.format(port=port)
        async with running_world(
            fake_discord, tmp_path, **FAST, **fake.settings_overrides()
        ) as world:
            await submit(world, "a lighthouse at dusk")
            (post,) = await eventually(lambda: posts(world), timeout=20)
            task = await only_task(world)
            quota = await world.bot.store.quota_status(
                world.guild.id, int(world.member["id"]), world.settings.default_limits
            )
            await asyncio.sleep(0.3)  # nothing else arrives later
            assert len(posts(world)) == 1
    assert task.state is TaskState.FAILED and task.failure_code == "provider_error"
    assert "won't fetch" in (task.failure_reason or "")
    assert task.result_url is None
    embed = post["embeds"][0]
    assert "I couldn't make" in post["content"] and not embed.get("title")
    assert "Nothing was charged." in post["content"]
    assert quota.user_used_today == 0 and quota.guild_used_today == 0
    assert not post["attachments"]
    shown = json.dumps(post)
    # The address, not the bare port number: that can occur inside any snowflake id.
    assert f":{port}/" not in shown and "127.0.0.1" not in shown and "169.254" not in shown
    assert hits == []


async def test_a_callback_naming_an_internal_address_is_refused_too(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    listen = free_port()
    settings = {
        "webhook_listen": f"127.0.0.1:{listen}",
        "webhook_public_url": f"http://127.0.0.1:{listen}",
        # Polling only after a minute: the result can come by callback only.
        "poll_first_delay_seconds": 60,
        "poll_interval_seconds": 60,
    }
    async with internal_server() as (port, hits), PointingApixo(generation_seconds=0.3) as fake:
        fake.video_address = f"http://127.0.0.1:{port}/latest/meta-data/"
        async with running_world(
            fake_discord, tmp_path, **settings, **fake.settings_overrides()
        ) as world:
            await submit(world, "a kite over the sea")
            (post,) = await eventually(lambda: posts(world), timeout=20)
            task = await only_task(world)
    assert fake.requests_for("status") == []  # it really came by callback
    assert task.state is TaskState.FAILED and "I couldn't make" in post["content"]
    assert not post["attachments"] and hits == []


async def test_bytes_that_are_not_a_video_are_not_attached(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with FakeApixo(generation_seconds=0.3) as fake:
        fake.video_bytes = b"<html><script>alert(1)</script></html>"
        async with running_world(
            fake_discord, tmp_path, **FAST, **fake.settings_overrides()
        ) as world:
            await submit(world, "a fox")
            (post,) = await eventually(lambda: posts(world), timeout=20)
            task = await only_task(world)
    assert task.state is TaskState.SUCCEEDED
    assert not post["attachments"]
    fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
    raw_id = (task.provider_task_id or "").split(":")[-1]
    assert fields["Video"] == f"[Open the video]({fake.media_url(raw_id)})"


async def test_a_stalled_video_download_gives_up_and_posts_the_link(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    async with FakeApixo(generation_seconds=0.3) as fake:
        fake.inject("slow", times=-1, path="/cdn/", delay=60)  # the video never comes
        async with running_world(
            fake_discord, tmp_path, **FAST, **fake.settings_overrides()
        ) as world:
            world.bot.fetcher.deadline = 1.0
            began = time.monotonic()
            await submit(world, "a slow river")
            (post,) = await eventually(lambda: posts(world), timeout=20)
            took = time.monotonic() - began
            task = await only_task(world)
    assert took < 20  # the deadline, not the 60 s stall (or a 30 s read timeout)
    assert task.state is TaskState.SUCCEEDED and not post["attachments"]
    fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
    assert fields["Video"].startswith("[Open the video](http://127.0.0.1:")


async def test_openai_video_too_big_to_attach_is_moved_to_the_listener(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    listen = free_port()
    async with FakeOpenAI(generation_seconds=0.2) as fake:
        fake.video_bytes = b"\x00\x00\x00\x18ftypmp42" + b"\1" * 4000
        async with running_world(
            fake_discord, tmp_path, **FAST, **fake.settings_overrides(),
            webhook_listen=f"127.0.0.1:{listen}", webhook_public_url=f"http://127.0.0.1:{listen}",
        ) as world:  # fmt: skip
            await submit(world, "big", attachment_size_limit=1024)
            (post,) = await eventually(lambda: posts(world), timeout=20)
            fields = {f["name"]: f["value"] for f in post["embeds"][0]["fields"]}
            match = re.fullmatch(r"\[Open the video\]\((.+)\)", fields["Video"])
            assert match is not None
            async with httpx.AsyncClient() as client:
                served = await client.get(match[1])
            published = list((tmp_path / "media").iterdir())
    assert not post["attachments"]
    assert match[1].startswith(f"http://127.0.0.1:{listen}/media/")
    assert served.status_code == 200 and served.content == fake.video_bytes
    assert [p.suffix for p in published] == [".mp4"]


class FetchingApixo(FakeApixo):
    """Like the real service: on create, it downloads the picture from the URL it got."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fetched: list[tuple[str, int, str, bytes]] = []

    async def _create(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        body = req.json if isinstance(req.json, dict) else {}
        for url in (body.get("input") or {}).get("image_urls") or []:
            async with aiohttp.ClientSession() as session, session.get(url) as answer:
                picture = await answer.read()
                kind = answer.headers.get("Content-Type", "")
                self.fetched.append((url, answer.status, kind, picture))
        return await super()._create(req, m)


async def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "generate", *args,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_generate_serves_a_local_picture_to_a_url_provider(tmp_path: Path) -> None:
    picture = make_png(640, 480)
    (tmp_path / "still.png").write_bytes(picture)
    port = free_port()
    async with FetchingApixo(generation_seconds=0.3) as fake:
        env = {
            **fake.env(),
            "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
            "WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        code, _out, err = await run_cli(
            ["animate this", "--image", "still.png", "--poll-seconds", "0.1", "--out", "v.mp4"],
            env,
            tmp_path,
        )
        task: FakeTask = next(iter(fake.tasks.values()))
    assert code == 0, err
    ((url, status, kind, fetched),) = fake.fetched
    assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/media/[A-Za-z0-9_-]{{43}}\.png", url)
    assert (status, kind, fetched) == (200, "image/png", picture)
    assert task.params["image_urls"] == [url] and task.mode == "image"
    assert (tmp_path / "v.mp4").read_bytes() == fake.video_bytes
    async with httpx.AsyncClient() as client:  # served while it ran, not after
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
