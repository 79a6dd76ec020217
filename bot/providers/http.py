"""Talking HTTP to a provider: retries, rate limits, and classifying every answer.

Retry policy (the reason this module exists):
- A status check is free and idempotent: 429, 5xx, gateway HTML pages, timeouts,
  connection errors and malformed bodies are retried with exponential backoff and
  jitter, waiting at least the provider's Retry-After, all within a per-request time
  budget: a wait that would end past it is reported (the error's `retry_after`), not
  slept, so the caller (the tracker, `sora-bot generate`) schedules the next check.
- Creating a task costs money. It is sent again only when it is certain the first
  attempt never reached the provider: the connection was refused (nothing was sent)
  or the provider answered 429 (it refused the request without creating anything).
  A timeout, a reset connection, a 5xx or a garbled 200 may all hide a task that was
  created, so they are reported, never retried: a duplicate paid job is worse than
  asking the user to try again.
Every failure leaves as a typed `ProviderError`; nothing else escapes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from bot.errors import (
    InsufficientCreditsError,
    ProviderAuthError,
    ProviderError,
    ProviderRefusedError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownProviderTaskError,
)
from bot.fetch import MAX_VIDEO_BYTES, VIDEO_DEADLINE_SECONDS, Fetcher, Spooled, retry_after_seconds
from bot.url_policy import MediaFetchError, MediaPolicy, MediaTimeoutError, MediaUnavailableError

log = logging.getLogger(__name__)

CONTENT_POLICY_WORDS = ("policy", "moderation", "violat", "safety", "nsfw", "inappropriate")
EnvelopeCheck = Callable[[Any], None]


class NotSentError(ProviderUnavailableError):
    """The request certainly never reached the provider (connection refused)."""


class RequestRateLimiter:
    """A token bucket: at most `per_minute` requests a minute, bursts included."""

    def __init__(self, per_minute: int) -> None:
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._rate = per_minute / 60.0
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._updated) * self._rate
                )
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)


def looks_like_content_policy(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in CONTENT_POLICY_WORDS)


def describe_body(response: httpx.Response) -> str:
    """The provider's own error words, short, from JSON or an HTML page."""
    content_type = response.headers.get("content-type", "")
    text = response.text.strip()
    if "html" in content_type or text.startswith("<"):
        return f"HTTP {response.status_code} with an HTML page (a gateway error)"
    try:
        body = json.loads(text)
    except ValueError:
        return f"HTTP {response.status_code}: {text[:200] or 'empty body'}"
    return f"HTTP {response.status_code}: {error_text(body) or text[:200]}"


