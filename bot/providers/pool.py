"""The configured providers, in the order `SORA_PROVIDER` lists them, and failover.

`SORA_PROVIDER=apixo,sora2api,ulazai` makes a pool of three; a single name, a pool of
one (the bot behaves as before). Each new job goes to the first healthy provider
(`bot.providers.health`, kept in the store so every process and a restart agree); a
create that fails for a reason about the provider, not the request, goes on to the next
one, inside the same command answer and charged once (the quota was reserved once).

Which failures move a job on is decided here and nowhere else (`failover_reason`):
out of credits, a rejected key, the service unreachable or failing (5xx, timeouts)
after the HTTP layer's retries, a 429 that outlasted its retry, and the client-side
concurrency cap. A refusal about the request (content policy, a bad picture) does
not fail over: another provider would refuse it too, or worse, accept what one
provider's policy refused. A request one provider cannot plan (an aspect it lacks, a
prompt too long for it) simply goes to one that can, and is refused only if none can.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.domain import Task, utc_now
from bot.errors import (
    BotError,
    InsufficientCreditsError,
    InvalidInputError,
    ProviderAuthError,
    ProviderBusyError,
    ProviderUnavailableError,
    RateLimitedError,
)
from bot.metrics import Metrics
from bot.providers.base import Capabilities, Submission, VideoProvider
from bot.providers.health import Availability, FailoverReason, Health, availability
from bot.store import Store

log = logging.getLogger(__name__)


def failover_reason(error: BaseException) -> FailoverReason | None:
    """Why `error` should move a job to the next provider, or None if it should not."""
    match error:
        case InsufficientCreditsError():
            return FailoverReason.CREDITS
        case ProviderAuthError():
            return FailoverReason.AUTH
        case RateLimitedError():
            return FailoverReason.RATE_LIMITED
        case ProviderBusyError():
            return FailoverReason.BUSY
        case ProviderUnavailableError() | TimeoutError():
            return FailoverReason.UNAVAILABLE
        case _:
            return None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A provider took the job: which one, its answer, and the providers it moved on
    from (name and why), in order."""

    provider: VideoProvider
    submission: Submission
    passed: tuple[tuple[str, FailoverReason], ...] = ()
    notes: tuple[str, ...] = ()


class AllProvidersFailedError(ProviderUnavailableError):
    """No configured provider could take the job (each failed, or is cooling down)."""


def merged_capabilities(providers: Sequence[VideoProvider]) -> Capabilities:
    """What the pool can make: the union of its providers' options (the commands offer
    them; each job is planned again for the provider that takes it)."""
    first = providers[0].capabilities
    if len(providers) == 1:
        return first
    caps = [p.capabilities for p in providers]

    return replace(
        first,
        modes=frozenset(m for c in caps for m in c.modes),
        aspects=tuple(dict.fromkeys(a for c in caps for a in c.aspects)),
        durations=tuple(sorted({d for c in caps for d in c.durations})),
        qualities=tuple(dict.fromkeys(q for c in caps for q in c.qualities)),
        max_prompt_length=max(c.max_prompt_length for c in caps),
        duration_selectable=any(c.duration_selectable for c in caps),
        remix=any(c.remix for c in caps),
        max_image_bytes=max(c.max_image_bytes for c in caps),
    )


