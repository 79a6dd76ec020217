"""Provider-independent pieces: fitting options, reading images, the demo lifecycle."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import InvalidInputError, UnknownProviderTaskError
from bot.images import fit_image, sniff_image
from bot.providers.apixo import CAPABILITIES as APIXO
from bot.providers.base import FailureCode, GenerationRequest, ProviderState, plan_options
from bot.providers.demo import DemoProvider, demo_video
from bot.providers.sora2api import CAPABILITIES as SORA2API


def picture(fmt: str, size: tuple[int, int] = (320, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def test_square_on_apixo_is_refused_before_any_request() -> None:
    with pytest.raises(InvalidInputError) as exc:
        plan_options("APIXO", APIXO, Mode.TEXT, "a cat", GenerationOptions(aspect=Aspect.SQUARE))
    assert (
        exc.value.user_message == "APIXO cannot make square videos; choose landscape or portrait."
    )


def test_duration_maps_to_nearest_and_says_so() -> None:
    planned = plan_options(
        "APIXO", APIXO, Mode.TEXT, "a cat", GenerationOptions(duration_seconds=10)
    )
    assert planned.options.duration_seconds == 12  # ties go to the longer clip
    assert planned.notes == ("APIXO makes 4, 8, 12 second videos, so yours will be 12 seconds.",)
    exact = plan_options("APIXO", APIXO, Mode.TEXT, "a cat", GenerationOptions(duration_seconds=8))
    assert exact.notes == () and exact.options.duration_seconds == 8


def test_fixed_length_provider_explains_the_length() -> None:
    planned = plan_options(
        "Sora2API", SORA2API, Mode.TEXT, "x", GenerationOptions(duration_seconds=4)
    )
    assert planned.options.duration_seconds == 10
    assert planned.notes == ("Sora2API sets the length itself: about 10 seconds.",)


@pytest.mark.parametrize("prompt", ["", "   \n "])
def test_empty_prompt_is_refused(prompt: str) -> None:
    with pytest.raises(InvalidInputError, match="prompt is empty"):
        plan_options("APIXO", APIXO, Mode.TEXT, prompt, GenerationOptions())


def test_overlong_prompt_is_refused_with_the_limit() -> None:
    with pytest.raises(InvalidInputError) as exc:
        plan_options("APIXO", APIXO, Mode.TEXT, "x" * 5001, GenerationOptions())
    assert "5,001 characters" in exc.value.user_message and "5,000" in exc.value.user_message


@pytest.mark.parametrize(
    ("fmt", "kind"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_images_are_recognised_by_content(fmt: str, kind: str) -> None:
    info = sniff_image(picture(fmt), max_bytes=10_000_000)
    assert (info.content_type, info.width, info.height) == (kind, 320, 200)


def test_non_images_and_damaged_images_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="isn't a PNG, JPEG or WebP"):
        sniff_image(b"GIF89a" + b"\x00" * 100, max_bytes=10_000_000)
    with pytest.raises(InvalidInputError, match="isn't a PNG, JPEG or WebP"):
        sniff_image(picture("GIF"), max_bytes=10_000_000)
    with pytest.raises(InvalidInputError, match="isn't a PNG, JPEG or WebP"):
        sniff_image(b"%PDF-1.7 not an image", max_bytes=10_000_000)
    with pytest.raises(InvalidInputError, match="damaged"):
        sniff_image(picture("PNG")[:120], max_bytes=10_000_000)
    with pytest.raises(InvalidInputError, match="empty"):
        sniff_image(b"", max_bytes=10)


def test_image_size_limits() -> None:
    with pytest.raises(InvalidInputError, match="the limit is"):
        sniff_image(picture("PNG"), max_bytes=100)
    with pytest.raises(InvalidInputError, match="only 32x32 pixels"):
        sniff_image(picture("PNG", (32, 32)), max_bytes=10_000_000)


def test_fit_image_gives_exact_size() -> None:
    fitted = fit_image(picture("JPEG", (1000, 1000)), 1280, 720)
    with Image.open(io.BytesIO(fitted)) as image:
        assert image.size == (1280, 720) and image.format == "PNG"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_demo_runs_the_whole_lifecycle_and_ships_a_real_mp4() -> None:
    clock = Clock()
    demo = DemoProvider(generation_seconds=20, clock=clock)
    request = GenerationRequest(Mode.TEXT, "a cat", GenerationOptions())
    task = (await demo.submit(request)).provider_task_id
    assert (await demo.status(task)).state is ProviderState.QUEUED
    clock.now += 10
    running = await demo.status(task)
    assert running.state is ProviderState.RUNNING and running.progress == 50
    clock.now += 10
    done = await demo.status(task)
    assert done.state is ProviderState.SUCCEEDED
    media = await demo.media(task, done)
    assert media.data == demo_video() and media.data[4:8] == b"ftyp"
    # Stateless: a new instance (a restarted bot) still knows the task.
    assert (await DemoProvider(20, clock=clock).status(task)).state is ProviderState.SUCCEEDED


async def test_demo_fails_prompts_with_fail_marker() -> None:
    clock = Clock()
    demo = DemoProvider(generation_seconds=5, clock=clock)
    task = (
        await demo.submit(GenerationRequest(Mode.TEXT, "x #FAIL", GenerationOptions()))
    ).provider_task_id
    clock.now += 6
    status = await demo.status(task)
    assert status.state is ProviderState.FAILED
    assert status.failure_code is FailureCode.CONTENT_POLICY


async def test_demo_unknown_task() -> None:
    with pytest.raises(UnknownProviderTaskError):
        await DemoProvider().status("nonsense")


def test_quality_enum_values_are_the_public_names() -> None:
    assert [q.value for q in Quality] == ["standard", "high"]
    assert [a.value for a in Aspect] == ["landscape", "portrait", "square"]


async def test_request_rate_limiter_spreads_requests_over_the_minute() -> None:
    import time

    from bot.providers.http import RequestRateLimiter

    limiter = RequestRateLimiter(per_minute=600)  # 10 a second, bursts of 600
    started = time.monotonic()
    for _ in range(600):
        await limiter.acquire()
    assert time.monotonic() - started < 0.5  # the burst allowance is immediate
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started >= 0.45  # then 10 a second: 5 more take ~0.5 s
