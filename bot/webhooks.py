"""The bot's small HTTP listener: provider callbacks, signed webhooks, /healthz, /metrics.

Callbacks are the fast path (polling is the safety net). The listener faces the
internet, so each door exists only for the provider that uses it and checks who knocks:

* `/callbacks/{token}` exists only when the provider reports by per-task URL
  (`Capabilities.reports == "callback"`: APIXO, Sora2API). The unguessable token names
  the task and the body must name that same task (`VideoProvider.same_task`).
* `/webhooks/{provider name}` (`/webhooks/openai`) exists only when the provider sends
  project-level signed webhooks (`reports == "webhook"`) *and* can verify them (its
  secret is configured: `accepts_signed_webhooks`); it only ever feeds that adapter's
  signature check. Unsigned reports therefore never reach a callback parser.
* Every refused report gets the same answer as an unknown path (a plain 404), so nobody
  can probe which tokens or task ids exist; a signed event for a video that is not ours
  answers exactly like one that is. Duplicates and late or out-of-order reports are
  absorbed by the tracker.
* `/metrics` asks for `METRICS_TOKEN` as a bearer token when one is set; `/healthz` and
  `/metrics` share cached task counts (`CachedCounts`), so however many probes arrive,
  the store is counted at most once every few seconds.

Slow and abusive clients are held off by `ConnectionGuard` (request deadline, connection
cap), a body deadline, a short keep-alive and a short linger; see `ListenerLimits`.
Refusals are logged at a bounded rate (`RejectionLog`), never with a body or a token.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.errors import CallbackRejectedError, DuplicateCallbackError, ProviderError
from bot.listener_guard import (
    LIMITS,
    CachedCounts,
    ConnectionGuard,
    ListenerLimits,
    RejectionLog,
)
from bot.media import MediaHost
from bot.metrics import Metrics
from bot.providers.base import ProviderState, ProviderStatus, VideoProvider
from bot.providers.pool import ProviderPool
from bot.store import Store
from bot.tracker import Tracker

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


class WebhookServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        store: Store,
        provider: VideoProvider | ProviderPool,
        tracker: Tracker,
        metrics: Metrics,
        is_ready: Callable[[], bool] = lambda: True,
        media: MediaHost | None = None,
        signed_webhooks: bool | None = None,
        metrics_token: str | None = None,
        limits: ListenerLimits | None = None,
    ) -> None:
        """`signed_webhooks`: whether the webhook door may open (only for a webhook
        provider); by default, when the provider can verify what it would receive
        (`accepts_signed_webhooks`). `metrics_token`: `/metrics` wants it as a bearer
        token. `limits`: deadlines and caps, `LIMITS` when not given."""
        self._media = media
        self._host, self._port = host, port
        self._store = store
        self._providers = ProviderPool.of_one(provider)
        self._tracker = tracker
        self._metrics = metrics
        self._is_ready = is_ready
        # Which providers' signed webhooks may arrive (each only if it can verify them).
        self._signed = [
            p
            for p in self._providers
            if p.capabilities.reports == "webhook"
            and (p.accepts_signed_webhooks if signed_webhooks is None else signed_webhooks)
        ]
        self._metrics_token = metrics_token
        self._limits = limits or LIMITS
        self.rejections = RejectionLog(self._limits.rejections_per_minute)
        self._counts = CachedCounts(
            lambda: self._store.task_counts(),
            ttl=self._limits.counts_ttl,
            timeout=self._limits.counts_timeout,
        )
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        """The route table follows how the provider reports, never its name: a door that
        the provider does not use does not exist (404, like any unknown path)."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._request_arrived])
        if any(p.capabilities.reports == "callback" for p in self._providers):
            app.router.add_post("/callbacks/{token}", self.callback)
        for provider in self._signed:
            app.router.add_post(
                f"/webhooks/{provider.name}", functools.partial(self.signed_webhook, provider)
            )
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/media/{name}", self.media)
        return app

    async def start(self) -> None:
        """Serve the app through `ConnectionGuard` on a socket of our own: aiohttp's
        `TCPSite` would hand connections straight to aiohttp, past the guard."""
        limits = self._limits
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            keepalive_timeout=limits.keepalive_timeout,
            lingering_time=limits.lingering_time,
            shutdown_timeout=limits.shutdown_timeout,
        )
        await self._runner.setup()
        handlers = self._runner.server
        assert handlers is not None
        self.guard = ConnectionGuard(
            handlers,
            request_timeout=limits.request_timeout,
            max_connections=limits.max_connections,
            rejections=self.rejections,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.factory, self._host, self._port, backlog=128
        )
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("listening for callbacks on %s:%s", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        if self._runner is not None:
            await self._runner.cleanup()  # answers in progress get `shutdown_timeout`
            self._runner = None
        if self.guard is not None:
            self.guard.close_all()  # anything aiohttp had not been handed yet
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._counts.close()
        self.rejections.flush()

    @web.middleware
    async def _request_arrived(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A complete request line and headers: the connection has met its deadline.
        Requests for paths that do not exist are refusals too (and logged as such)."""
        if self.guard is not None:
            self.guard.request_arrived(request.transport)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            if request.match_info.route.resource is None:
                first = request.path.lstrip("/").split("/", 1)[0][:32]
                what = f"{request.method} to an unknown path /{first}"
                self.rejections.refused(what, request.remote)
            raise

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole body within `body_timeout` of the headers: a client trickling its
        body is answered 408 and cut off instead of holding the connection."""
        try:
            async with asyncio.timeout(self._limits.body_timeout):
                return await request.read()
        except TimeoutError:
            self.rejections.refused("a body not sent in time", request.remote)
            raise web.HTTPRequestTimeout() from None

    def _refuse(self, request: web.Request, what: str) -> web.HTTPNotFound:
        """The one answer to every refused report: the same 404 as an unknown path."""
        self._metrics.callbacks.labels(result="rejected").inc()
        self.rejections.refused(what, request.remote)
        return web.HTTPNotFound()

    async def callback(self, request: web.Request) -> web.Response:
        """A per-task report (APIXO, Sora2API). The body is read before the token is
        looked up, and an unknown token, an unreadable body and a body naming another
        task all get the same 404, so the answer tells nothing about what exists. The
        provider's parser runs only once the token has named one of our tasks."""
        body = await self._read_body(request)
        task = await self._store.task_by_callback_token(request.match_info["token"])
        provider = None if task is None else self._providers.get(task.provider)
        if task is None or provider is None or provider.capabilities.reports != "callback":
            raise self._refuse(request, "a callback to an unknown address")
        try:
            status = provider.parse_callback(request.headers, body)
        except CallbackRejectedError:
            raise self._refuse(request, "an unreadable callback") from None
        stored, reported = task.provider_task_id, status.provider_task_id
        if not stored or not reported or not provider.same_task(stored, reported):
            raise self._refuse(request, "a callback naming another task")
        await self._tracker.apply(task.id, status)
        self._metrics.callbacks.labels(result="applied").inc()
        return web.json_response({"ok": True})

    async def signed_webhook(self, provider: VideoProvider, request: web.Request) -> web.Response:
        """A signed project-level event. Only the adapter's signature check decides: a
        refusal is the same 404 whatever the body names, and an accepted event answers
        the same whether or not the video is ours (another app on the same project)."""
        body = await self._read_body(request)
        try:
            status = provider.parse_callback(request.headers, body)
        except DuplicateCallbackError:
            self._metrics.callbacks.labels(result="duplicate").inc()
            return web.json_response({"ok": True})
        except CallbackRejectedError as exc:
            # The adapter's reasons name no secret; only signed events get past "signature".
            raise self._refuse(request, f"a webhook ({str(exc)[:80]})") from None
        video_id = status.provider_task_id or ""
        task = await self._store.task_by_provider_id(provider.name, video_id)
        if task is None:
            # Not ours: acknowledge so it is not resent, exactly like one of ours.
            self._metrics.callbacks.labels(result="ignored").inc()
            return web.json_response({"ok": True})
        if status.state is ProviderState.FAILED:
            status = await self._failure_detail(provider, video_id, status)
        await self._tracker.apply(task.id, status)
        self._metrics.callbacks.labels(result="applied").inc()
        return web.json_response({"ok": True})

    async def _failure_detail(
        self, provider: VideoProvider, video_id: str, fallback: ProviderStatus
    ) -> ProviderStatus:
        """The webhook says only "failed"; the video object says why."""
        try:
            detailed = await provider.status(video_id)
        except ProviderError:
            return fallback
        return detailed if detailed.state is ProviderState.FAILED else fallback

    async def healthz(self, request: web.Request) -> web.Response:
        """Cached counts (see `CachedCounts`): a database that fails or hangs still
        makes this 503 within `counts_timeout`."""
        try:
            counts = await self._counts.get()
        except Exception:
            return web.json_response({"status": "unhealthy", "database": False}, status=503)
        active = sum(counts.get(s, 0) for s in ("queued", "submitted", "running"))
        return web.json_response(
            {
                "status": "ok",
                "database": True,
                "discord_ready": self._is_ready(),
                "provider": self._providers.primary.name,
                "providers": list(self._providers.names),
                "unfinished_tasks": active,
            }
        )

    async def media(self, request: web.Request) -> web.StreamResponse:
        path = self._media.path_for(request.match_info["name"]) if self._media else None
        if path is None:
            return web.json_response({"error": "not found or expired"}, status=404)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": MediaHost.content_type(path.name),
                "X-Content-Type-Options": "nosniff",
            },
        )

    def _authorized(self, request: web.Request) -> bool:
        """`Authorization: Bearer <METRICS_TOKEN>`, compared in constant time."""
        if self._metrics_token is None:
            return True
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        expected = self._metrics_token.encode()
        given = offered.strip().encode("utf-8", "surrogateescape")
        return scheme.lower() == "bearer" and hmac.compare_digest(given, expected)

    async def metrics(self, request: web.Request) -> web.Response:
        """With METRICS_TOKEN set, a missing or wrong token is a bare 401."""
        if not self._authorized(request):
            self.rejections.refused("a metrics request without the token", request.remote)
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        learned = [(name, planner.snapshot()) for name, planner in self._tracker.polling.items()]
        payload = self._metrics.render(await self._counts.get(), learned)
        return web.Response(body=payload, headers={"Content-Type": "text/plain; version=0.0.4"})
