"""Pictures for image tests: real ones, and headers that only claim a size.

A header that claims a size is how a decompression bomb looks to a reader that trusts
it: a few hundred bytes that would decode to hundreds of megabytes.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from PIL import Image

T = TypeVar("T")


def still(fmt: str = "PNG", size: tuple[int, int] = (640, 360), **options: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=fmt, **options)
    return out.getvalue()


def gradient(fmt: str, size: tuple[int, int], **options: Any) -> bytes:
    """A large picture that still compresses well (a flat one would be too easy to decode)."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(out, format=fmt, **options)
    return out.getvalue()


def animated(fmt: str) -> bytes:
    """Three frames: an animated GIF, an APNG (PNG) or an animated WebP."""
    frames = [Image.new("RGB", (128, 128), (60 * n, 0, 0)) for n in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def phone_mpo() -> bytes:
    """A JPEG with an extra picture appended, as phones write (Pillow calls it MPO)."""
    first, second = (Image.new("RGB", (320, 240), c) for c in ((1, 2, 3), (9, 9, 9)))
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=[second])
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says `width`x`height`, with a token of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A small real JPEG whose frame header is rewritten to claim `width`x`height`."""
    data = bytearray(still("JPEG", (320, 200), progressive=progressive))
    marker = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    # marker (2), segment length (2), precision (1), then height and width (2 each)
    data[marker + 5 : marker + 9] = struct.pack(">HH", height, width)
    return bytes(data)


async def largest_loop_gap(work: Awaitable[T], tick: float = 0.005) -> tuple[T, float]:
    """Run `work` while a heartbeat ticks on the loop; return its result and the longest
    the heartbeat had to wait. Work done on the loop shows as a gap that long."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(tick)
            now = loop.time()
            gaps.append(now - last)
            last = now

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(tick * 4)
    try:
        result = await work
    finally:
        stop.set()
        await beating
    return result, max(gaps)