def error_text(body: Any) -> str:
    """Find the human-readable message in the error shapes providers use."""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    for key in ("message", "msg", "error", "errorMessage", "failMsg", "error_details", "detail"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("message") or value.get("code")
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    return "; ".join(parts)[:300]


def raise_for_code(
    provider: str,
    code: int,
    message: str,
    *,
    retry_after: float | None = None,
    unknown_task_id: str | None = None,
) -> None:
    """Map an HTTP status, or an HTTP-like `code` in a 200 envelope, to a typed error."""
    if 200 <= code < 300:
        return
    if code in (401, 403):
        raise ProviderAuthError(provider, message)
    if code == 402:
        raise InsufficientCreditsError(provider, message)
    if code == 429:
        raise RateLimitedError(provider, retry_after, message)
    if code == 404 and unknown_task_id is not None:
        raise UnknownProviderTaskError(provider, unknown_task_id, message)
    if code >= 500 or code in (404, 408, 409, 425):
        raise ProviderUnavailableError(provider, message, retry_after)
    raise ProviderRefusedError(
        provider, message, content_policy=code == 422 or looks_like_content_policy(message)
    )


def check_envelope(provider: str, body: Any, *, unknown_task_id: str | None = None) -> None:
    """For `{code, msg|message, data}` envelopes (APIXO, Sora2API, soravideo.art): the
    body's `code` decides, whatever the HTTP status said."""
    if not isinstance(body, dict) or "code" not in body:
        raise ProviderUnavailableError(provider, "answer without an envelope code")
    try:
        code = int(body["code"])
    except (TypeError, ValueError):
        raise ProviderUnavailableError(provider, f"odd envelope code {body['code']!r}") from None
    raise_for_code(
        provider, code, error_text(body) or f"code {code}", unknown_task_id=unknown_task_id
    )


def _envelope_code(body: Any) -> int | None:
    """An HTTP-like error `code` in a JSON body, which some providers set more precisely
    than the HTTP status (a 400 whose body says 402 is out of credits)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and error.get("code") == "insufficient_quota":
        return 402  # OpenAI-style: a 429 that no amount of waiting fixes
    code = body.get("code")
    if isinstance(code, int | str) and str(code).isdigit() and 400 <= int(code) < 600:
        return int(code)
    return None


class ProviderHTTP:
    """One provider's view of the shared `httpx.AsyncClient`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        base_url: str,
        auth_header: tuple[str, str],
        requests_per_minute: int | None = None,
        max_attempts: int = 4,
        max_retry_seconds: float = 30.0,
        backoff_initial: float = 0.5,
    ) -> None:
        self._client = client
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._auth_header = auth_header
        self._limiter = RequestRateLimiter(requests_per_minute) if requests_per_minute else None
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial, max=10.0, jitter=backoff_initial
        )

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        paid: bool = False,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        check: EnvelopeCheck | None = None,
        unknown_task_id: str | None = None,
    ) -> Any:
        """Send, retry as the policy above allows, and return the parsed JSON body."""

        async def attempt() -> Any:
            response = await self._send(method, path, json_body, params, data, files)
            return self._parse(response, check, unknown_task_id)

        return await self._with_retries(attempt, paid=paid, what=f"{method} {path}")

    async def request_file(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        limit: int = MAX_VIDEO_BYTES,
        deadline: float = VIDEO_DEADLINE_SECONDS,
    ) -> Spooled:
        """GET a file (a finished video) into a temporary file the caller then owns.

        Streamed, never read whole: at most `limit` bytes, and `deadline` seconds for all
        attempts together, so a provider dripping bytes cannot hold a delivery forever.
        The key goes only to the provider's own origin; a redirect elsewhere is vetted
        like any media URL (`bot.fetch`) and gets no key.
        """
        url = str(httpx.URL(self.url(path), params=params))
        fetcher = Fetcher(self._client, MediaPolicy([self.base_url]))
        headers = {self._auth_header[0]: self._auth_header[1]}
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline

        async def attempt() -> Spooled:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                return await fetcher.download(
                    url, limit=limit, deadline=max(0.0, ends - loop.time()), headers=headers
                )
            except MediaUnavailableError as exc:
                if exc.status is None:
                    raise ProviderUnavailableError(self.provider, exc.detail) from None
                answer = httpx.Response(
                    exc.status, headers={"content-type": exc.content_type}, content=exc.body
                )
                raise_for_code(
                    self.provider,
                    exc.status,
                    describe_body(answer),
                    retry_after=exc.retry_after,
                    unknown_task_id=path,
                )
                raise ProviderUnavailableError(self.provider, exc.detail) from None
            except MediaTimeoutError as exc:
                raise ProviderUnavailableError(self.provider, f"download {exc.detail}") from None
            except MediaFetchError as exc:  # too large, or an address refused: final
                raise ProviderError(self.provider, exc.user_message, exc.detail) from None

        try:
            async with asyncio.timeout(deadline):
                result: Spooled = await self._with_retries(attempt, paid=False, what=f"GET {path}")
        except TimeoutError:
            raise ProviderUnavailableError(
                self.provider, f"download not finished after {deadline:.0f}s"
            ) from None
        return result

    async def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, str] | None,
        data: dict[str, str] | None,
        files: dict[str, tuple[str, bytes, str]] | None,
    ) -> httpx.Response:
        if self._limiter is not None:
            await self._limiter.acquire()
        url = self.url(path)
        own = url.startswith(self.base_url)
        headers = {self._auth_header[0]: self._auth_header[1]} if own else {}
        try:
            return await self._client.request(
                method, url, json=json_body, params=params, data=data, files=files, headers=headers
            )
        except httpx.ConnectError as exc:
            raise NotSentError(self.provider, f"could not connect: {type(exc).__name__}") from None
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(
                self.provider, f"timed out ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(
                self.provider, f"connection failed ({type(exc).__name__})"
            ) from None

    def _parse(
        self, response: httpx.Response, check: EnvelopeCheck | None, unknown_task_id: str | None
    ) -> Any:
        retry_after = retry_after_seconds(response)
        body: Any = None
        parsed = False
        try:
            body = response.json()
            parsed = True
        except ValueError:
            pass
        if response.status_code >= 300:
            message = error_text(body) if parsed else ""
            raise_for_code(
                self.provider,
                _envelope_code(body) or response.status_code,
                f"HTTP {response.status_code}: {message}" if message else describe_body(response),
                retry_after=retry_after,
                unknown_task_id=unknown_task_id,
            )
        if not parsed:
            raise ProviderUnavailableError(
                self.provider, f"unreadable answer ({describe_body(response)})"
            )
        if check is not None:
            check(body)
        return body

    async def _with_retries(self, attempt: Callable[[], Any], *, paid: bool, what: str) -> Any:
        def should_retry(error: BaseException) -> bool:
            if isinstance(error, RateLimitedError):
                return True  # a 429 made nothing, paid or not; the stop below bounds the wait
            if paid:
                return isinstance(error, NotSentError)
            return isinstance(error, ProviderUnavailableError)

        def wait(state: RetryCallState) -> float:
            # Never sooner than the provider asked (Retry-After, on a 429 or a 5xx alike).
            backoff = self._backoff(state)
            error = state.outcome.exception() if state.outcome else None
            hinted = getattr(error, "retry_after", None) or 0.0
            return max(backoff, hinted)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s %s failed (%s); retry %d in %.1fs",
                self.provider,
                what,
                error,
                state.attempt_number,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(should_retry),
            wait=wait,
            # The budget counts the coming sleep too (tenacity decides the wait first): a
            # wait that would end past it is not slept here but reported, the error
            # carrying its `retry_after`, to the caller that schedules the next check (the
            # tracker, `sora-bot generate`). Sleeping it here hid it from them: a gateway's
            # 503 saying "Retry-After: 3600" held one status call, and the CLI, for an hour.
            stop=(
                stop_after_attempt(self._max_attempts) | stop_before_delay(self._max_retry_seconds)
            ),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except ProviderError:
            raise
        except Exception as exc:  # a bug in an adapter's check must not crash the caller
            log.exception("%s %s: unexpected error while reading the answer", self.provider, what)
            raise ProviderUnavailableError(self.provider, f"unexpected answer ({exc!r})") from None
