"""When a failed Discord call is worth trying again, and how long to wait before it.

The notifier rides out Discord failing for a while (5xx, a rate limit it would not
wait out, a dropped connection) by posting again with growing pauses; a 403 or 404 is
an answer and is not retried.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aiohttp
import discord


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Discord call may simply work later: Discord's servers failing
    (any 5xx; discord.py gives up on 500/502/504 after a few tries and raises a 503 at
    once), a rate limit it would not wait out, or the connection breaking or timing out.
    A 403 or 404 is an answer, not a hiccup: that channel will not take the post."""
    if isinstance(exc, discord.HTTPException):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, discord.RateLimited | aiohttp.ClientError | OSError | TimeoutError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a post that failed for a passing reason is tried again.

    The first retry comes within seconds (most 5xx are momentary), the pauses double up
    to `max_delay` so an outage is not hammered, and retries go on for `window` seconds
    from the first failure (a quarter of an hour: a short outage is ridden out, a long
    one does not leave the requester waiting with nothing) before the DM."""

    first_delay: float = 2.0
    max_delay: float = 60.0
    window: float = 15 * 60.0

    def delay(self, failures: int) -> float:
        """The pause after the `failures`-th failure in a row, with jitter so that the
        posts held up by one outage do not all come back in the same second."""
        base = min(self.max_delay, self.first_delay * 2.0 ** max(0, failures - 1))
        return base * random.uniform(0.75, 1.0)


@dataclass
class Retry:
    """A task whose post keeps failing: when it began, how often, the pending retry."""

    first_failure: float  # time.monotonic()
    failures: int = 0
    timer: asyncio.Task[None] | None = None
