"""Fault injection: Discord failing on purpose, so tests can watch the bot cope.

:meth:`FaultsMixin.fail_next` answers matching REST requests with an error (optionally after
carrying the request out, as when Discord's edge fails after the write), ``delay_next`` slows
them, and ``drop_next`` closes the connection without an answer. A 429 carries the headers
and body discord.py reads (``Via``, ``retry_after`` in the body, ``X-RateLimit-*``): without
``Via`` discord.py takes it for a Cloudflare ban and does not retry (FACTS.md §9).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from .state import FakeState
from .wire import RecordedRequest, Reply


@dataclass
class FaultRule:
    """A fault injected with :meth:`FakeDiscord.fail_next` (status None = delay only)."""

    method: str
    pattern: re.Pattern[str]
    status: int | None
    times: int
    retry_after: float | None = None
    body: Any = None
    global_: bool = False
    delay: float = 0.0
    hits: int = 0
    after: bool = False  # carry the request out first, then answer with the fault
    drop: bool = False  # close the connection instead of answering


class FaultsMixin(FakeState):
    """Fault rules on REST requests; :class:`~.rest.RestMixin` applies them."""

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: Any = None,
        global_: bool = False,
        delay: float = 0.0,
        after: bool = False,
    ) -> FaultRule:
        """Answers the next ``times`` matching requests with ``status``.

        ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched in the path relative to
        the API base (e.g. ``r"/channels/\\d+/messages$"``). A 429 looks like Discord's (JSON body,
        rate-limit headers, ``Via``); ``retry_after`` defaults to 0.05 s. ``body``: dict/list ->
        JSON, str/bytes -> text/html (like a Cloudflare page). Matching requests are recorded.
        ``after=True``: the request is carried out first (the message is created, the nonce
        remembered) and only the answer is lost, as when Discord's edge fails after the write.
        """
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=status,
            times=times,
            retry_after=retry_after,
            body=body,
            global_=global_,
            delay=delay,
            after=after,
        )
        self._faults.append(rule)
        return rule

    def delay_next(
        self, method: str, path_regex: str, seconds: float, *, times: int = 1
    ) -> FaultRule:
        """Delays the next matching requests by ``seconds``, then answers them normally."""
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=None,
            times=times,
            delay=seconds,
        )
        self._faults.append(rule)
        return rule

    def drop_next(
        self, method: str, path_regex: str, *, times: int = 1, after: bool = True
    ) -> FaultRule:
        """Closes the connection of the next matching requests without an answer.

        With ``after=True`` (the default) the request is carried out first, so the client
        cannot tell whether it took effect: the case a retry with the same nonce exists for.
        """
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=None,
            times=times,
            after=after,
            drop=True,
        )
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, rec: RecordedRequest) -> FaultRule | None:
        for rule in self._faults:
            if rule.times <= 0 or rule.method not in ("*", rec.method):
                continue
            if rule.pattern.search(rec.path):
                rule.times -= 1
                rule.hits += 1
                return rule
        return None


def fault_reply(rule: FaultRule) -> Reply:
    """The answer a fault rule gives: a 429 shaped as discord.py reads it, else Discord's
    default error body for the status (or the rule's own ``body``)."""
    status = int(rule.status or 500)
    if status == 429:
        retry_after = 0.05 if rule.retry_after is None else float(rule.retry_after)
        body = (
            rule.body
            if rule.body is not None
            else {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": rule.global_,
            }
        )
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": hashlib.md5(rule.pattern.pattern.encode()).hexdigest(),
            "X-RateLimit-Scope": "global" if rule.global_ else "user",
            "Via": "1.1 google",
        }
        if rule.global_:
            headers["X-RateLimit-Global"] = "true"
    else:
        defaults: dict[int, tuple[str, int]] = {
            400: ("400: Bad Request", 0),
            401: ("401: Unauthorized", 0),
            403: ("Missing Permissions", 50013),
            404: ("404: Not Found", 0),
            500: ("500: Internal Server Error", 0),
            502: ("502: Bad Gateway", 0),
            503: ("503: Service Unavailable", 0),
            504: ("504: Gateway Timeout", 0),
        }
        message, code = defaults.get(status, (f"{status}: Error", 0))
        body = rule.body if rule.body is not None else {"message": message, "code": code}
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(rule.retry_after)))
    if isinstance(body, str | bytes):
        raw = body.encode() if isinstance(body, str) else body
        return Reply(status, None, headers, raw=raw, content_type="text/html")
    return Reply(status, body, headers)
