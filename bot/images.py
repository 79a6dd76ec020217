"""Images for image-to-video: recognised by their bytes (never their name), and fitted.

Pillow reads the header to tell PNG, JPEG and WebP apart and to get the pixel size, so a
renamed file or a truncated upload is caught before any provider is paid.

Decoding is slow and memory-hungry (a 40-Mpx picture took over a second and 330 MB), so:

- the pixel count is read from the header (`Image.open` is lazy) and refused over the
  cap *before* anything is decoded or verified, so a decompression bomb costs nothing;
- JPEGs, the usual camera and phone photos, are decoded at a reduced scale (the JPEG
  decoder's own DCT scaling), which is why they may have more pixels than PNG or WebP,
  which must be decoded whole;
- the async callers use `sniff_image_in_thread` and `fit_image_in_thread`, which run the
  work in a worker thread, never on the event loop, and at most `DECODE_SLOTS` at once,
  so a burst of large pictures cannot multiply the memory peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import InvalidInputError

ImageType = Literal["image/png", "image/jpeg", "image/webp"]
# MPO is how Pillow names a JPEG with extra frames (phones add depth maps and previews):
# the bytes are an ordinary JPEG, and every provider reads its first picture.
FORMATS: dict[str, ImageType] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
}
# Only these parsers ever see an upload: fewer decoders, less attack surface. GIF is read
# only to say plainly why it is refused.
OPENED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# The most pixels a picture may have. Video services take at most 1792 px a side, so a
# larger picture is scaled down anyway; the caps bound memory while keeping real photos.
# Measured: a PNG or WebP is decoded whole (3-4 bytes a pixel), and so is a progressive
# JPEG in effect (its decoder keeps every coefficient: 150 MB at 50 Mpx), so those get
# 25 Mpx (a 5K screenshot, a 24-Mpx camera export: at most about 100 MB). A baseline
# JPEG, what phones and cameras write, is decoded at 1/2-1/8 scale (6 MB for 50 Mpx), so
# a 50-Mpx phone photo (8160x6120) is accepted.
MAX_PIXELS = 25_000_000
MAX_SCALED_PIXELS = 50_000_000
DECODE_SLOTS = 2  # pictures decoded at once, across all submissions
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
# JPEG truncation is only found by decoding; at this size the decoder uses its smallest
# scale, so checking a 50-Mpx photo decodes well under a megapixel.
_JPEG_CHECK_SIZE = (64, 64)
_ANIMATED = (
    "That picture is animated. Videos start from a single still picture: please attach a "
    "PNG, JPEG or WebP still (a screenshot of the frame you want works)."
)
_NOT_A_PICTURE = (
    "That file isn't a PNG, JPEG or WebP image (I check the contents, not the name). "
    "Please attach one of those."
)
_DAMAGED = "That image looks damaged (I couldn't read all of it). Please attach it again."
_TOO_MANY_PIXELS = (
    "That image has far too many pixels for me to open. Please attach a smaller picture."
)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_type: ImageType
    width: int
    height: int


def sniff_image(
    data: bytes, *, max_bytes: int, min_side: int = 64, max_side: int = 8192
) -> ImageInfo:
    """Check an upload is a still PNG, JPEG or WebP of sensible size; say plainly what is
    wrong. Blocking (Pillow): async code calls `sniff_image_in_thread`."""
    if not data:
        raise InvalidInputError("That image is empty. Please attach a PNG, JPEG or WebP picture.")
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"That image is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB. Please attach a smaller picture."
        )
    with _decode_slots, _opened(data) as image:
        kind = _kind(image)
        width, height = image.size
        # From the header only: nothing has been decoded yet, so a bomb costs nothing.
        _check_pixels(image, max_side=max_side)
        if min(width, height) < min_side:
            raise InvalidInputError(
                f"That image is only {width}x{height} pixels; each side needs at least {min_side}."
            )
        try:
            if kind == "image/jpeg":
                # Only decoding finds a truncated JPEG; at this size it is a scaled decode.
                image.draft(image.mode, _JPEG_CHECK_SIZE)
                image.load()
            else:
                image.verify()  # PNG: every chunk's checksum, and the end marker
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidInputError(_DAMAGED) from exc
    return ImageInfo(kind, width, height)


def fit_image(data: bytes, width: int, height: int) -> bytes:
    """Scale and centre-crop to exactly `width`x`height` (OpenAI needs the video's size).
    Blocking (Pillow): async code calls `fit_image_in_thread`."""
    with _decode_slots, _opened(data) as opened:
        _kind(opened)
        _check_pixels(opened, max_side=None)  # never decode a bomb, whoever calls this
        side = max(width, height)
        # A JPEG is decoded at the smallest scale still at least this big (either way up,
        # since the EXIF rotation is applied after); other formats ignore this.
        opened.draft("RGB", (side, side))
        try:
            upright = ImageOps.exif_transpose(opened)
            fitted = ImageOps.fit(upright.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidInputError(_DAMAGED) from exc
    out = io.BytesIO()
    fitted.save(out, format="PNG", optimize=True)
    return out.getvalue()


async def sniff_image_in_thread(
    data: bytes, *, max_bytes: int, min_side: int = 64, max_side: int = 8192
) -> ImageInfo:
    """`sniff_image` in a worker thread: the event loop keeps serving Discord meanwhile."""
    return await asyncio.to_thread(
        sniff_image, data, max_bytes=max_bytes, min_side=min_side, max_side=max_side
    )


async def fit_image_in_thread(data: bytes, width: int, height: int) -> bytes:
    """`fit_image` in a worker thread: decoding and resizing take up to a second."""
    return await asyncio.to_thread(fit_image, data, width, height)


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """The picture, opened lazily (header only), with Pillow's failures in plain words."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard (89 Mpx) warns first; any bomb is refused outright.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=OPENED_FORMATS) as image:
                yield image
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InvalidInputError(
            _TOO_MANY_PIXELS if isinstance(exc, Image.DecompressionBombError) else _NOT_A_PICTURE
        ) from exc
    except Image.DecompressionBombWarning as exc:
        raise InvalidInputError(_TOO_MANY_PIXELS) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInputError(_DAMAGED) from exc


def _kind(image: Image.Image) -> ImageType:
    """PNG, JPEG or WebP, and a still: a video starts from one picture, and a provider
    given an animation would take some frame of it, or refuse it after charging."""
    fmt = image.format or ""
    animated = fmt != "MPO" and bool(getattr(image, "is_animated", False))
    kind = FORMATS.get(fmt)
    if animated:
        raise InvalidInputError(_ANIMATED)
    if kind is None:
        raise InvalidInputError(_NOT_A_PICTURE)
    return kind


def _check_pixels(image: Image.Image, *, max_side: int | None) -> None:
    width, height = image.size
    scaled = image.format in ("JPEG", "MPO") and not image.info.get("progressive")
    cap = MAX_SCALED_PIXELS if scaled else MAX_PIXELS
    if width * height > cap or (max_side is not None and max(width, height) > max_side):
        limit = f"{cap / 1_000_000:.0f} megapixels"
        if max_side is not None:
            limit += f" and {max_side} pixels a side"
        raise InvalidInputError(
            f"That image is {width}x{height} pixels; the most I can take is {limit}. "
            "Please attach a smaller picture (video services use at most 1792 pixels a "
            "side anyway)."
        )
