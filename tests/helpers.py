"""Small helpers shared by the end-to-end and provider tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import httpx

from bot.providers.http import ProviderHTTP
from tests.conftest import BotWorld


async def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, and return that."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)


def posts(world: BotWorld, channel_id: int | None = None) -> list[dict[str, Any]]:
    """Messages the bot created in a guild channel (not interaction responses)."""
    cid = channel_id or int(world.guild.channels[0]["id"])
    return [m for m in world.fake.channel_messages.get(cid, []) if m.get("nonce")]


def fast_http(
    client: httpx.AsyncClient, provider: str, base_url: str, key: str, scheme: str = "Bearer"
) -> ProviderHTTP:
    """The production HTTP layer with millisecond backoff, so retry tests stay quick."""
    return ProviderHTTP(
        client,
        provider=provider,
        base_url=base_url,
        auth_header=("Authorization", f"{scheme} {key}"),
        backoff_initial=0.01,
        max_retry_seconds=5,
    )


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on right now (for a listener a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
