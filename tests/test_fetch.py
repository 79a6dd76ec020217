"""`bot.fetch` and `bot.media`: which media URLs are fetched, and how downloads are bounded.

Every server here is started by the test on 127.0.0.1. Name lookups go through a resolver
injected into the policy, never real DNS, so a name can "resolve" to any address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from aiohttp import web

from bot.discord.notifier import Notifier
from bot.errors import ProviderError, ProviderUnavailableError
from bot.fetch import Fetcher, looks_like_video
from bot.media import MediaHost, serving_files
from bot.providers.base import Media, ProviderState
from bot.providers.http import ProviderHTTP
from bot.providers.openai import OpenAIProvider
from bot.url_policy import (
    MediaPolicy,
    MediaTimeoutError,
    MediaTooLargeError,
    MediaUnavailableError,
    MediaUnresolvableError,
    UnsafeMediaURLError,
)
from tests.fakes.providers import FakeOpenAI
from tests.fakes.providers.base import DEFAULT_MP4
from tests.helpers import fast_http, free_port

MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(200)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def resolver(table: dict[str, Sequence[str]]) -> Callable[[str, int], Awaitable[Sequence[str]]]:
    """Answers from `table`; records what was asked; unknown names do not exist."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        if host not in table:
            raise OSError(f"no such name: {host}")
        return table[host]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


