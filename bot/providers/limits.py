"""Client-side cap on a provider's concurrent tasks (UlazAI: 10, APIXO: 1,000).

Wraps any adapter: a submit beyond the cap is refused before a request is sent
(`ProviderBusyError`, which the service turns into "try again soon", uncharged), and a
task frees its slot when a status check or callback reports it finished. After a
restart the tracker hands back the unfinished task ids with `restore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.errors import ProviderBusyError
from bot.providers.base import (
    Capabilities,
    GenerationRequest,
    Media,
    ProviderStatus,
    Submission,
    VideoProvider,
)


class TaskCap:
    def __init__(self, inner: VideoProvider, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self._active: set[str] = set()
        self._submitting = 0
        self.name = inner.name
        self.display_name = inner.display_name

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    @property
    def active(self) -> int:
        return len(self._active) + self._submitting

    def restore(self, provider_task_ids: Iterable[str]) -> None:
        self._active.update(provider_task_ids)

    def _observe(self, task_id: str | None, status: ProviderStatus) -> ProviderStatus:
        if task_id is not None and status.state.is_final:
            self._active.discard(task_id)
        return status

    async def submit(self, request: GenerationRequest) -> Submission:
        # Counted before the await, so concurrent submits cannot all see a free slot.
        if self.active >= self._limit:
            raise ProviderBusyError(self._inner.display_name, self._limit)
        self._submitting += 1
        try:
            submission = await self._inner.submit(request)
        finally:
            self._submitting -= 1
        if not submission.status.state.is_final:
            self._active.add(submission.provider_task_id)
        return submission

    async def status(self, provider_task_id: str) -> ProviderStatus:
        return self._observe(provider_task_id, await self._inner.status(provider_task_id))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        status = self._inner.parse_callback(headers, body)
        return self._observe(status.provider_task_id, status)

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        return await self._inner.media(provider_task_id, status)
