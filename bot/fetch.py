"""Fetching a URL that someone else chose: a provider's status answer, a callback, a CLI flag.

Such a URL is a way into the bot's own network (SSRF) unless it is checked, and a slow or
endless body is a way to tie the bot up. So every media fetch goes through here:

- `MediaPolicy.vet` (in `bot.url_policy`) says which URLs may be fetched at all: `https`
  to public addresses only, or exactly the provider's configured origin.
- `Fetcher.download` follows redirects itself and vets every hop; the provider's key goes
  only to the trusted origin. After the TCP connection is made, and before a byte of the
  request is sent, the connected peer is checked again, so a DNS answer that changes
  between the check and the connect (DNS rebinding) still cannot reach inside.
- A download has a total deadline (not only a per-read timeout) and a byte cap enforced
  while streaming, and is spooled to a temporary file rather than held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import httpx

from bot.url_policy import (
    MediaPolicy,
    MediaTimeoutError,
    MediaTooLargeError,
    MediaUnavailableError,
    UnsafeMediaURLError,
)

log = logging.getLogger(__name__)

MAX_VIDEO_BYTES = 256 * 1024 * 1024  # a 12 s 1080p clip is tens of MB; this is a ceiling
VIDEO_DEADLINE_SECONDS = 180.0
IMAGE_DEADLINE_SECONDS = 60.0
MAX_REDIRECTS = 5
FLUSH_BYTES = 1024 * 1024  # spool writes are batched: one thread hop per MiB, not per chunk
HEAD_BYTES = 64
ERROR_BODY_BYTES = 4096
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Downloads


def looks_like_video(head: bytes) -> bool:
    """MP4/MOV (an `ftyp` box first) or WebM/Matroska (EBML magic): what Discord plays."""
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"


def file_looks_like_video(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return looks_like_video(handle.read(HEAD_BYTES))
    except OSError:
        return False


@dataclass(slots=True)
class Spooled:
    """A downloaded body on disk. Whoever holds it moves the file or calls `discard()`."""

    path: Path
    size: int
    head: bytes  # the first bytes, for recognising the format
    content_type: str = ""

    @classmethod
    def adopt(cls, path: Path) -> Spooled:
        """Take over a file someone else spooled (a provider's `Media.path`). Blocking."""
        try:
            with path.open("rb") as handle:
                head = handle.read(HEAD_BYTES)
            size = path.stat().st_size
        except OSError:
            head, size = b"", 0
        return cls(path, size, head)

    def is_video(self) -> bool:
        return looks_like_video(self.head)

    @property
    def extension(self) -> str:
        return "webm" if self.head[:4] == b"\x1a\x45\xdf\xa3" else "mp4"

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Spooled:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds, or an HTTP date (RFC 9110 allows both)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Fetcher:
    """Downloads URLs that a `MediaPolicy` allows, hop by hop, within a deadline and a cap."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: MediaPolicy,
        *,
        deadline: float = VIDEO_DEADLINE_SECONDS,
        max_redirects: int = MAX_REDIRECTS,
        folder: Path | None = None,
    ) -> None:
        self._client = client
        self.policy = policy
        self.deadline = deadline  # public so a test can shorten a running bot's
        self._max_redirects = max_redirects
        self._folder = folder

    async def download(
        self,
        url: str,
        *,
        limit: int,
        deadline: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Spooled:
        """Spool `url` to a temporary file. `headers` (a key) go only to trusted-origin hops.

        Raises `MediaFetchError` subclasses: unsafe address, too large, too slow, HTTP error.
        """
        seconds = self.deadline if deadline is None else deadline
        try:
            async with asyncio.timeout(seconds):
                return await self._follow(url, limit, headers or {})
        except TimeoutError:
            raise MediaTimeoutError(seconds) from None

    async def _follow(self, url: str, limit: int, headers: Mapping[str, str]) -> Spooled:
        current = url
        for _ in range(self._max_redirects + 1):
            await self.policy.vet(current)
            trusted = self.policy.trusts(current)
            sent = {"Accept-Encoding": "identity"}
            if trusted:
                sent.update(headers)
            request = self._client.build_request(
                "GET",
                current,
                headers=sent,
                extensions={} if trusted else {"trace": self._peer_guard(current)},
            )
            try:
                response = await self._client.send(request, stream=True, follow_redirects=False)
            except httpx.TimeoutException as exc:
                raise MediaUnavailableError(f"timed out ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise MediaUnavailableError(f"connection failed ({type(exc).__name__})") from None
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location:
                    current = str(response.url.join(location))
                    continue
                if response.status_code >= 300:
                    raise await self._status_error(response)
                return await self._spool(response, limit)
            finally:
                await response.aclose()
        raise MediaUnavailableError(f"more than {self._max_redirects} redirects")

    def _peer_guard(self, url: str) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
        """An httpx `trace` hook: runs right after the TCP connect, before TLS or the request."""
        # httpcore names the host it connects to in ASCII (an IDN as punycode).
        host = httpx.URL(url).raw_host.decode("ascii").lower()
        guard = _Guard()

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.started":
                # Through a proxy the peer is the proxy, not the URL's host: nothing to check.
                guard.active = str(info.get("host", "")).lower() == host
            elif event == "connection.connect_tcp.complete" and guard.active:
                stream = info.get("return_value")
                peer = stream.get_extra_info("server_addr") if stream is not None else None
                address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
                try:
                    self.policy.check_peer(url, address)
                except UnsafeMediaURLError:
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            await stream.aclose()
                    raise

        return trace

    async def _status_error(self, response: httpx.Response) -> MediaUnavailableError:
        body = bytearray()
        with contextlib.suppress(httpx.HTTPError):
            async for chunk in response.aiter_raw():
                body.extend(chunk[: ERROR_BODY_BYTES - len(body)])
                if len(body) >= ERROR_BODY_BYTES:
                    break
        return MediaUnavailableError(
            f"HTTP {response.status_code}",
            status=response.status_code,
            retry_after=retry_after_seconds(response),
            body=bytes(body),
            content_type=response.headers.get("content-type", ""),
        )

    async def _spool(self, response: httpx.Response, limit: int) -> Spooled:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise MediaTooLargeError(limit, f"declared {declared} bytes, over {limit}")
        handle, path = await asyncio.to_thread(self._new_file)
        size = 0
        head = bytearray()
        pending = bytearray()
        try:
            try:
                # Raw bytes: no decompression, so a small gzip body cannot blow up in memory.
                async for chunk in response.aiter_raw():
                    size += len(chunk)
                    if size > limit:
                        raise MediaTooLargeError(limit, f"over {limit} bytes while streaming")
                    if len(head) < HEAD_BYTES:
                        head.extend(chunk[: HEAD_BYTES - len(head)])
                    pending.extend(chunk)
                    if len(pending) >= FLUSH_BYTES:
                        await asyncio.to_thread(handle.write, bytes(pending))
                        pending.clear()
            except httpx.TimeoutException as exc:
                raise MediaUnavailableError(f"timed out ({type(exc).__name__})") from None
            except httpx.HTTPError as exc:
                raise MediaUnavailableError(f"connection failed ({type(exc).__name__})") from None
            if pending:
                await asyncio.to_thread(handle.write, bytes(pending))
            await asyncio.to_thread(handle.close)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise
        return Spooled(path, size, bytes(head), response.headers.get("content-type", ""))

    def _new_file(self) -> tuple[BinaryIO, Path]:
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="sora-", suffix=".part", dir=self._folder)
        return os.fdopen(fd, "wb"), Path(name)


@dataclass(slots=True)
class _Guard:
    active: bool = False