@asynccontextmanager
async def server(routes: dict[str, Handler]) -> AsyncIterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1; yields its origin and the paths it was asked for."""
    hits: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        hits.append(request.path)
        return await handler(request)

    app = web.Application(middlewares=[record])
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


def video(body: bytes = MP4) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="video/mp4")

    return handle


def redirect(location: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location)

    return handle


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as c:
        yield c


# What vet refuses and allows


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/v.mp4",
        "https://127.8.9.10/v.mp4",
        "https://10.1.2.3/v.mp4",
        "https://172.16.0.1/v.mp4",
        "https://172.31.255.254/v.mp4",
        "https://192.168.1.1/v.mp4",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/v.mp4",  # carrier-grade NAT
        "https://100.100.100.200/latest/meta-data/",  # Alibaba metadata
        "https://0.0.0.0/v.mp4",
        "https://224.0.0.1/v.mp4",
        "https://240.0.0.1/v.mp4",
        "https://[::1]/v.mp4",
        "https://[::]/v.mp4",
        "https://[fc00::1]/v.mp4",
        "https://[fd12:3456::1]/v.mp4",
        "https://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
        "https://[fe80::1]/v.mp4",
        "https://[ff02::1]/v.mp4",
        "https://[::ffff:127.0.0.1]/v.mp4",  # IPv4-mapped
        "https://[::ffff:169.254.169.254]/v.mp4",
        "https://[64:ff9b::a9fe:a9fe]/v.mp4",  # NAT64 of 169.254.169.254
        "https://[2002:7f00:1::]/v.mp4",  # 6to4 of 127.0.0.1
    ],
)
async def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeMediaURLError) as refused:
        await MediaPolicy().vet(url)
    assert refused.value.user_message == "the video service gave a video address I won't fetch"


@pytest.mark.parametrize(
    ("answers", "allowed"),
    [
        (["93.184.216.34"], True),
        (["2606:2800:220:1:248:1893:25c8:1946"], True),
        (["169.254.169.254"], False),
        (["10.0.0.7"], False),
        (["127.0.0.1"], False),
        (["::ffff:10.0.0.7"], False),
        (["93.184.216.34", "192.168.0.10"], False),  # one private answer is enough
    ],
)
async def test_names_are_checked_by_every_address_they_resolve_to(
    answers: list[str], allowed: bool
) -> None:
    policy = MediaPolicy(resolver=resolver({"cdn.example": answers}))
    if allowed:
        assert await policy.vet("https://cdn.example/v.mp4") == "https://cdn.example/v.mp4"
    else:
        with pytest.raises(UnsafeMediaURLError):
            await policy.vet("https://cdn.example/v.mp4")


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example/v.mp4",  # plain http to anyone but the provider
        "file:///etc/passwd",
        "ftp://cdn.example/v.mp4",
        "data:video/mp4;base64,AAAA",
        "https://user:secret@cdn.example/v.mp4",
        "not a url",
    ],
)
async def test_other_schemes_plain_http_and_credentials_are_refused(url: str) -> None:
    policy = MediaPolicy(resolver=resolver({"cdn.example": ["93.184.216.34"]}))
    with pytest.raises(UnsafeMediaURLError):
        await policy.vet(url)


async def test_the_provider_origin_is_trusted_exactly_and_only_it() -> None:
    lookups = resolver({})
    policy = MediaPolicy(["http://127.0.0.1:8123/api/v1", None], resolver=lookups)
    assert await policy.vet("http://127.0.0.1:8123/cdn/v.mp4")  # same scheme, host, port
    for other in (
        "http://127.0.0.1:8124/cdn/v.mp4",  # another port
        "https://127.0.0.1:8123/cdn/v.mp4",  # another scheme
        "http://localhost:8123/cdn/v.mp4",  # another host name for the same place
    ):
        with pytest.raises(UnsafeMediaURLError):
            await policy.vet(other)
    assert lookups.asked == []  # type: ignore[attr-defined]
    https = MediaPolicy(["https://api.example.com/v1"])
    assert https.trusts("https://api.example.com:443/videos/1/content")


async def test_a_name_that_does_not_resolve_is_no_verdict() -> None:
    policy = MediaPolicy(resolver=resolver({}))
    with pytest.raises(MediaUnresolvableError):
        await policy.vet("https://gone.example/v.mp4")
    assert await policy.safe("https://gone.example/v.mp4") is None


def test_video_containers_are_recognised_by_their_bytes() -> None:
    assert looks_like_video(MP4) and looks_like_video(DEFAULT_MP4)
    assert looks_like_video(b"\x00\x00\x00\x14ftypqt  ")  # MOV
    assert looks_like_video(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81")  # WebM / Matroska
    for other in (b"<html><body>hello</body></html>", b"\x89PNG\r\n\x1a\n", b"", b"ftyp"):
        assert not looks_like_video(other)


# Downloads


async def test_download_from_the_trusted_origin_is_spooled_to_disk(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with server({"/v.mp4": video()}) as (origin, _):
        fetcher = Fetcher(client, MediaPolicy([origin]), folder=tmp_path)
        spooled = await fetcher.download(f"{origin}/v.mp4", limit=1024)
    assert spooled.path.parent == tmp_path and spooled.path.read_bytes() == MP4
    assert spooled.size == len(MP4) and spooled.is_video()
    with spooled:
        pass
    assert not spooled.path.exists()


async def test_redirect_to_an_internal_server_is_refused_at_the_hop(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with server({"/secret": video(b"internal")}) as (internal, internal_hits):
        routes = {
            "/to-internal": redirect(f"{internal}/secret"),
            "/to-metadata": redirect("https://metadata.example/latest/meta-data/"),
            "/to-loopback-https": redirect("https://127.0.0.1:1/"),
        }
        async with server(routes) as (origin, hits):
            names = resolver({"metadata.example": ["169.254.169.254"]})
            fetcher = Fetcher(client, MediaPolicy([origin], resolver=names), folder=tmp_path)
            for path in routes:
                with pytest.raises(UnsafeMediaURLError):
                    await fetcher.download(f"{origin}{path}", limit=1024)
    assert hits == list(routes)  # each redirect was read...
    assert internal_hits == []  # ...and not followed
    assert names.asked == ["metadata.example"]  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []


async def test_redirects_within_the_origin_are_followed_but_not_forever(
    client: httpx.AsyncClient,
) -> None:
    async with server({"/a": redirect("/b"), "/b": video(), "/loop": redirect("/loop")}) as (
        origin,
        _,
    ):
        fetcher = Fetcher(client, MediaPolicy([origin]))
        with await fetcher.download(f"{origin}/a", limit=1024) as spooled:
            assert spooled.path.read_bytes() == MP4
        with pytest.raises(MediaUnavailableError, match="redirects"):
            await fetcher.download(f"{origin}/loop", limit=1024)


class Body(httpx.AsyncByteStream):
    """A streamed body, as a real transport gives (a `content=` body is read eagerly)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield MP4


