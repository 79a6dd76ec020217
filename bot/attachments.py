"""A member's uploaded picture: what Discord declares about it, and reading it safely.

Discord-free: the Discord layer turns a `discord.Attachment` into an `AttachmentRef`;
the service checks the declaration at once (`precheck`) and reads the bytes only when
it gets to it (`read_picture`), with a total deadline and a size cap while streaming.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx

from bot.errors import InvalidInputError
from bot.images import sniff_image_in_thread
from bot.providers.base import ImageInput

log = logging.getLogger(__name__)
# The whole download of a member's picture, not one read: a CDN that drips bytes must not
# hold a submission (and the member's wait for an answer) for minutes.
IMAGE_DOWNLOAD_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """What Discord tells us about an uploaded file; the bytes are fetched at submit time."""

    url: str
    filename: str
    size: int
    content_type: str | None = None


def precheck(attachment: AttachmentRef | None, max_bytes: int) -> AttachmentRef:
    """The quick refusals, from what Discord declared: no picture, too big, not an image."""
    if attachment is None:
        raise InvalidInputError("Please attach the picture to animate.")
    if attachment.size > max_bytes:
        raise InvalidInputError(
            f"That image is {attachment.size / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB. Please attach a smaller picture."
        )
    declared = (attachment.content_type or "").split(";")[0].strip()
    if declared and not declared.startswith("image/"):
        raise InvalidInputError(
            f"`{attachment.filename}` isn't a picture. Please attach a PNG, JPEG or WebP image."
        )
    return attachment


async def read_picture(
    http: httpx.AsyncClient, attachment: AttachmentRef, *, max_bytes: int, deadline: float
) -> ImageInput:
    """Read the attachment now: Discord's signed CDN link expires in about a day, and a
    URL provider fetches it within minutes, so the fresh link is what it gets.

    The download has a total deadline and a size cap enforced while streaming, and
    the bytes are checked (Pillow) in a worker thread, never on the event loop."""
    too_big = InvalidInputError(
        f"That image is larger than {max_bytes / 1_048_576:.0f} MB, the limit. "
        "Please attach a smaller picture."
    )
    data = bytearray()
    try:
        async with asyncio.timeout(deadline):
            async with http.stream(
                "GET", attachment.url, headers={"Accept-Encoding": "identity"}
            ) as response:
                response.raise_for_status()
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise too_big
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise too_big
    except TimeoutError:
        log.info("image download timed out after %ss", deadline)
        raise InvalidInputError(
            "I couldn't download that image from Discord in time. Please try again, "
            "or attach it again."
        ) from None
    except httpx.HTTPError:
        raise InvalidInputError(
            "I couldn't download that image from Discord. Please attach it again."
        ) from None
    info = await sniff_image_in_thread(bytes(data), max_bytes=max_bytes)
    return ImageInput(
        data=bytes(data),
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        url=attachment.url,
    )
