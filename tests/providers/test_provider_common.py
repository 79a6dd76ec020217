"""Provider-independent pieces: fitting options, reading images, the demo lifecycle."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import (
    InvalidInputError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownProviderTaskError,
)
from bot.images import fit_image, sniff_image
from bot.providers.apixo import CAPABILITIES as APIXO
from bot.providers.base import FailureCode, GenerationRequest, ProviderState, plan_options
from bot.providers.demo import DemoProvider, demo_video
from bot.providers.http import ProviderHTTP
from bot.providers.sora2api import CAPABILITIES as SORA2API
from bot.providers.ulazai import UlazAIProvider
from tests.fakes.providers import FakeUlazAI
from tests.helpers import fast_http


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
    assert planned.notes == ("10 s isn't offered, so yours will be 12 s.",)
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


# Retry-After: obeyed between attempts, and never slept past the retry budget


async def test_the_retry_after_a_429_waits_at_least_what_the_provider_asked() -> None:
    """fast_http backs off 0.01 s: only Retry-After can make the gap half a second."""
    async with FakeUlazAI(generation_seconds=100) as fake, httpx.AsyncClient(timeout=5) as client:
        ulazai = UlazAIProvider(
            fast_http(client, "ulazai", fake.base_url, fake.api_key, scheme="Token")
        )
        request = GenerationRequest(Mode.TEXT, "a cat", GenerationOptions(duration_seconds=10))
        task_id = (await ulazai.submit(request)).provider_task_id
        fake.inject("rate_limit", path="/sora/status/", retry_after=0.5)
        assert (await ulazai.status(task_id)).state is ProviderState.RUNNING
    limited, answered = fake.requests_for("status")
    assert (limited.status, answered.status) == (429, 200)
    assert answered.at - limited.at >= 0.5


def scripted_http(
    answers: list[httpx.Response], *, budget: float
) -> tuple[ProviderHTTP, list[httpx.Request]]:
    """ProviderHTTP over canned answers (the last one repeats), backing off 0.01 s."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers[min(len(sent), len(answers)) - 1]

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    http = ProviderHTTP(
        client,
        provider="p",
        base_url="https://provider.test/api",
        auth_header=("Authorization", "Bearer k"),
        backoff_initial=0.01,
        max_retry_seconds=budget,
    )
    return http, sent


async def test_a_gateway_asking_for_an_hour_is_reported_not_slept() -> None:
    """A 5xx Retry-After was obeyed with no bound at all, inside the call: a status check
    (and `sora-bot generate` waiting on it) hung for the hour."""
    page = httpx.Response(
        503,
        content=b"<html><body>Maintenance</body></html>",
        headers={"content-type": "text/html", "retry-after": "3600"},
    )
    http, sent = scripted_http([page], budget=30)
    with pytest.raises(ProviderUnavailableError) as exc:
        async with asyncio.timeout(5):
            await http.request_json("GET", "status/1")
    assert exc.value.retry_after == pytest.approx(3600)  # the caller schedules it
    assert len(sent) == 1


async def test_the_retry_budget_counts_the_coming_sleep() -> None:
    """Budget 0.5 s, each 429 asking for 0.3 s: a second sleep would end at 0.6 s, past
    the budget, so it is not slept (the check used to be made before the sleep only)."""
    limited = httpx.Response(429, json={"error": "slow down"}, headers={"retry-after": "0.3"})
    http, sent = scripted_http([limited], budget=0.5)
    with pytest.raises(RateLimitedError) as exc:
        async with asyncio.timeout(5):
            await http.request_json("GET", "status/1")
    assert exc.value.retry_after == pytest.approx(0.3)
    assert len(sent) == 2
