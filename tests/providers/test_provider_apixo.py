"""APIXO specifics the shared contract does not cover: sora-2-pro's own parameters."""

from __future__ import annotations

import httpx
import pytest

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.providers.apixo import ApixoProvider
from bot.providers.base import GenerationRequest, ImageInput
from tests.fakes.providers import FakeApixo, make_png
from tests.helpers import fast_http


@pytest.mark.parametrize(
    ("aspect", "size"), [(Aspect.LANDSCAPE, "1792*1024"), (Aspect.PORTRAIT, "1024*1792")]
)
async def test_high_quality_text_sends_a_pro_size(aspect: Aspect, size: str) -> None:
    """sora-2-pro text-to-video takes `size` as W*H; an aspect name is refused with a 400."""
    async with FakeApixo(generation_seconds=0.2) as fake, httpx.AsyncClient() as client:
        provider = ApixoProvider(fast_http(client, "apixo", fake.base_url, fake.api_key))
        options = GenerationOptions(aspect, 8, Quality.HIGH)
        submission = await provider.submit(GenerationRequest(Mode.TEXT, "a lighthouse", options))
        sent = fake.requests_for("create")[-1]
    assert submission.provider_task_id.startswith("sora-2-pro:")
    assert sent.path.endswith("/generateTask/sora-2-pro")
    assert sent.json["input"]["size"] == size
    assert "resolution" not in sent.json["input"]


async def test_high_quality_image_sends_a_pro_resolution() -> None:
    """sora-2-pro image-to-video takes `resolution` (720p or 1080p); the picture sets the shape."""
    async with FakeApixo(generation_seconds=0.2) as fake, httpx.AsyncClient() as client:
        provider = ApixoProvider(fast_http(client, "apixo", fake.base_url, fake.api_key))
        image = ImageInput(
            make_png(640, 360), "image/png", 640, 360, url=f"{fake.base_url}/still.png"
        )
        options = GenerationOptions(Aspect.LANDSCAPE, 8, Quality.HIGH)
        await provider.submit(GenerationRequest(Mode.IMAGE, "make it move", options, image=image))
        sent = fake.requests_for("create")[-1]
    assert sent.json["input"]["resolution"] == "1080p"
    assert "size" not in sent.json["input"]
