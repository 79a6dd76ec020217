"""Reading and fitting pictures: refused by their header before any decoding, never on
the event loop, and large real photos still accepted."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image, ImageFile, PngImagePlugin, WebPImagePlugin

from bot.domain import Aspect, GenerationOptions, Mode
from bot.errors import InvalidInputError
from bot.images import fit_image, fit_image_in_thread, sniff_image, sniff_image_in_thread
from bot.providers.base import GenerationRequest, ImageInput
from bot.providers.openai import OpenAIProvider
from tests.fakes.providers import FakeOpenAI, image_size
from tests.helpers import fast_http
from tests.pictures import (
    animated,
    gradient,
    jpeg_claiming,
    largest_loop_gap,
    phone_mpo,
    png_claiming,
    still,
)

LIMIT = 10 * 1024 * 1024
# Measured: the heartbeat waits under 10 ms while a 25-Mpx PNG is checked and fitted in a
# worker thread, and about 0.4 s when the same work runs on the loop.
LOOP_GAP = 0.2


@pytest.fixture(scope="module")
def large_png() -> bytes:
    """25 Mpx, the most a PNG may have: decoding and fitting it takes about 0.4 s."""
    return gradient("PNG", (5000, 5000))


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any pixel decoding or verification fail the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pixels were decoded or verified before the size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "verify", refuse)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "verify", refuse)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", refuse)


@pytest.mark.parametrize(
    ("data", "size", "cap"),
    [
        (png_claiming(6000, 5000), "6000x5000", "25 megapixels"),
        (jpeg_claiming(6000, 5000, progressive=True), "6000x5000", "25 megapixels"),
        (jpeg_claiming(8000, 7000), "8000x7000", "50 megapixels"),
    ],
    ids=["png", "progressive-jpeg", "baseline-jpeg"],
)
@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize("check", [sniff_image, fit_image], ids=["sniff", "fit"])
def test_too_many_pixels_is_refused_from_the_header_before_any_decoding(
    check: Callable[..., Any], data: bytes, size: str, cap: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        if check is sniff_image:
            sniff_image(data, max_bytes=LIMIT)
        else:
            fit_image(data, 1280, 720)
    assert f"That image is {size} pixels; the most I can take is {cap}" in (
        refused.value.user_message
    )


def test_a_bomb_beyond_pillows_own_guard_is_refused_as_too_many_pixels() -> None:
    with pytest.raises(InvalidInputError, match="far too many pixels"):
        sniff_image(png_claiming(20_000, 20_000), max_bytes=LIMIT)


def test_a_50_megapixel_phone_photo_is_accepted_and_fitted() -> None:
    photo = gradient("JPEG", (8160, 6120))
    info = sniff_image(photo, max_bytes=LIMIT)
    assert (info.content_type, info.width, info.height) == ("image/jpeg", 8160, 6120)
    with Image.open(io.BytesIO(fit_image(photo, 1280, 720))) as fitted:
        assert fitted.size == (1280, 720)


def test_a_phone_jpeg_with_an_extra_picture_is_a_jpeg() -> None:
    info = sniff_image(phone_mpo(), max_bytes=LIMIT)
    assert (info.content_type, info.width, info.height) == ("image/jpeg", 320, 240)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_pictures_are_refused_with_a_plain_reason(fmt: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        sniff_image(animated(fmt), max_bytes=LIMIT)
    assert refused.value.user_message.startswith("That picture is animated.")
    with pytest.raises(InvalidInputError, match="animated"):
        fit_image(animated(fmt), 1280, 720)


def test_a_still_gif_is_not_accepted() -> None:
    with pytest.raises(InvalidInputError, match="isn't a PNG, JPEG or WebP image"):
        sniff_image(still("GIF"), max_bytes=LIMIT)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_pictures_are_refused_as_damaged(fmt: str) -> None:
    whole = still(fmt)
    with pytest.raises(InvalidInputError, match="looks damaged"):
        sniff_image(whole[: len(whole) - 20], max_bytes=LIMIT)


async def test_checking_and_fitting_run_off_the_event_loop(large_png: bytes) -> None:
    info, sniff_gap = await largest_loop_gap(sniff_image_in_thread(large_png, max_bytes=LIMIT))
    fitted, fit_gap = await largest_loop_gap(fit_image_in_thread(large_png, 1280, 720))
    assert (info.width, info.height) == (5000, 5000)
    with Image.open(io.BytesIO(fitted)) as image:
        assert image.size == (1280, 720)
    assert sniff_gap < LOOP_GAP and fit_gap < LOOP_GAP, (sniff_gap, fit_gap)


async def test_openai_fits_the_reference_picture_off_the_event_loop(large_png: bytes) -> None:
    async with FakeOpenAI(generation_seconds=0.1) as fake, httpx.AsyncClient() as client:
        provider = OpenAIProvider(
            fast_http(client, "openai", fake.base_url, fake.api_key),
            webhook_secret=fake.webhook_secret,
        )
        request = GenerationRequest(
            Mode.IMAGE,
            "animate this",
            GenerationOptions(Aspect.LANDSCAPE, 4),
            image=ImageInput(large_png, "image/png", 5000, 5000),
        )
        _, gap = await largest_loop_gap(provider.submit(request))
        sent = fake.requests_for("create")[0]
    assert image_size(sent.files["input_reference"][2]) == (1280, 720)
    assert gap < LOOP_GAP, gap
