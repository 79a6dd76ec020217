"""Files the bot serves itself: videos from providers that give no public link
(OpenAI-style), and, for `sora-bot generate`, a local picture that a provider which
fetches pictures by URL must be able to download.

Files live in one folder under an unguessable name and are served by the listener until
they expire; nothing else on disk is reachable through it, and only MP4 and the picture
types a provider accepts are served, each with its own content type.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
}
NAME = re.compile(r"^[A-Za-z0-9_-]{32,64}\.(mp4|webm|png|jpg|webp)$")
DEFAULT_LIFETIME_SECONDS = 7 * 24 * 3600
PARTIAL_LIFETIME_SECONDS = 24 * 3600
# (data or a file to move, extension) -> the public URL it is served at
Publisher = Callable[[bytes, str], Awaitable[str]]


class MediaHost:
    def __init__(
        self, folder: Path, public_url: str, lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS
    ) -> None:
        self.folder = folder
        self._public_url = public_url.rstrip("/")
        self.lifetime = lifetime_seconds

    async def publish(self, source: bytes | Path, extension: str = "mp4") -> str:
        """Store a file and return the URL it is served at until it expires.

        A `Path` is moved into the folder (a rename on the same disk), never read into
        memory: videos can be large.
        """
        if extension not in CONTENT_TYPES:
            raise ValueError(f"cannot serve .{extension} files")
        name = f"{secrets.token_urlsafe(32)}.{extension}"
        await asyncio.to_thread(self.sweep)
        await asyncio.to_thread(self._store, name, source)
        return f"{self._public_url}/media/{name}"

    def _store(self, name: str, source: bytes | Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f"{name}.part"
        if isinstance(source, bytes):
            partial.write_bytes(source)
        else:
            shutil.move(source, partial)
            os.utime(partial)  # its lifetime starts now, not when it was downloaded
        partial.replace(self.folder / name)

    @staticmethod
    def content_type(name: str) -> str:
        """The Content-Type to serve one of our names with."""
        return CONTENT_TYPES[name.rsplit(".", 1)[-1]]

    def path_for(self, name: str) -> Path | None:
        """The file for a requested name, if it is one of ours and still fresh."""
        if not NAME.match(name):
            return None
        path = self.folder / name
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        return path if age <= self.lifetime else None

    def sweep(self) -> int:
        """Delete expired files; returns how many."""
        removed = 0
        if not self.folder.is_dir():
            return 0
        now = time.time()
        for path in self.folder.iterdir():
            suffix = path.suffix.lstrip(".")
            if suffix == "part":
                cutoff = now - PARTIAL_LIFETIME_SECONDS  # left behind by a crash mid-write
            elif suffix in CONTENT_TYPES:
                cutoff = now - self.lifetime
            else:
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                log.warning("could not remove expired media %s", path.name)
        return removed

    def remove(self, url_or_name: str) -> bool:
        """Delete one served video now (its owner pressed Delete), by its URL or name.

        Anything that is not one of this host's own `/media/` links (a provider's URL,
        another host, a path trick) is left alone and gives False, so callers can pass
        whatever link a result showed."""
        name = url_or_name
        if "/" in url_or_name:
            prefix = f"{self._public_url}/media/"
            if not url_or_name.startswith(prefix):
                return False
            name = url_or_name.removeprefix(prefix)
        if not NAME.match(name):
            return False
        try:
            (self.folder / name).unlink()
        except FileNotFoundError:
            return False
        except OSError:
            log.warning("could not remove media %s", name)
            return False
        return True


class MediaServer:
    """A listener serving one `MediaHost` at `/media/{name}` and nothing else.

    `sora-bot generate` runs without the bot's webhook listener; this is the part of it a
    provider needs to fetch a local picture, on the same `WEBHOOK_LISTEN` address and
    path, so `WEBHOOK_PUBLIC_URL` means the same thing for both.
    """

    def __init__(self, media: MediaHost, host: str, port: int) -> None:
        self._media = media
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/media/{name}", self.serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self._media.path_for(name)
        if path is None:
            return web.json_response({"error": "not found or expired"}, status=404)
        return web.FileResponse(
            path,
            headers={
                "Content-Type": self._media.content_type(name),
                "X-Content-Type-Options": "nosniff",
            },
        )


@contextlib.asynccontextmanager
async def serving_files(
    listen: tuple[str, int], public_url: str, lifetime_seconds: float
) -> AsyncIterator[Publisher]:
    """Serve files published through the yielded function until the block ends, then
    stop listening and delete them. Raises OSError if the address cannot be bound."""
    with tempfile.TemporaryDirectory(prefix="sora-media-") as folder:
        host = MediaHost(Path(folder), public_url, lifetime_seconds)
        server = MediaServer(host, *listen)
        await server.start()
        try:
            yield host.publish
        finally:
            await server.stop()