class ProviderPool:
    def __init__(
        self,
        providers: Sequence[VideoProvider],
        *,
        store: Store | None = None,
        cooldown: float = 300.0,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Without a `store` (the `generate` CLI) health is not kept: every create tries
        the providers in order."""
        if not providers:
            raise ValueError("a pool needs at least one provider")
        self._providers = tuple(providers)
        self._by_name = {p.name: p for p in self._providers}
        self._store = store
        self._cooldown = cooldown
        self._metrics = metrics
        self._clock = clock

    @property
    def capabilities(self) -> Capabilities:
        """What the pool can make (`merged_capabilities`), for the commands' choices."""
        return merged_capabilities(self._providers)

    @property
    def primary(self) -> VideoProvider:
        return self._providers[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __iter__(self) -> Iterator[VideoProvider]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)

    def get(self, name: str) -> VideoProvider | None:
        """The provider a task names (None: not configured any more)."""
        return self._by_name.get(name)

    def of(self, name: str) -> VideoProvider:
        """The provider a task names, or the first one for a provider since removed
        (what its outcome post shows; its status is not asked of the wrong one)."""
        return self._by_name.get(name, self._providers[0])

    def made_by(self, task: Task) -> str:
        """Which provider made a task's video, as its post says it: its display name,
        and the one that failed it first when it was retried elsewhere."""
        name = self.of(task.provider).display_name
        if task.retried_from is None:
            return name
        first = self._by_name.get(task.retried_from)
        return f"{name} (retried after {first.display_name if first else task.retried_from} failed)"

    @classmethod
    def of_one(cls, provider: VideoProvider | ProviderPool) -> ProviderPool:
        """`provider` as a pool (callers and tests that have one provider)."""
        return provider if isinstance(provider, ProviderPool) else cls([provider])

    @property
    def failover(self) -> bool:
        """Health is kept, and providers skipped while cooling down, only with somewhere
        else to go: a single provider is always tried (as before failover existed), and
        costs no store call for it."""
        return self._store is not None and len(self._providers) > 1

    async def health(self) -> dict[str, Health]:
        if self._store is None:
            return {name: Health(name) for name in self.names}
        return await self._store.provider_health(self.names)

    async def submit(
        self,
        attempt: Callable[[VideoProvider], Awaitable[tuple[Submission, tuple[str, ...]]]],
        *,
        exclude: Collection[str] = (),
    ) -> Accepted:
        """Give the job to the first provider that takes it. `attempt` plans the request
        for one provider and sends it (returning its answer and the planning notes).
        Raises the request's own refusal as it is; `AllProvidersFailedError` when every
        provider failed or is cooling down (nothing was created anywhere)."""
        candidates = [p for p in self._providers if p.name not in exclude]
        health = await self.health() if self.failover else {}
        now = self._clock()
        passed: list[tuple[str, FailoverReason]] = []
        planning: InvalidInputError | None = None
        last: BotError | None = None
        for index, provider in enumerate(candidates):
            state = availability(health.get(provider.name, Health(provider.name)), now)
            if state is Availability.COOLING:
                continue
            if state is Availability.PROBE and not await self._claim_probe(provider.name):
                continue
            try:
                submission, notes = await attempt(provider)
            except InvalidInputError as exc:
                planning = planning or exc  # this provider can't make it; another may
                continue
            except (BotError, TimeoutError) as exc:
                reason = failover_reason(exc)
                if reason is None:
                    raise
                more = index + 1 < len(candidates)
                await self._record(provider.name, ok=False, reason=reason, failover=more)
                log.warning("create at %s failed (%s): %s", provider.name, reason.value, exc)
                passed.append((provider.name, reason))
                last = exc if isinstance(exc, BotError) else None
                continue
            if health.get(provider.name, Health(provider.name)) != Health(provider.name):
                await self._record(provider.name, ok=True)  # ends a run of failures
            elif self._metrics is not None:
                self._metrics.provider_creates.labels(provider=provider.name, result="ok").inc()
            return Accepted(provider, submission, tuple(passed), notes)
        if planning is not None and not passed:
            raise planning
        if last is not None and len(candidates) == 1:
            raise last  # one provider: its own words, as before failover existed
        raise AllProvidersFailedError(
            self.primary.name,
            "every video service the bot uses failed or is cooling down: "
            + ", ".join(f"{name} ({why.value})" for name, why in passed),
        )

    async def _claim_probe(self, provider: str) -> bool:
        return self._store is None or await self._store.claim_probe(provider)

    async def _record(
        self,
        provider: str,
        *,
        ok: bool,
        reason: FailoverReason | None = None,
        failover: bool = False,
    ) -> None:
        if self._metrics is not None:
            self._metrics.provider_creates.labels(
                provider=provider, result="ok" if ok else (reason.value if reason else "error")
            ).inc()
            if failover:
                self._metrics.provider_failovers.labels(provider=provider).inc()
        if not self.failover or self._store is None:
            return
        try:
            await self._store.record_create(
                provider,
                ok=ok,
                reason=None if reason is None else reason.value,
                failover=failover,
                cooldown=self._cooldown,
            )
        except Exception:
            log.exception("could not record a create at %s", provider)
