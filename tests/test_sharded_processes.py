"""Issue 16's acceptance, black box: two real `python -m bot` processes with SHARD_COUNT=2
and SHARD_IDS 0 and 1 over one PostgreSQL database serve servers on both shards; every
video is delivered exactly once; when one process is killed (SIGKILL, mid-generation) the
other finishes its task; starting it again posts nothing twice."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tests.discord.test_postgres_e2e import database  # noqa: F401  (the fixture)
from tests.fakes import FakeDiscord, FakeGuild
from tests.fakes.providers import FakeApixo
from tests.helpers import eventually


async def _ready(process: asyncio.subprocess.Process, seen: list[str]) -> None:
    assert process.stdout is not None
    while True:
        line = await process.stdout.readline()
        if not line:
            raise AssertionError("the process ended before it was ready:\n" + "".join(seen))
        seen.append(line.decode())
        if "ready as" in seen[-1]:
            return


async def _drain(process: asyncio.subprocess.Process, seen: list[str]) -> None:
    assert process.stdout is not None
    async for line in process.stdout:
        seen.append(line.decode())


class Shard:
    """One bot process running one shard."""

    def __init__(self, shard: int, env: dict[str, str], folder: Path) -> None:
        self.env = {**env, "SHARD_IDS": str(shard)}
        self.folder = folder
        self.seen: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.folder.mkdir(exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot",
            cwd=self.folder, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        await asyncio.wait_for(_ready(self.process, self.seen), timeout=30)
        self.reader = asyncio.create_task(_drain(self.process, self.seen))

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


def guild_on_shard(fake: FakeDiscord, shard: int) -> FakeGuild:
    while True:
        guild = fake.add_guild(f"Shard {shard}")
        if (guild.id >> 22) % 2 == shard:
            return guild
        fake.guilds.pop(guild.id)


async def test_two_processes_share_the_work_and_survive_a_kill(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    database: str,  # noqa: F811
) -> None:
    guilds = [guild_on_shard(fake_discord, 0), guild_on_shard(fake_discord, 1)]
    alice = fake_discord.add_user("alice")
    for guild in guilds:
        guild.add_member(alice)
    async with FakeApixo(generation_seconds=2.0) as provider:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DISCORD_TOKEN": fake_discord.token,
            "DISCORD_API_BASE": fake_discord.api_base,
            "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
            "DISCORD_GUILD_IDS": ",".join(str(g.id) for g in guilds),
            "DATABASE_URL": database,
            "SHARD_COUNT": "2",
            "POLL_FIRST_DELAY_SECONDS": "0.2",
            "POLL_INTERVAL_SECONDS": "0.2",
            **provider.env(),
        }
        shards = [Shard(0, env, tmp_path / "p0"), Shard(1, env, tmp_path / "p1")]
        try:
            for shard in shards:
                await shard.start()
            for guild in guilds:
                answer = await fake_discord.send_command(
                    guild, alice, "sora", fake_discord.sub("text", prompt=f"in {guild.name}")
                )
                await answer.wait_final()
                assert "on its way" in answer.text(), answer.all_text()
            await shards[1].kill()  # SIGKILL, while both videos are still being made

            def posts(guild: FakeGuild) -> list[dict[str, Any]]:
                channel = int(guild.channels[0]["id"])
                return [m for m in fake_discord.channel_messages.get(channel, []) if m.get("nonce")]

            await eventually(lambda: all(posts(g) for g in guilds), timeout=30)
            await shards[1].start()  # back: it must not post anything again
            await asyncio.sleep(2.0)
            assert [len(posts(g)) for g in guilds] == [1, 1]
            assert all("your video is ready" in posts(g)[0]["content"] for g in guilds)
            assert len(provider.requests_for("create")) == 2
        finally:
            for shard in shards:
                await shard.stop()
        output = "".join(shards[0].seen + shards[1].seen)
        assert "Traceback" not in output, output
        assert "not syncing commands" in "".join(shards[1].seen)
        assert fake_discord.token not in output
