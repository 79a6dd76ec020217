"""Images for image-to-video: recognised by their bytes (never their name), and fitted.

Pillow reads the header to tell PNG, JPEG and WebP apart and to get the pixel size, so a
renamed file or a truncated upload is caught before any provider is paid.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import InvalidInputError

ImageType = Literal["image/png", "image/jpeg", "image/webp"]
FORMATS: dict[str, ImageType] = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000  # beyond this a "photo" is a decompression bomb


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_type: ImageType
    width: int
    height: int


def sniff_image(
    data: bytes, *, max_bytes: int, min_side: int = 64, max_side: int = 8192
) -> ImageInfo:
    """Check an upload is a PNG, JPEG or WebP of sensible size; say plainly what is wrong."""
    if not data:
        raise InvalidInputError("That image is empty. Please attach a PNG, JPEG or WebP picture.")
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"That image is {len(data) / 1_048_576:.1f} MB; the limit is "
            f"{max_bytes / 1_048_576:.0f} MB. Please attach a smaller picture."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = FORMATS.get(image.format or "")
                width, height = image.size
                if kind is not None:
                    image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        kind = None
        width = height = 0
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(
            "That image looks damaged (I couldn't read all of it). Please attach it again."
        ) from exc
    if kind is None:
        raise InvalidInputError(
            "That file isn't a PNG, JPEG or WebP image (I check the contents, not the name). "
            "Please attach one of those."
        )
    if width * height > MAX_PIXELS or max(width, height) > max_side:
        raise InvalidInputError(
            f"That image is {width}x{height} pixels; the largest side may be {max_side}. "
            "Please attach a smaller picture."
        )
    if min(width, height) < min_side:
        raise InvalidInputError(
            f"That image is only {width}x{height} pixels; each side needs at least {min_side}."
        )
    return ImageInfo(kind, width, height)


def fit_image(data: bytes, width: int, height: int) -> bytes:
    """Scale and centre-crop to exactly `width`x`height` (OpenAI needs the video's size)."""
    with Image.open(io.BytesIO(data)) as opened:
        upright = ImageOps.exif_transpose(opened)
        fitted = ImageOps.fit(upright.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    fitted.save(out, format="PNG", optimize=True)
    return out.getvalue()