async def test_the_key_goes_only_to_the_trusted_origin() -> None:
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        if request.url.host == "provider.test":
            return httpx.Response(302, headers={"location": "https://cdn.test/v.mp4"})
        return httpx.Response(200, stream=Body())

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport) as mocked:
        policy = MediaPolicy(
            ["https://provider.test/v1"], resolver=resolver({"cdn.test": ["93.184.216.34"]})
        )
        fetcher = Fetcher(mocked, policy)
        url = "https://provider.test/v1/videos/1/content"
        with await fetcher.download(url, limit=1024, headers={"Authorization": "Bearer k"}):
            pass
    assert seen == [("provider.test", "Bearer k"), ("cdn.test", None)]


async def test_a_name_rebound_to_loopback_is_refused_before_the_request_is_sent(
    client: httpx.AsyncClient,
) -> None:
    """The policy's lookup says public; the connection lands on 127.0.0.1 (as a DNS
    rebinding attack would arrange). The connected peer is checked before anything is
    sent, so the local server never sees a request."""
    connections: list[int] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        data = await reader.read(1)
        connections.append(len(data))
        writer.close()

    local = await asyncio.start_server(count, "127.0.0.1", 0)
    port = local.sockets[0].getsockname()[1]
    try:
        lying = resolver({"localhost": ["93.184.216.34"]})
        fetcher = Fetcher(client, MediaPolicy(resolver=lying))
        with pytest.raises(UnsafeMediaURLError, match="connected to"):
            await fetcher.download(f"https://localhost:{port}/v.mp4", limit=1024)
        await asyncio.sleep(0.1)
    finally:
        local.close()
        await local.wait_closed()
    assert connections in ([], [1, 0])  # connected, maybe, but not one byte sent


