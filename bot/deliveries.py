"""Handing finished tasks to the Discord side, one post per task at a time.

The tracker finishes tasks; posting their outcomes (which downloads the video first)
happens here, with its own bound apart from the status checks, so a slow download or
post never holds up another task's check. A post that fails is left `pending` in the
store, and the tracker's redelivery pass brings it back here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Protocol

from bot.domain import NotifyState, Task
from bot.metrics import Metrics

log = logging.getLogger("bot.tracker")

# Posts (each downloads its video first) under way at once. Apart from the check
# slots, and wide: a few slow downloads must leave room for everyone else's posts.
DELIVERY_CONCURRENCY = 32


class Deliverer(Protocol):
    async def deliver(self, task: Task) -> None: ...

    async def progress(self, task: Task) -> None: ...


class Deliveries:
    def __init__(
        self,
        deliverer: Deliverer,
        *,
        metrics: Metrics,
        concurrency: int = DELIVERY_CONCURRENCY,
    ) -> None:
        self._deliverer = deliverer
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self.running: set[asyncio.Task[None]] = set()
        self._delivering: set[str] = set()  # task ids being posted: never two at once

    async def stop(self) -> None:
        """Cancel the posts under way: they stay `pending`/`posting` in the store, and
        the next start posts them (the notifier looks for a post already made first)."""
        work = list(self.running)
        for job in work:
            job.cancel()
        if work:
            await asyncio.gather(*work, return_exceptions=True)

    async def progress(self, task: Task) -> None:
        await self._safely(self._deliverer.progress(task))

    async def deliver_if_due(self, task: Task) -> None:
        if task.state.is_terminal and task.notify_state in (
            NotifyState.PENDING,
            NotifyState.POSTING,
        ):
            await self._deliver(task)

    async def _deliver(self, task: Task) -> None:
        """Post one task's outcome, unless a post of it is already under way here.

        A redelivery pass can find a task that its own check (or a callback) is still
        posting; two posts at once would race to Discord, so the second one simply
        leaves it to the first (which, failing, leaves it `pending` for the next pass)."""
        if task.id in self._delivering:
            return
        self._delivering.add(task.id)
        try:
            async with self._slots:
                await self._safely(self._deliverer.deliver(task))
        finally:
            self._delivering.discard(task.id)

    def deliver_soon(self, task: Task) -> None:
        """Post in the background (tracked: `Tracker.drain` waits, `stop` cancels)."""
        if task.id in self._delivering:
            return
        job = asyncio.create_task(self._redeliver(task), name=f"deliver-{task.id}")
        self.running.add(job)
        job.add_done_callback(self.running.discard)

    async def _redeliver(self, task: Task) -> None:
        try:
            await self.deliver_if_due(task)
        except asyncio.CancelledError:
            raise
        except Exception:  # whatever failed, the next pass tries again
            log.exception("redelivering task %s failed; will try again", task.id)

    async def _safely(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("posting to Discord failed; it will be retried")
            self._metrics.discord_failures.inc()
