"""Videos the bot serves itself, for providers that give no public link (OpenAI-style).

Files live next to the database under an unguessable name and are served by the
webhook listener until they expire; nothing else on disk is reachable through it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from pathlib import Path

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9_-]{32,64}\.mp4$")
DEFAULT_LIFETIME_SECONDS = 7 * 24 * 3600


class MediaHost:
    def __init__(
        self, folder: Path, public_url: str, lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS
    ) -> None:
        self.folder = folder
        self._public_url = public_url.rstrip("/")
        self.lifetime = lifetime_seconds

    async def publish(self, data: bytes) -> str:
        """Store the video and return the URL it can be watched at until it expires."""
        name = f"{secrets.token_urlsafe(32)}.mp4"
        await asyncio.to_thread(self.sweep)
        await asyncio.to_thread(self._write, name, data)
        return f"{self._public_url}/media/{name}"

    def _write(self, name: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f"{name}.part"
        partial.write_bytes(data)
        partial.replace(self.folder / name)

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
        cutoff = time.time() - self.lifetime
        for path in self.folder.glob("*.mp4"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                log.warning("could not remove expired media %s", path.name)
        return removed
