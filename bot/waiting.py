"""Waiting for a wake-up or a timeout, without losing a cancellation.

`asyncio.wait_for(event.wait(), seconds)` on Python 3.11 swallows a cancellation that
arrives in the same loop iteration as the event being set: the waiter returns normally
and a loop around it runs on, so `stop()` waits for it forever (seen as a test run that
hung in teardown). `asyncio.timeout` keeps the cancellation; every background loop
waits through this one function.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wake_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Return when `event` is set or after `seconds`, whichever comes first; a
    cancellation always propagates."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