async def test_a_dripping_download_gives_up_at_its_deadline(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A byte every 50 ms never trips a per-read timeout; the total deadline still ends it."""

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        await response.write(MP4[:16])
        for _ in range(2000):
            await asyncio.sleep(0.05)
            await response.write(b"\0")
        return response

    async with server({"/drip.mp4": drip}) as (origin, _):
        fetcher = Fetcher(client, MediaPolicy([origin]), folder=tmp_path)
        began = time.monotonic()
        with pytest.raises(MediaTimeoutError):
            await fetcher.download(f"{origin}/drip.mp4", limit=10**9, deadline=1.0)
        assert time.monotonic() - began < 10
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


async def test_the_size_cap_is_enforced_while_streaming(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    sent = {"bytes": 0}

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)  # chunked: no Content-Length to refuse it by
        chunk = MP4 + bytes(64 * 1024)
        try:
            for _ in range(10_000):  # 640 MB if nobody stopped it
                await response.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    async def declared(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bytes(4096), content_type="video/mp4")

    async with server({"/endless.mp4": endless, "/big.mp4": declared}) as (origin, _):
        fetcher = Fetcher(client, MediaPolicy([origin]), folder=tmp_path)
        with pytest.raises(MediaTooLargeError):
            await fetcher.download(f"{origin}/endless.mp4", limit=1024 * 1024)
        with pytest.raises(MediaTooLargeError, match="declared"):
            await fetcher.download(f"{origin}/big.mp4", limit=1024)
        await asyncio.sleep(0.2)
    assert sent["bytes"] < 64 * 1024 * 1024  # stopped near the cap, not at the end
    assert list(tmp_path.iterdir()) == []


# The OpenAI-style content download (`ProviderHTTP.request_file`)


async def test_openai_content_is_streamed_to_a_file_with_the_key(
    client: httpx.AsyncClient,
) -> None:
    async with FakeOpenAI(generation_seconds=0.05) as fake:
        fake.video_bytes = DEFAULT_MP4 + bytes(300_000)
        provider = OpenAIProvider(fast_http(client, "openai", fake.base_url, fake.api_key))
        task = fake.new_task(
            "p", "text", {}, model="sora-2", params={"seconds": "4", "size": "720x1280"}
        )
        fake.finish(task.id)
        status = await provider.status(task.id)
        assert status.state is ProviderState.SUCCEEDED
        media = await provider.media(task.id, status)
    assert media.data is None and media.path is not None
    try:
        assert media.path.read_bytes() == fake.video_bytes
    finally:
        media.path.unlink()
    (download,) = fake.requests_for("content")
    assert download.headers.get("authorization") == f"Bearer {fake.api_key}"


async def test_openai_content_larger_than_the_cap_is_not_read_whole(
    client: httpx.AsyncClient,
) -> None:
    sent = {"bytes": 0}

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        try:
            for _ in range(10_000):
                await response.write(bytes(64 * 1024))
                sent["bytes"] += 64 * 1024
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    async with server({"/v1/videos/{id}/content": endless}) as (origin, hits):
        http = fast_http(client, "openai", f"{origin}/v1", "k")
        with pytest.raises(ProviderError) as refused:
            await http.request_file("videos/v1/content", limit=2 * 1024 * 1024)
        await asyncio.sleep(0.2)
    assert not isinstance(refused.value, ProviderUnavailableError)  # final, not retried
    assert len(hits) == 1 and sent["bytes"] < 64 * 1024 * 1024


async def test_openai_content_that_drips_ends_at_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        for _ in range(2000):
            await response.write(b"\0")
            await asyncio.sleep(0.05)
        return response

    async with server({"/v1/videos/{id}/content": drip}) as (origin, _):
        http = ProviderHTTP(
            client, provider="openai", base_url=f"{origin}/v1",
            auth_header=("Authorization", "Bearer k"), backoff_initial=0.01,
        )  # fmt: skip
        began = time.monotonic()
        with pytest.raises(ProviderUnavailableError):
            await http.request_file("videos/v1/content", deadline=1.0)
        assert time.monotonic() - began < 10


# Serving files: videos for the bot, pictures for `sora-bot generate`


async def test_media_host_moves_files_and_serves_known_types_only(tmp_path: Path) -> None:
    host = MediaHost(tmp_path / "media", "https://bot.example")
    spooled = tmp_path / "download.part"
    spooled.write_bytes(MP4)
    url = await host.publish(spooled)
    name = url.rsplit("/", 1)[1]
    assert url.startswith("https://bot.example/media/") and name.endswith(".mp4")
    assert not spooled.exists()  # moved, not copied through memory
    assert host.path_for(name) is not None and host.content_type(name) == "video/mp4"
    picture = (await host.publish(b"\x89PNG\r\n\x1a\n", "png")).rsplit("/", 1)[1]
    assert host.content_type(picture) == "image/png"
    for bad in ("x" * 43 + ".html", "../bot.sqlite3", name.replace(".mp4", ".svg")):
        assert host.path_for(bad) is None
    with pytest.raises(ValueError):
        await host.publish(b"<svg/>", "svg")
    expired = MediaHost(tmp_path / "media", "https://bot.example", lifetime_seconds=-1)
    assert expired.path_for(name) is None
    assert expired.sweep() == 2


async def test_serving_files_gives_pictures_their_type_and_stops_after() -> None:

    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        async with serving_files(("127.0.0.1", port), public, 60) as publish:
            url = await publish(b"\x89PNG\r\n\x1a\nfake", "png")
            got = await http.get(url)
            missing = await http.get(f"{public}/media/{'a' * 43}.png")
            other = await http.get(f"{public}/healthz")
        assert got.status_code == 200 and got.content == b"\x89PNG\r\n\x1a\nfake"
        assert got.headers["content-type"] == "image/png"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert missing.status_code == 404 and other.status_code == 404
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


# The notifier: links it shows pass the same policy (e.g. a URL stored before an upgrade)


class _UrlProvider:
    name = "url"
    display_name = "URL provider"

    def __init__(self, url: str | None, fail: bool = False) -> None:
        self.url, self.fail = url, fail

    async def media(self, provider_task_id: str, status: object) -> Media:
        if self.fail:
            raise ProviderUnavailableError("url", "down")
        return Media(url=self.url)


@pytest.mark.parametrize("fail", [False, True])
async def test_the_notifier_neither_fetches_nor_links_an_unsafe_address(
    client: httpx.AsyncClient, fail: bool
) -> None:
    async with server({"/secret": video()}) as (internal, hits):
        unsafe = f"{internal}/secret"  # not the provider's origin: plain http, loopback
        notifier = Notifier(
            client=None,  # type: ignore[arg-type]  # _video talks to no Discord
            store=None,  # type: ignore[arg-type]
            provider=_UrlProvider(unsafe, fail),  # type: ignore[arg-type]
            fetcher=Fetcher(client, MediaPolicy(["https://provider.example/v1"])),
        )
        task = SimpleNamespace(
            id="T1", upload_limit=None, result_url=unsafe, provider_task_id="p1", provider="url"
        )
        file, link, problem = await notifier._video(task)  # type: ignore[arg-type]
    assert file is None and link is None and problem
    assert unsafe not in problem and hits == []
