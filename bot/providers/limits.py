"""Client-side cap on a provider's concurrent tasks (UlazAI: 10, APIXO: 1,000).

Wraps any adapter: a submit beyond the cap is refused before a request is sent
(`ProviderBusyError`, which the service turns into "try again soon", uncharged).

A slot is an unfinished task of this provider in the store (`ActiveCount`, bound by the
bot to `Store.count_active_provider_tasks`), so a task frees its slot by becoming final
in the store, whichever way that happens: a status check, a callback, expiry after the
maximum age, an unknown-task answer. A set of ids kept here, freed only when a status or
callback passing through named the same id, leaked slots: APIXO callbacks name the bare
id where the adapter's is `model:id`, and expiry or an unknown-task answer pass through
no status at all. After enough of those every submit was refused as busy until a
restart.

Two things the store cannot know yet are added here: submits in flight, and tasks just
submitted whose provider id the caller has not recorded yet (it does so right after
`submit` returns; a concurrent submit in between would miss them). The store is handed
those ids and counts the ones it has no record of, so a task is counted once, and one
that has already ended is not counted at all. Without a store (`sora-bot generate`
makes one video) only those are counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping

from bot.errors import ProviderBusyError
from bot.providers.base import (
    Capabilities,
    GenerationRequest,
    Media,
    ProviderStatus,
    Submission,
    VideoProvider,
)

ActiveCount = Callable[[Collection[str]], Awaitable[int]]
"""How many of the provider's tasks are unfinished: those the store records as such,
plus those of the given just-submitted provider task ids it has no record of yet."""

# How long a submitted id is handed to the count: far longer than the one write between
# a submit returning and its id being recorded, after which the store alone knows it.
RECORD_GRACE_SECONDS = 30.0


async def _none_recorded(just_submitted: Collection[str]) -> int:
    return len(just_submitted)


class TaskCap:
    def __init__(
        self,
        inner: VideoProvider,
        limit: int,
        *,
        count_active: ActiveCount = _none_recorded,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._count_active = count_active
        self._clock = clock
        self._submitting = 0
        self._recent: dict[str, float] = {}  # provider task id -> when its submit returned
        self._admission = asyncio.Lock()
        self.name = inner.name
        self.display_name = inner.display_name

    def count_active_with(self, count_active: ActiveCount) -> None:
        """Count the unfinished tasks in this store from now on (the bot binds its own;
        the provider is built before the store is known to it)."""
        self._count_active = count_active

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    @property
    def accepts_signed_webhooks(self) -> bool:
        return self._inner.accepts_signed_webhooks

    async def active(self) -> int:
        """Slots taken: unfinished tasks in the store, and those it may not know yet."""
        now = self._clock()
        self._recent = {
            task_id: at for task_id, at in self._recent.items() if now - at < RECORD_GRACE_SECONDS
        }
        # Both read before the await: a submit that returns meanwhile moves from one to
        # the other, and must not fall between them.
        recent, submitting = frozenset(self._recent), self._submitting
        return await self._count_active(recent) + submitting

    async def submit(self, request: GenerationRequest) -> Submission:
        return await self._in_a_slot(lambda: self._inner.submit(request))

    async def remix(self, provider_task_id: str, prompt: str) -> Submission:
        """A remix is a new task at the provider: it takes a slot like any submit."""
        return await self._in_a_slot(lambda: self._inner.remix(provider_task_id, prompt))

    async def _in_a_slot(self, create: Callable[[], Awaitable[Submission]]) -> Submission:
        # Counted and taken under one lock (the count awaits the store): concurrent
        # submits cannot all see the last free slot.
        async with self._admission:
            if await self.active() >= self._limit:
                raise ProviderBusyError(self._inner.display_name, self._limit)
            self._submitting += 1
        try:
            submission = await create()
        finally:
            self._submitting -= 1
        if not submission.status.state.is_final:
            self._recent[submission.provider_task_id] = self._clock()
        return submission

    async def status(self, provider_task_id: str) -> ProviderStatus:
        return await self._inner.status(provider_task_id)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        return self._inner.parse_callback(headers, body)

    def same_task(self, stored_id: str, reported_id: str) -> bool:
        return self._inner.same_task(stored_id, reported_id)

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        return await self._inner.media(provider_task_id, status)
