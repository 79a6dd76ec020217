"""Which URLs from someone else (a provider, a callback, a CLI flag) the bot may fetch.

`MediaPolicy.vet` accepts a URL only if it is `https`, or has exactly the origin (scheme,
host, port) of the provider's configured base URL, so a self-hosted gateway or a local
test server keeps working. Any other host must resolve only to public addresses:
loopback, private, link-local, CGNAT, multicast, reserved and cloud-metadata addresses
are refused, IPv4 hidden inside IPv6 included. `bot.fetch` applies the policy to every
hop of a download and to the peer each connection actually reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

from bot.errors import BotError

log = logging.getLogger("bot.fetch")


RESOLVE_TIMEOUT_SECONDS = 5.0
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
