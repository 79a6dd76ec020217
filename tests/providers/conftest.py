"""Fixtures the provider tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web


@dataclass
class Received:
    """One request a provider's callback made to the receiver."""

    headers: dict[str, str]
    body: bytes


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[Received]]]:
    """A callback address on 127.0.0.1 that records what is POSTed to it."""
    got: list[Received] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(Received(dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/callbacks/token", got
    finally:
        await runner.cleanup()
