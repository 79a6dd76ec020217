"""The real `python -m bot` process: starts against the Discord fake, stops cleanly on signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeDiscord
from tests.fakes.providers import FakeApixo
from tests.helpers import free_port


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
    assert "providers demo" in output and "in 1 guild(s)" in output
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


async def test_real_process_listener_refuses_forged_and_misrouted_reports(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """Black box: the real process with APIXO and a public listener. A forged report at
    the webhook door, at a guessed callback address, and /metrics without its token are
    all refused the same way, and nothing is logged that names a secret."""
    port = free_port()
    guild = fake_discord.add_guild("Process Guild")
    async with FakeApixo() as apixo:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DISCORD_TOKEN": fake_discord.token,
            "DISCORD_API_BASE": fake_discord.api_base,
            "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
            "DISCORD_GUILD_IDS": str(guild.id),
            "SORA_PROVIDER": "apixo",
            "APIXO_API_KEY": apixo.api_key,
            "APIXO_BASE_URL": apixo.base_url,
            "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
            "WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "METRICS_TOKEN": "metrics-token-for-the-test",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        seen: list[str] = []
        try:
            await asyncio.wait_for(_read_until(process.stdout, "ready as", seen), timeout=30)
            base = f"http://127.0.0.1:{port}"
            metadata = '{"resultUrls": ["http://169.254.169.254/latest"]}'
            forged = {"code": 200, "data": {"taskId": "t1", "state": "success",
                                            "resultJson": metadata}}  # fmt: skip
            async with httpx.AsyncClient() as client:
                webhook = await client.post(f"{base}/webhooks/openai", json=forged)
                guessed = await client.post(f"{base}/callbacks/guessed-token", json=forged)
                unknown = await client.post(f"{base}/nothing-here", json=forged)
                metrics = await client.get(f"{base}/metrics")
                allowed = await client.get(
                    f"{base}/metrics",
                    headers={"Authorization": "Bearer metrics-token-for-the-test"},
                )
                health = await client.get(f"{base}/healthz")
            process.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    output = "".join(seen) + rest.decode()
    assert (webhook.status_code, webhook.text) == (unknown.status_code, unknown.text)
    assert (guessed.status_code, guessed.text) == (unknown.status_code, unknown.text)
    assert unknown.status_code == 404
    assert metrics.status_code == 401 and allowed.status_code == 200
    assert health.status_code == 200 and health.json()["database"] is True
    assert process.returncode == 0 and "Traceback" not in output
    assert "metrics-token-for-the-test" not in output and apixo.api_key not in output
    assert apixo.requests_for("status") == []  # nothing forged was followed up
