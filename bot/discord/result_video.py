"""A finished video, made ready for its post: a file to attach, a link, or why neither.

Provider URLs are untrusted: each is vetted by the fetcher's policy before it is
downloaded or shown (the tracker already refused bad ones, but DNS can change). A
download has a deadline, stops at the upload limit and goes to a temporary file, not
memory; only bytes that are a video container are attached or served. A video too
large to attach is linked: the provider's own link if it gives one, else this bot's
media host (when it has a public address).
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import NamedTuple

import discord

from bot.discord.outcome_rendering import NO_FILE, NOT_A_VIDEO, UNSAFE_ADDRESS, too_large
from bot.domain import Task
from bot.errors import ProviderError
from bot.fetch import Fetcher, Spooled, looks_like_video
from bot.media import MediaHost
from bot.providers.base import Media, ProviderState, ProviderStatus, VideoProvider
from bot.providers.pool import ProviderPool
from bot.url_policy import (
    MediaFetchError,
    MediaTooLargeError,
    MediaUnresolvableError,
    UnsafeMediaURLError,
)

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_REQUEST_BYTES = 25 * 1024 * 1024


class PreparedVideo(NamedTuple):
    """At most one of `file` and `link`; `problem` explains when there is neither."""

    file: discord.File | None
    link: str | None
    problem: str | None


class VideoAttacher:
    def __init__(
        self, provider: VideoProvider | ProviderPool, fetcher: Fetcher, media_host: MediaHost | None
    ) -> None:
        self._providers = ProviderPool.of_one(provider)
        self._fetcher = fetcher
        self._media_host = media_host

    async def prepare(self, task: Task) -> PreparedVideo:
        """(file to attach, link to show, explanation) for a finished video."""
        limit = min(task.upload_limit or DEFAULT_UPLOAD_LIMIT, MAX_REQUEST_BYTES)
        policy = self._fetcher.policy
        status = ProviderStatus(ProviderState.SUCCEEDED, 100, video_url=task.result_url)
        try:
            provider = self._providers.of(task.provider)
            media: Media = await provider.media(task.provider_task_id or "", status)
        except ProviderError as exc:
            log.warning("task %s: could not get the video: %s", task.id, exc)
            stored = await policy.safe(task.result_url)
            if stored:
                return PreparedVideo(None, stored, None)
            return PreparedVideo(None, None, NO_FILE)
        link = None
        if media.url:
            try:
                link = await policy.vet(media.url)
            except MediaUnresolvableError as exc:  # DNS trouble: no verdict, no link either
                log.warning("task %s: cannot check the video's address: %s", task.id, exc)
                return PreparedVideo(None, None, NO_FILE)
            except MediaFetchError as exc:
                log.warning("task %s: refused the video's address: %s", task.id, exc)
                return PreparedVideo(None, None, UNSAFE_ADDRESS)
        if media.data is not None:
            return await self._from_memory(task, media.data, limit, link)
        if media.path is not None:
            spooled = await asyncio.to_thread(Spooled.adopt, media.path)
        elif link is not None:
            try:
                spooled = await self._fetcher.download(link, limit=limit)
            except MediaTooLargeError:
                return PreparedVideo(None, link, None)
            except UnsafeMediaURLError as exc:  # a redirect led somewhere refused
                log.warning("task %s: refused to fetch the video: %s", task.id, exc.detail)
                return PreparedVideo(None, None, UNSAFE_ADDRESS)
            except MediaFetchError as exc:
                log.info("task %s: could not download the video to attach: %s", task.id, exc)
                return PreparedVideo(None, link, None)
        else:
            return PreparedVideo(None, None, NO_FILE)
        with spooled:  # removed on the way out unless moved to the media host
            if not spooled.is_video():
                log.warning(
                    "task %s: the provider's file is not a video (%r, %s)",
                    task.id,
                    spooled.head[:16],
                    spooled.content_type or "no content type",
                )
                return PreparedVideo(None, link, None if link else NOT_A_VIDEO)
            if spooled.size <= limit:
                # discord.py opens the file now and closes it after sending; POSIX lets
                # the name go at once, so nothing is left on disk whatever the post does.
                name = f"sora-{task.id}.{spooled.extension}"
                return PreparedVideo(discord.File(str(spooled.path), filename=name), None, None)
            if link:
                return PreparedVideo(None, link, None)
            if self._media_host is not None:
                url = await self._media_host.publish(spooled.path, spooled.extension)
                return PreparedVideo(None, url, None)
            return PreparedVideo(None, None, too_large(spooled.size))

    async def _from_memory(
        self, task: Task, data: bytes, limit: int, link: str | None
    ) -> PreparedVideo:
        """A video the provider handed over as bytes (the demo's small asset)."""
        if not looks_like_video(data):
            return PreparedVideo(None, link, None if link else NOT_A_VIDEO)
        if len(data) <= limit:
            file = discord.File(io.BytesIO(data), filename=f"sora-{task.id}.mp4")
            return PreparedVideo(file, None, None)
        if link:
            return PreparedVideo(None, link, None)
        if self._media_host is not None:
            return PreparedVideo(None, await self._media_host.publish(data), None)
        return PreparedVideo(None, None, too_large(len(data)))
