"""Small helpers shared by the end-to-end and provider tests."""

from __future__ import annotations

import asyncio
import os
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


def _ephemeral_range() -> range:
    """The ports the kernel hands to outgoing connections (Linux's default if unreadable)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            low, high = (int(part) for part in file.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


_next_port = 20000 + os.getpid() % 5000


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on right now, for a listener a test starts.

    Why not `bind(0)`: that hands out a port from the kernel's ephemeral range, the same
    range every outgoing connection of the suite draws its source port from, so between
    this call and the listener binding, a client could take it ("address already in use",
    seen in CI). Ports below that range are only ever taken by someone binding on purpose.
    """
    global _next_port
    ephemeral = _ephemeral_range()
    while True:
        _next_port = _next_port + 1 if _next_port < 30000 else 20000
        port = _next_port
        if port in ephemeral:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
