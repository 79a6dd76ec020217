"""Keeping the public listener answerable under slow and abusive clients.

aiohttp gives the listener its routes; this module gives it the limits aiohttp lacks: a
deadline for each connection's request (`ConnectionGuard`), a cap on open connections,
refusals logged at a bounded rate (`RejectionLog`) and task counts that a flood of
probes cannot turn into a flood of table scans (`CachedCounts`). `ListenerLimits` holds
every number in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

log = logging.getLogger("bot.webhooks")  # the listener's own lines, wherever they are built


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """The listener's deadlines and caps against slow and abusive clients.

    Providers send a report in one small burst and probes are a single line, so a few
    seconds is plenty for an honest client; the deadlines bound how long a stalled one
    holds a connection. The cap sits well above honest load (and above the 200 stalled
    sockets the hardening test opens) yet inside the usual 1,024 file descriptors.
    """

    request_timeout: float = 10.0  # accepted -> request line and headers complete
    body_timeout: float = 10.0  # headers complete -> body complete
    keepalive_timeout: float = 5.0  # an idle kept-alive connection is closed after this
    lingering_time: float = 2.0  # how long an unread body may still arrive after the answer
    shutdown_timeout: float = 5.0  # requests still being answered when the bot stops
    max_connections: int = 512
    counts_ttl: float = 5.0  # /healthz and /metrics reuse task counts this long
    counts_timeout: float = 5.0  # a count slower than this is a database failure
    rejections_per_minute: int = 10  # warnings about refused requests, then a count


# The limits every listener gets unless given its own (tests swap in shorter deadlines).
LIMITS = ListenerLimits()


class RejectionLog:
    """Warnings about refused requests: at most `per_minute` a minute, then one count.

    Forged reports and stalled sockets cost an attacker nothing, so one warning each
    would let anyone fill the disk and bury real problems. Each line names the kind of
    refusal and the peer address, never a body, a token or a header; what is left out
    is reported as a count with the next refusal after the minute, or at stop.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self._suppressed = 0

    def refused(self, what: str, peer: str | None) -> None:
        now = self._clock()
        if now - self._window_start >= 60:
            self.flush()
            self._window_start, self._logged = now, 0
        if self._logged < self._per_minute:
            self._logged += 1
            log.warning("refused %s from %s", what, peer or "an unknown peer")
        else:
            self._suppressed += 1

    def flush(self) -> None:
        if self._suppressed:
            log.warning(
                "refused %d more requests in the last minute (not logged one by one)",
                self._suppressed,
            )
            self._suppressed = 0


def _peer(transport: asyncio.BaseTransport | None) -> str | None:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's own handler behind the guard's deadline.

    Every protocol callback is passed straight through; the wrapper only adds the
    deadline (armed at accept, disarmed when a complete request reaches the app) and
    lets the guard count the connection and close it.
    """

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol, timeout: float) -> None:
        self._guard = guard
        self._inner = inner
        self._made = False
        self._closed = False
        self.transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            timeout, self._expire
        )

    @property
    def waiting_for_request(self) -> bool:
        return self._deadline is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self._closed:  # evicted between accept and now
            self.transport.abort()
            return
        self._made = True
        self._guard.attach(self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self._guard.forget(self)
        if self._made:
            self._inner.connection_lost(exc)

    def disarm(self) -> None:
        """A complete request arrived: from here on aiohttp's own timers apply."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def close(self) -> None:
        """Drop the connection at once (deadline passed, evicted, or the listener stops)."""
        self.disarm()
        self._closed = True
        self._guard.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def _expire(self) -> None:
        self._deadline = None
        what = "a connection that sent no complete request in time"
        self._guard.rejections.refused(what, _peer(self.transport))
        self.close()


class _Refused(asyncio.Protocol):
    """Closes a connection over the cap as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class ConnectionGuard:
    """Counts the listener's connections and closes those that stall.

    aiohttp has no deadline for the request line and headers (its keep-alive timer
    covers idle connections between requests, and the first request only in recent
    versions) and no cap on connections. So the listening socket's protocol factory is
    wrapped: an accepted connection must hand aiohttp a complete request within
    `request_timeout` or it is closed, and at most `max_connections` are open at once.
    At the cap the oldest connection still sending its request makes way for the new
    one (an honest client sends its headers in milliseconds, so it is never the oldest
    for long, and a flood of stalled sockets cannot lock callbacks out); only when every
    connection is busy being answered is the new one closed at once. Requests after the
    first on a kept-alive connection fall under aiohttp's short keep-alive timeout.
    """

    def __init__(
        self,
        make_handler: Callable[[], asyncio.Protocol],
        *,
        request_timeout: float,
        max_connections: int,
        rejections: RejectionLog,
    ) -> None:
        self._make_handler = make_handler
        self._timeout = request_timeout
        self._max = max_connections
        self.rejections = rejections
        self._open: dict[_Connection, None] = {}  # in order of arrival
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def factory(self) -> asyncio.Protocol:
        if len(self._open) >= self._max:
            oldest = next((c for c in self._open if c.waiting_for_request), None)
            if oldest is None:
                self.rejections.refused("a connection over the cap", None)
                return _Refused()
            self.rejections.refused("a stalled connection to make room", _peer(oldest.transport))
            oldest.close()
        connection = _Connection(self, self._make_handler(), self._timeout)
        self._open[connection] = None
        return connection

    def attach(self, connection: _Connection) -> None:
        if connection.transport is not None:
            self._by_transport[connection.transport] = connection

    def forget(self, connection: _Connection) -> None:
        self._open.pop(connection, None)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)

    def request_arrived(self, transport: asyncio.BaseTransport | None) -> None:
        connection = self._by_transport.get(transport) if transport is not None else None
        if connection is not None:
            connection.disarm()

    def close_all(self) -> None:
        for connection in list(self._open):
            connection.close()


class CountsUnavailableError(Exception):
    """The database could not be counted (it failed, or the read is stuck)."""


class CachedCounts:
    """Task counts for /healthz and /metrics, read from the store at most once per `ttl`.

    Counting scans the tasks table under the store's lock, which every tracker and
    command operation also takes: a probe, or a flood of them, must not queue scans in
    front of real work. Callers share the one read in flight; a failed or stuck read is
    reported as such (cached for the same `ttl`), so a broken database still shows.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[dict[str, int]]],
        *,
        ttl: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._outcome: dict[str, int] | BaseException | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def get(self) -> dict[str, int]:
        """The counts; `CountsUnavailableError` when the last read failed, `TimeoutError`
        when the read in flight takes longer than `timeout`."""
        if self._outcome is None or self._clock() - self._read_at >= self._ttl:
            if self._reading is None:
                self._reading = asyncio.create_task(self._read())
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(self._reading)
        outcome = self._outcome
        if outcome is None or isinstance(outcome, BaseException):
            # A new exception each time: re-raising the cached one would grow its traceback.
            raise CountsUnavailableError("the task counts could not be read") from outcome
        return outcome

    async def _read(self) -> None:
        try:
            self._outcome = await self._load()
        except Exception as exc:
            log.warning("could not count tasks for /healthz and /metrics: %s", type(exc).__name__)
            self._outcome = exc
        finally:
            self._read_at = self._clock()
            self._reading = None

    def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
