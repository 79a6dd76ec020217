"""Follows every unfinished task to its end: polls as a safety net, applies callbacks.

The schedule lives in the store (`next_check_at`), so a bot killed at any moment picks
every unfinished task up again when it starts. Each cycle claims the tasks that are
due, checks them with bounded concurrency and a timeout each, and writes the next check
time. Every cycle catches, logs and goes on; a supervisor restarts the loop if it ever
dies, so one bad task or a database hiccup never stops the others.

Finishing a task is one store call (`Store.finish`): the final state and its charge or
refund are written in one transaction, the same path the service closes a refused
submission through; then the outcome is delivered. A final task is therefore always
settled, and on start the final tasks that were not delivered are simply delivered
again.

The concurrency bound covers the provider's status call only. Delivering downloads the
video and posts it, which a slow link can stretch to minutes, so it runs outside the
check slots (with its own, wider bound), and the redeliveries on start and every half
minute run in the background: neither the loop nor other tasks wait for a slow post,
and one task is never posted twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.deliveries import DELIVERY_CONCURRENCY, Deliverer, Deliveries
from bot.domain import (
    Approval,
    GenerationTime,
    Task,
    TaskState,
    TaskUpdate,
    settlement_for,
    utc_now,
)
from bot.errors import (
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownProviderTaskError,
)
from bot.metrics import Metrics
from bot.polling import PollPlanner, PollPlanners, generation_time
from bot.providers.base import (
    FailureCode,
    ProviderState,
    ProviderStatus,
    VideoProvider,
)
from bot.providers.pool import ProviderPool
from bot.schedule import Schedule
from bot.store import Store
from bot.url_policy import MediaFetchError, MediaPolicy, MediaUnresolvableError
from bot.waiting import wake_or_timeout

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1  # how often due tasks are claimed (a cycle every tick, not after it)
CLAIM_BATCH = 500
CHECK_TIMEOUT_SECONDS = 45.0
QUEUED_GRACE_SECONDS = 300.0  # a task reserved but never sent this long ago was lost in a crash
MAX_BACKOFF_SECONDS = 300.0
# A provider's Retry-After is obeyed up to this: a task parked further out (a bogus date)
# would not even be claimed to expire, and would hold its provider slot all that time.
MAX_RETRY_AFTER_SECONDS = 3600.0
REDELIVER_EVERY = timedelta(seconds=30)


# Failures about the request itself: another provider would refuse it too.
REQUEST_FAULTS = frozenset({FailureCode.CONTENT_POLICY, FailureCode.INVALID_IMAGE})

# Sends a failed task to another provider (`SoraService.resubmit`): the task as moved,
# or None when no other provider took it.
Resubmit = Callable[[Task, str], Awaitable[Task | None]]


class Tracker:
    def __init__(
        self,
        *,
        store: Store,
        provider: VideoProvider | ProviderPool,
        deliverer: Deliverer,
        polling: PollPlanner | PollPlanners,
        max_age: timedelta,
        resubmit: Resubmit | None = None,
        concurrency: int = 16,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        tick_seconds: float = TICK_SECONDS,
        media_policy: MediaPolicy,
        delivery_concurrency: int = DELIVERY_CONCURRENCY,
    ) -> None:
        """`media_policy` (required, no default: a forgotten one must not mean "fetch
        anything") decides which video URLs a success may name; built from the active
        provider's configured address. `polling` says when to check each task, and
        learns from every video that finishes. `resubmit` sends a task that failed at
        its provider for a provider-side reason to the next one, once (failover)."""
        self._media_policy = media_policy
        self._store = store
        self._tick = tick_seconds
        self._providers = ProviderPool.of_one(provider)
        self.polling = polling if isinstance(polling, PollPlanners) else PollPlanners(polling)
        self._resubmit = resubmit
        self._max_age = max_age
        self._slots = asyncio.Semaphore(concurrency)
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._errors: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._runner: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._inflight: set[str] = set()
        self._next_redelivery = clock() + REDELIVER_EVERY
        # Posting (which downloads the video) has its own bound, apart from the check
        # slots, so a slow download or post never holds up another task's status check.
        self.deliveries = Deliveries(
            deliverer, metrics=self._metrics, concurrency=delivery_concurrency
        )

    # Lifecycle

    async def start(self) -> None:
        await self.polling.load()
        await self.recover()
        self._runner = asyncio.create_task(self._supervise(), name="tracker")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        # Deliveries cut short stay `pending`/`posting` in the store: the next start
        # posts them (the notifier looks for a post already made first).
        work = list(self._checks)
        for job in work:
            job.cancel()
        if work:
            await asyncio.gather(*work, return_exceptions=True)
        await self.deliveries.stop()

    def wake(self) -> None:
        self._wake.set()

    async def recover(self) -> None:
        """After a restart: close tasks lost between reservation and submission, and
        deliver what finished but was not posted.

        (The provider's task cap needs nothing here: it counts unfinished tasks in the
        store, see `bot.providers.limits`.)"""
        # Finished (and settled with it) before the stop but not posted: post, in the
        # background: a slow download must not hold up the start. The tasks closed below
        # were not final yet, so they are not in this list and are not posted twice.
        for task in await self._store.undelivered_tasks():
            self.deliveries.deliver_soon(task)
        unfinished = await self._store.unfinished_tasks()
        now = self._clock()
        for task in unfinished:
            if task.approval is Approval.PENDING:
                continue  # held for a moderator; it comes due when it expires
            if task.provider_task_id is None and task.state is TaskState.QUEUED:
                age = (now - task.started_at).total_seconds()
                if age > QUEUED_GRACE_SECONDS:
                    # The bot stopped between reserving and submitting: the provider never
                    # answered, so there is nothing to follow. Refund and say so.
                    await self._finish(
                        task,
                        TaskUpdate(
                            TaskState.FAILED,
                            failure_code=FailureCode.PROVIDER_ERROR.value,
                            failure_reason="the bot restarted before the video service answered",
                        ),
                    )
            elif task.next_check_at is None:
                await self._reschedule(task, now)

    async def _supervise(self) -> None:
        while True:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker loop crashed; restarting it in a second")
                self._metrics.loop_restarts.inc()
                await asyncio.sleep(1)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker cycle failed; trying again next cycle")
            self._wake.clear()
            # Fixed rate: the time a cycle took is not added to the wait for the next.
            pause = max(0.0, self._tick - (loop.time() - began))
            await wake_or_timeout(self._wake, pause)

    async def run_once(self) -> int:
        """Claim due tasks and start their checks; returns how many were claimed."""
        now = self._clock()
        if now >= self._next_redelivery:
            # Posts that failed (Discord down, a crash mid-post) are tried again, each in
            # the background: this loop goes on claiming and checking meanwhile.
            self._next_redelivery = now + REDELIVER_EVERY
            for task in await self._store.undelivered_tasks():
                self.deliveries.deliver_soon(task)
        # The claim pushes each task's next check one interval ahead, so a check that
        # changes nothing (the common case: still running, no progress reported) needs no
        # write of its own; only news is written. A check still in flight when its task
        # comes due again is not started twice.
        await self.polling.refresh_if_due()
        due = await self._store.claim_due_tasks(now, CLAIM_BATCH, self.polling.lease)
        started = 0
        for task in due:
            if task.id in self._inflight:
                continue
            self._inflight.add(task.id)
            check = asyncio.create_task(self._check(task), name=f"check-{task.id}")
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)
            check.add_done_callback(functools.partial(self._done, task.id))
            started += 1
        return started

    def _done(self, task_id: str, _: asyncio.Task[None]) -> None:
        self._inflight.discard(task_id)

    async def drain(self) -> None:
        """Wait for the checks and deliveries already started (tests and benchmarks)."""
        while self._checks or self.deliveries.running:
            await asyncio.gather(*self._checks, *self.deliveries.running, return_exceptions=True)

    # One task

    async def _check(self, task: Task) -> None:
        try:
            await self._check_now(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking task %s failed; will try again", task.id)
            with contextlib.suppress(Exception):
                await self._reschedule(task, self._clock(), error=True)

    async def _check_now(self, task: Task) -> None:
        now = self._clock()
        if task.approval is Approval.PENDING:
            # A held request comes due when nobody approved it in time: it expires,
            # refunded (one transaction), and the requester is told.
            expired = await self._store.decide(task.id, task.guild_id, Approval.EXPIRED, None)
            if expired is not None:
                await self.deliveries.deliver_if_due(expired)
            return
        if now - task.started_at > self._max_age:
            await self._finish(
                task,
                TaskUpdate(
                    TaskState.EXPIRED,
                    failure_code=FailureCode.EXPIRED.value,
                    failure_reason=f"not finished after {self._max_age}",
                ),
            )
            return
        provider = self._providers.get(task.provider)
        if task.provider_task_id is None or provider is None:
            if provider is None:
                log.warning(
                    "task %s is at %s, which is no longer configured", task.id, task.provider
                )
            await self._reschedule(task, now, error=provider is None)
            return
        try:
            # The slot covers the status call only. Applying the answer may download and
            # post the video, which can take minutes on a slow link: holding a slot for
            # that would stall every other task's checks behind one slow provider.
            async with self._slots:
                status = await asyncio.wait_for(
                    provider.status(task.provider_task_id), CHECK_TIMEOUT_SECONDS
                )
        except RateLimitedError as exc:
            self._metrics.provider_requests.labels(result="rate_limited").inc()
            await self._reschedule(task, now, error=True, at_least=exc.retry_after)
            return
        except UnknownProviderTaskError as exc:
            self._metrics.provider_requests.labels(result="unknown_task").inc()
            if (now - task.started_at).total_seconds() < 120:
                await self._reschedule(task, now, error=True)  # not listed yet, just created
                return
            await self._finish(
                task,
                TaskUpdate(
                    TaskState.FAILED,
                    failure_code=FailureCode.PROVIDER_ERROR.value,
                    failure_reason=exc.detail,
                ),
            )
            return
        except (ProviderError, TimeoutError) as exc:
            self._metrics.provider_requests.labels(result="error").inc()
            log.warning("status of task %s: %s", task.id, exc)
            # A 5xx can carry a Retry-After too (a gateway in maintenance); the HTTP layer
            # reports one longer than its retry budget rather than sleeping it.
            hinted = exc.retry_after if isinstance(exc, ProviderUnavailableError) else None
            await self._reschedule(task, now, error=True, at_least=hinted)
            return
        self._metrics.provider_requests.labels(result="ok").inc()
        self._errors.pop(task.id, None)
        if task.next_check_at is not None and task.checked_at is not None:
            # As claimed: when this check was due. How late the answer to a repeat check
            # came, claim and request together, is the plans' headroom (a first check is
            # not spaced by the interval, and a burst of them would inflate it).
            self.polling.checked_late((self._clock() - task.next_check_at).total_seconds())
        if self.polling.of(task.provider).nothing_new(task, status, now):
            return  # the claim already scheduled the next check
        # The claimed task is as it was before the claim: `checked_at` is the previous
        # check, the last one that found it unfinished.
        await self.apply(task.id, status, running_at=task.checked_at)

    def _schedule_of(self, task: Task) -> Schedule:
        return self.polling.of(task.provider).schedule_for(task.mode, task.options)

    async def apply(
        self, task_id: str, status: ProviderStatus, *, running_at: datetime | None = None
    ) -> Task | None:
        """Record what a poll or a callback said. Late, duplicated and out-of-order
        reports change nothing: a final task stays final, and states never go back.

        `running_at`: when the task was last seen unfinished (a poll passes its previous
        check; for a callback, the stored last check is that), which bounds how long the
        generation took when the provider does not say."""
        lock = self._locks.setdefault(task_id, asyncio.Lock())
        try:
            async with lock:
                task = await self._store.get_task(task_id)
                if task is None or task.state.is_terminal:
                    return task
                now = self._clock()
                match status.state:
                    case ProviderState.QUEUED | ProviderState.RUNNING:
                        state = (
                            TaskState.RUNNING
                            if status.state is ProviderState.RUNNING
                            else task.state
                        )
                        if state is TaskState.QUEUED:
                            state = TaskState.SUBMITTED
                        elapsed = (now - task.started_at).total_seconds()
                        delay = self._schedule_of(task).next_delay(elapsed, status.progress)
                        progress = status.progress
                        if progress is not None and task.progress is not None:
                            progress = max(progress, task.progress)
                        updated = await self._store.update_task(
                            task.id,
                            TaskUpdate(
                                state,
                                progress=progress,
                                next_check_at=now + timedelta(seconds=delay),
                            ),
                        )
                        if updated.progress != task.progress or updated.state != task.state:
                            await self.deliveries.progress(updated)
                        return updated
                    case ProviderState.SUCCEEDED:
                        # The video URL comes from a status answer or a callback: an address
                        # the bot must not fetch or post (SSRF) fails the task, refunded.
                        if status.video_url:
                            try:
                                await self._media_policy.vet(status.video_url)
                            except MediaUnresolvableError as exc:
                                # DNS trouble is no verdict: the next poll asks again.
                                log.warning("task %s: cannot check its video URL: %s", task.id, exc)
                                return task
                            except MediaFetchError as exc:
                                log.warning("task %s: refused its video URL: %s", task.id, exc)
                                return await self._finish(
                                    task,
                                    TaskUpdate(
                                        TaskState.FAILED,
                                        failure_code=FailureCode.PROVIDER_ERROR.value,
                                        failure_reason=(
                                            "the video service gave a video address I won't fetch"
                                        ),
                                    ),
                                )
                        took = generation_time(task, status, now, running_at or task.checked_at)
                        return await self._finish(
                            task,
                            TaskUpdate(
                                TaskState.SUCCEEDED,
                                result_url=status.video_url,
                                thumbnail_url=await self._media_policy.safe(status.thumbnail_url),
                                took=took,
                            ),
                        )
                    case ProviderState.FAILED:
                        code = status.failure_code or FailureCode.PROVIDER_ERROR
                        reason = (status.failure_message or code.value)[:500]
                        self._metrics.provider_task_failures.labels(task.provider, code.value).inc()
                        if (moved := await self._elsewhere(task, code, reason)) is not None:
                            return moved
                        return await self._finish(
                            task,
                            TaskUpdate(
                                TaskState.FAILED,
                                failure_code=code.value,
                                failure_reason=reason,
                            ),
                        )
        finally:
            if not lock.locked():
                self._locks.pop(task_id, None)

    async def _elsewhere(self, task: Task, code: FailureCode, reason: str) -> Task | None:
        """A task its provider failed for a reason about the provider (not its content,
        not the picture) goes to the next provider, once; None if it cannot."""
        if self._resubmit is None or task.retried_from is not None or code in REQUEST_FAULTS:
            return None
        return await self._resubmit(task, reason)

    def _learned(self, task: Task, took: GenerationTime, now: datetime) -> None:
        """A video this process just finished (and stored its time): plan with it now,
        and count how long after the provider's end the bot noticed."""
        self.polling.of(task.provider).learn(task.mode, task.options, took)
        elapsed = (now - task.started_at).total_seconds()
        self._metrics.notice_lag.observe(max(0.0, elapsed - took.seconds))

    async def _finish(self, task: Task, update: TaskUpdate) -> Task:
        """Close the task (final state plus charge or refund, one transaction), then
        deliver. A task some other report already closed is returned as it is."""
        finished = await self._store.finish(task.id, update, settle=settlement_for(update.state))
        if finished is None:
            current = await self._store.get_task(task.id)
            assert current is not None
            return current
        self._errors.pop(task.id, None)
        if update.took is not None:
            self._learned(task, update.took, self._clock())
        started = task.started_at
        if finished.completed_at is not None:
            self._metrics.task_seconds.observe((finished.completed_at - started).total_seconds())
        await self.deliveries.deliver_if_due(finished)
        return finished

    async def _reschedule(
        self, task: Task, now: datetime, *, error: bool = False, at_least: float | None = None
    ) -> None:
        if error:
            count = self._errors.get(task.id, 0) + 1
            self._errors[task.id] = count
            backoff = min(MAX_BACKOFF_SECONDS, self._schedule_of(task).interval * 2**count)
            delay = backoff * random.uniform(0.8, 1.2)
        else:
            elapsed = (now - task.started_at).total_seconds()
            delay = self._schedule_of(task).next_delay(elapsed, task.progress)
        if at_least is not None:
            delay = max(delay, min(at_least, MAX_RETRY_AFTER_SECONDS))
        await self._store.set_next_check(task.id, now + timedelta(seconds=delay))
