"""The real `python -m bot` process: starts against the Discord fake, stops cleanly on signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.fakes import FakeDiscord


async def _read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError("process ended before: " + marker + "\n" + "".join(seen))
        seen.append(line.decode())
        if marker in seen[-1]:
            return


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_process_connects_logs_ready_and_stops_cleanly_on_signal(
    fake_discord: FakeDiscord, tmp_path: Path, sig: signal.Signals
) -> None:
    guild = fake_discord.add_guild("Process Guild")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DISCORD_TOKEN": fake_discord.token,
        "DISCORD_API_BASE": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "DISCORD_GUILD_IDS": str(guild.id),
        "DATABASE_URL": "sqlite:///data/bot.sqlite3",
        "LOG_LEVEL": "DEBUG",
        "APIXO_API_KEY": "apixo-secret-key-123",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(_read_until(process.stdout, "ready as", seen), timeout=30)
        await fake_discord.wait_commands_synced(guild.id)
        process.send_signal(sig)
        rest, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = "".join(seen) + rest.decode()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "shutting down" in output
    assert "provider demo" in output and "in 1 guild(s)" in output
    # DEBUG logs every gateway payload and request: no secret may appear in any of it.
    assert fake_discord.token not in output and "apixo-secret-key-123" not in output
    assert (tmp_path / "data" / "bot.sqlite3").exists()


async def test_rejected_token_is_a_configuration_error(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DISCORD_TOKEN": "not-the-right-token",
        "DISCORD_API_BASE": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    text = out.decode()
    assert process.returncode == 2, text
    assert "DISCORD_TOKEN: Discord rejected it" in text
    assert "Traceback" not in text and "not-the-right-token" not in text
