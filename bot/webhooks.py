"""The bot's small HTTP listener: provider callbacks, OpenAI webhooks, /healthz, /metrics.

Callbacks are the fast path (polling is the safety net). APIXO and Sora2API call a
per-task URL carrying an unguessable token, so a forged callback cannot name a task;
OpenAI-style webhooks are signed (Standard Webhooks) and checked by the adapter. A
callback that is malformed, unsigned or for another task is refused and changes
nothing; duplicates and late or out-of-order ones are absorbed by the tracker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from bot.errors import CallbackRejectedError, ProviderError
from bot.media import MediaHost
from bot.metrics import Metrics
from bot.providers.base import ProviderState, ProviderStatus, VideoProvider
from bot.store import Store
from bot.tracker import Tracker

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


def _same_task(stored: str | None, reported: str | None) -> bool:
    """APIXO ids are stored as `model:taskId`; callbacks name the bare `taskId`."""
    if not stored or not reported:
        return False
    return stored == reported or stored.rsplit(":", 1)[-1] == reported


class WebhookServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        store: Store,
        provider: VideoProvider,
        tracker: Tracker,
        metrics: Metrics,
        is_ready: Callable[[], bool] = lambda: True,
        media: MediaHost | None = None,
    ) -> None:
        self._media = media
        self._host, self._port = host, port
        self._store = store
        self._provider = provider
        self._tracker = tracker
        self._metrics = metrics
        self._is_ready = is_ready
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/callbacks/{token}", self.callback)
        app.router.add_post("/webhooks/openai", self.openai_webhook)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/media/{name}", self.media)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("listening for callbacks on %s:%s", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refuse(self, status: int, reason: str) -> web.Response:
        self._metrics.callbacks.labels(result="rejected").inc()
        log.warning("callback refused: %s", reason)
        return web.json_response({"error": reason}, status=status)

    async def callback(self, request: web.Request) -> web.Response:
        task = await self._store.task_by_callback_token(request.match_info["token"])
        if task is None:
            return self._refuse(404, "unknown callback address")
        body = await request.read()
        try:
            status = self._provider.parse_callback(request.headers, body)
        except CallbackRejectedError as exc:
            return self._refuse(400, str(exc))
        if not _same_task(task.provider_task_id, status.provider_task_id):
            return self._refuse(400, "the callback names another task")
        await self._tracker.apply(task.id, status)
        self._metrics.callbacks.labels(result="applied").inc()
        return web.json_response({"ok": True})

    async def openai_webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            status = self._provider.parse_callback(request.headers, body)
        except CallbackRejectedError as exc:
            if type(exc).__name__ == "DuplicateCallbackError":
                self._metrics.callbacks.labels(result="duplicate").inc()
                return web.json_response({"ok": True, "duplicate": True})
            return self._refuse(400, str(exc))
        video_id = status.provider_task_id or ""
        task = await self._store.task_by_provider_id(self._provider.name, video_id)
        if task is None:
            # Not ours (another app on the same project): acknowledge so it is not resent.
            self._metrics.callbacks.labels(result="ignored").inc()
            return web.json_response({"ok": True, "ignored": True})
        if status.state is ProviderState.FAILED:
            status = await self._failure_detail(video_id, status)
        await self._tracker.apply(task.id, status)
        self._metrics.callbacks.labels(result="applied").inc()
        return web.json_response({"ok": True})

    async def _failure_detail(self, video_id: str, fallback: ProviderStatus) -> ProviderStatus:
        """The webhook says only "failed"; the video object says why."""
        try:
            detailed = await self._provider.status(video_id)
        except ProviderError:
            return fallback
        return detailed if detailed.state is ProviderState.FAILED else fallback

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            counts = await self._store.task_counts()
        except Exception:
            return web.json_response({"status": "unhealthy", "database": False}, status=503)
        active = sum(counts.get(s, 0) for s in ("queued", "submitted", "running"))
        return web.json_response(
            {
                "status": "ok",
                "database": True,
                "discord_ready": self._is_ready(),
                "provider": self._provider.name,
                "unfinished_tasks": active,
            }
        )

    async def media(self, request: web.Request) -> web.StreamResponse:
        path = self._media.path_for(request.match_info["name"]) if self._media else None
        if path is None:
            return web.json_response({"error": "not found or expired"}, status=404)
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})

    async def metrics(self, request: web.Request) -> web.Response:
        payload = self._metrics.render(await self._store.task_counts())
        return web.Response(body=payload, headers={"Content-Type": "text/plain; version=0.0.4"})
