"""Fetching a URL that someone else chose: a provider's status answer, a callback, a CLI flag.

Such a URL is a way into the bot's own network (SSRF) unless it is checked, and a slow or
endless body is a way to tie the bot up. So every media fetch goes through here:

- `MediaPolicy.vet` accepts a URL only if it is `https`, or has exactly the origin
  (scheme, host, port) of the provider's configured base URL, so a self-hosted gateway or
  a local test server keeps working. Any other host must resolve only to public
  addresses: loopback, private, link-local, CGNAT, multicast, reserved and cloud-metadata
  addresses are refused, IPv4 hidden inside IPv6 included.
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
import ipaddress
import logging
import os
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import httpx

from bot.errors import BotError

log = logging.getLogger(__name__)

MAX_VIDEO_BYTES = 256 * 1024 * 1024  # a 12 s 1080p clip is tens of MB; this is a ceiling
VIDEO_DEADLINE_SECONDS = 180.0
IMAGE_DEADLINE_SECONDS = 60.0
RESOLVE_TIMEOUT_SECONDS = 5.0
MAX_REDIRECTS = 5
FLUSH_BYTES = 1024 * 1024  # spool writes are batched: one thread hop per MiB, not per chunk
HEAD_BYTES = 64
ERROR_BODY_BYTES = 4096
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the IP addresses it resolves to (as strings). Injected by tests.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Ranges `ipaddress`'s flags do not all catch on Python 3.11, named for the reader.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT (also Alibaba's metadata, 100.100.100.200)
        "192.0.0.0/24",  # IETF protocol assignments (incl. Oracle's 192.0.0.192)
        "198.18.0.0/15",  # benchmarking
        "fd00:ec2::/32",  # AWS metadata over IPv6 (fd00:ec2::254)
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


# Errors: each carries a sentence a member can read (`user_message`) and, for the log,
# `detail` (which may name the address; the user message never does).


class MediaFetchError(BotError):
    """A media URL could not be fetched; `user_message` says why in plain words."""

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(user_message)
        self.detail = detail or user_message

    def __str__(self) -> str:
        return self.detail


class UnsafeMediaURLError(MediaFetchError):
    """The address is not one the bot fetches or posts (SSRF protection)."""

    def __init__(self, detail: str) -> None:
        super().__init__("the video service gave a video address I won't fetch", detail)


class MediaUnresolvableError(MediaFetchError):
    """The host name did not resolve right now; it may next time (DNS trouble)."""

    def __init__(self, detail: str) -> None:
        super().__init__("the video's address could not be looked up right now", detail)


class MediaTooLargeError(MediaFetchError):
    def __init__(self, limit: int, detail: str = "") -> None:
        super().__init__(
            f"the file is larger than {limit / 1_048_576:.1f} MB", detail or f"over {limit} bytes"
        )
        self.limit = limit


class MediaTimeoutError(MediaFetchError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the download took longer than {seconds:.0f} seconds",
            f"not finished after {seconds:.1f}s",
        )


class MediaUnavailableError(MediaFetchError):
    """An HTTP error status (`status` set) or a connection problem (`status` None)."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: bytes = b"",
        content_type: str = "",
    ) -> None:
        super().__init__("the file could not be downloaded", detail)
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.content_type = content_type


# Addresses


def is_public_address(address: Address) -> bool:
    """Whether connecting to `address` cannot reach the bot's own host or network."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None and not is_public_address(embedded):
            return False
    if address in METADATA_ADDRESSES or any(address in n for n in _BLOCKED_NETWORKS):
        return False
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    return address.is_global


def _parse_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int


def origin_of(url: str | httpx.URL) -> Origin | None:
    """(scheme, host, port) with the default port filled in; None if not http(s)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    scheme = parsed.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parsed.host:
        return None
    return Origin(scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS[scheme])


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class MediaPolicy:
    """Which media URLs the bot may fetch or post: see the module docstring."""

    def __init__(
        self,
        trusted: Iterable[str | None] = (),
        *,
        resolver: Resolver = system_resolver,
        resolve_timeout: float = RESOLVE_TIMEOUT_SECONDS,
    ) -> None:
        """`trusted`: URLs whose exact origin is trusted as is (the active provider's
        configured base URL); None entries are ignored (the demo provider has none)."""
        self.trusted = frozenset(o for o in (origin_of(u) for u in trusted if u) if o)
        self._resolver = resolver
        self._resolve_timeout = resolve_timeout

    def trusts(self, url: str | httpx.URL) -> bool:
        origin = origin_of(url)
        return origin is not None and origin in self.trusted

    async def vet(self, url: str) -> str:
        """Return `url` if it may be fetched or posted, else raise `UnsafeMediaURLError`
        (or `MediaUnresolvableError` when DNS fails: not a verdict, try again later)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise UnsafeMediaURLError("not a valid URL") from None
        origin = origin_of(parsed)
        if origin is None:
            raise UnsafeMediaURLError(f"not an http(s) URL: {parsed.scheme or '?'}:")
        if parsed.userinfo:
            raise UnsafeMediaURLError("a URL with a user name or password")
        if origin in self.trusted:
            return url
        if origin.scheme != "https":
            raise UnsafeMediaURLError(f"plain http to {origin.host}, not the provider's address")
        literal = _parse_address(origin.host)
        if literal is not None:
            addresses: Sequence[str] = [origin.host]
        else:
            try:
                async with asyncio.timeout(self._resolve_timeout):
                    addresses = await self._resolver(origin.host, origin.port)
            except (OSError, TimeoutError) as exc:
                raise MediaUnresolvableError(f"{origin.host}: {exc or 'timed out'}") from None
            except ValueError:  # a name IDNA cannot encode: nothing to look up, ever
                raise UnsafeMediaURLError(f"{origin.host!r} is not a valid host name") from None
        if not addresses:
            raise MediaUnresolvableError(f"{origin.host}: no addresses")
        for text in addresses:
            address = _parse_address(text)
            if address is None or not is_public_address(address):
                where = origin.host if literal else f"{origin.host} resolves to {text}, which"
                raise UnsafeMediaURLError(f"{where} is a non-public address")
        return url

    async def safe(self, url: str | None) -> str | None:
        """`url` if it passes `vet` now, else None (for links and thumbnails, which are
        dropped rather than failing anything)."""
        if not url:
            return None
        try:
            return await self.vet(url)
        except MediaFetchError as exc:
            log.warning("not using a media address: %s", exc.detail)
            return None

    def check_peer(self, url: str, peer: str) -> None:
        """After connecting, before sending: the address actually reached must be public
        (unless the URL is the trusted origin). Defeats DNS rebinding."""
        if self.trusts(url):
            return
        address = _parse_address(peer)
        if address is None or not is_public_address(address):
            raise UnsafeMediaURLError(f"connected to {peer}, a non-public address")


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


def _retry_after(response: httpx.Response) -> float | None:
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
            retry_after=_retry_after(response),
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
