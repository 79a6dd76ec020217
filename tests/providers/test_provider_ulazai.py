"""The UlazAI adapter against the loopback fake (and a few hand-made odd answers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import (
    CallbackRejectedError,
    InsufficientCreditsError,
    ProviderAuthError,
    ProviderError,
    ProviderRefusedError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownProviderTaskError,
)
from bot.providers.base import (
    FailureCode,
    GenerationRequest,
    ImageInput,
    Media,
    ProviderState,
    ProviderStatus,
)
from bot.providers.ulazai import CAPABILITIES, UlazAIProvider
from tests.fakes.providers import FakeUlazAI, make_png
from tests.helpers import fast_http

TEXT = "/api/v1/sora/generate/text-to-video/"
IMAGE = "/api/v1/sora/generate/image-to-video/"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUlazAI]:
    async with FakeUlazAI(generation_seconds=100) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http_client:
        yield http_client


@pytest.fixture
def provider(fake: FakeUlazAI, client: httpx.AsyncClient) -> UlazAIProvider:
    return UlazAIProvider(fast_http(client, "ulazai", fake.base_url, fake.api_key, scheme="Token"))


def text(prompt: str = "a cat on a skateboard", **options: Any) -> GenerationRequest:
    return GenerationRequest(Mode.TEXT, prompt, GenerationOptions(duration_seconds=10, **options))


def image_request(url: str | None = "https://cdn.discordapp.test/a/cat.png") -> GenerationRequest:
    png = make_png(64, 48)
    image = ImageInput(data=png, content_type="image/png", width=64, height=48, url=url)
    return GenerationRequest(
        Mode.IMAGE, "the cat turns", GenerationOptions(duration_seconds=10), image=image
    )


def answer(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> UlazAIProvider:
    """The adapter against hand-made answers the fake never gives."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return UlazAIProvider(
        fast_http(client, "ulazai", "https://ulazai.test/api/v1", "key", scheme="Token")
    )


# -- what goes over the wire -------------------------------------------------------------


def test_capabilities() -> None:
    assert UlazAIProvider.name == "ulazai" and UlazAIProvider.display_name == "UlazAI"
    assert CAPABILITIES.aspects == (Aspect.LANDSCAPE, Aspect.PORTRAIT, Aspect.SQUARE)
    assert CAPABILITIES.durations == (10,) and not CAPABILITIES.duration_selectable
    assert CAPABILITIES.image_input == "url" and CAPABILITIES.reports == "poll"
    assert CAPABILITIES.max_prompt_length == 5_000
    assert CAPABILITIES.max_concurrent_tasks == 10
    assert CAPABILITIES.poll_interval_seconds == 30.0
    assert CAPABILITIES.result_lifetime is not None and CAPABILITIES.result_lifetime.days == 15


async def test_text_to_video_request(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    submission = await provider.submit(text("a cat"))
    assert submission.provider_task_id.startswith("sra_2_")
    assert submission.provider_task_id in fake.tasks
    (req,) = fake.requests
    assert (req.method, req.path, req.status) == ("POST", TEXT, 201)
    assert req.authorization == f"Token {fake.api_key}"
    assert req.json == {
        "prompt": "a cat",
        "aspect_ratio": "landscape",
        "quality": "standard",
        "prompt_directory_optin": False,
    }
    # Not published to the Prompt Directory, so the full price was charged.
    assert fake.tasks[submission.provider_task_id].params["credits_charged"] == 80


@pytest.mark.parametrize("aspect", list(Aspect))
@pytest.mark.parametrize("quality", list(Quality))
async def test_aspect_and_quality_are_sent_as_named(
    fake: FakeUlazAI, provider: UlazAIProvider, aspect: Aspect, quality: Quality
) -> None:
    await provider.submit(text(aspect=aspect, quality=quality))
    body = fake.last_request("create").json
    assert (body["aspect_ratio"], body["quality"]) == (aspect.value, quality.value)
    assert body["prompt_directory_optin"] is False
    assert "duration" not in body


async def test_image_to_video_sends_the_image_url(
    fake: FakeUlazAI, provider: UlazAIProvider
) -> None:
    await provider.submit(image_request())
    (req,) = fake.requests
    assert req.path == IMAGE
    assert req.json["image_url"] == "https://cdn.discordapp.test/a/cat.png"
    assert req.json["prompt_directory_optin"] is False


async def test_image_without_url_is_a_caller_bug(
    fake: FakeUlazAI, provider: UlazAIProvider
) -> None:
    with pytest.raises(ValueError):
        await provider.submit(image_request(url=None))
    assert fake.requests == []


async def test_bearer_is_refused(fake: FakeUlazAI, client: httpx.AsyncClient) -> None:
    provider = UlazAIProvider(
        fast_http(client, "ulazai", fake.base_url, fake.api_key, scheme="Bearer")
    )
    with pytest.raises(ProviderAuthError):
        await provider.submit(text())
    assert fake.tasks == {}


# -- the lifecycle -----------------------------------------------------------------------


async def test_lifecycle_running_then_succeeded(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    task_id = (await provider.submit(text())).provider_task_id
    first = await provider.status(task_id)
    assert first.state is ProviderState.RUNNING and first.progress == 0
    fake.advance(55)
    running = await provider.status(task_id)
    assert running.state is ProviderState.RUNNING and running.progress == 50
    fake.advance(50)
    done = await provider.status(task_id)
    assert done.state is ProviderState.SUCCEEDED and done.progress == 100
    assert done.video_url == fake.media_url(task_id)
    assert done.thumbnail_url == fake.thumbnail_url(task_id)
    assert await provider.media(task_id, done) == Media(url=fake.media_url(task_id))
    req = fake.last_request("status")
    assert (req.method, req.path) == ("GET", f"/api/v1/sora/status/{task_id}/")
    assert req.authorization == f"Token {fake.api_key}"


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("#fail", FailureCode.CONTENT_POLICY),
        ("#badimage", FailureCode.INVALID_IMAGE),
        ("#error", FailureCode.PROVIDER_ERROR),
    ],
)
async def test_failure_without_data_is_a_failed_task(
    fake: FakeUlazAI, provider: UlazAIProvider, marker: str, code: FailureCode
) -> None:
    task_id = (await provider.submit(text(f"a cat {marker}"))).provider_task_id
    fake.advance(200)
    failed = await provider.status(task_id)
    body = fake.last_request("status").response
    assert body["success"] is False and "data" not in body  # the documented shape
    assert failed.state is ProviderState.FAILED and failed.failure_code is code
    assert failed.failure_message and body["error_details"] in failed.failure_message
    assert len(fake.requests_for("status")) == 1  # a failure, not a garbled answer to retry


def test_no_callbacks(provider: UlazAIProvider) -> None:
    with pytest.raises(CallbackRejectedError):
        provider.parse_callback({}, b'{"task_id": "sra_2_x", "status": "success"}')


# -- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        "rate_limit",
        "server_error",
        "html_500",
        "html_502",
        "html_503",
        "connection_reset",
        "truncated_json",
        "empty_body",
    ],
)
async def test_status_checks_are_retried(
    fake: FakeUlazAI, provider: UlazAIProvider, fault: str
) -> None:
    task_id = (await provider.submit(text())).provider_task_id
    fake.inject(fault, path="/sora/status/")
    status = await provider.status(task_id)
    assert status.state is ProviderState.RUNNING
    assert [r.fault for r in fake.requests_for("status")] == [fault, None]


async def test_slow_status_check_times_out_and_is_retried(fake: FakeUlazAI) -> None:
    async with httpx.AsyncClient(timeout=0.2) as short:
        provider = UlazAIProvider(
            fast_http(short, "ulazai", fake.base_url, fake.api_key, scheme="Token")
        )
        task_id = (await provider.submit(text())).provider_task_id
        fake.inject("slow", path="/sora/status/", delay=0.5)
        assert (await provider.status(task_id)).state is ProviderState.RUNNING
    assert len(fake.requests_for("status")) == 2


@pytest.mark.parametrize(
    "fault", ["server_error", "html_503", "connection_reset", "truncated_json", "empty_body"]
)
async def test_create_is_never_sent_twice_when_it_may_have_arrived(
    fake: FakeUlazAI, provider: UlazAIProvider, fault: str
) -> None:
    fake.inject(fault, path=TEXT)
    with pytest.raises(ProviderUnavailableError):
        await provider.submit(text())
    assert len(fake.requests_for("create")) == 1


async def test_create_that_times_out_is_not_resent(fake: FakeUlazAI) -> None:
    async with httpx.AsyncClient(timeout=0.2) as short:
        provider = UlazAIProvider(
            fast_http(short, "ulazai", fake.base_url, fake.api_key, scheme="Token")
        )
        fake.inject("slow", path=TEXT, delay=0.5)
        with pytest.raises(ProviderUnavailableError, match="timed out"):
            await provider.submit(text())
    assert len(fake.requests_for("create")) == 1


async def test_create_is_retried_after_a_429(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    fake.inject("rate_limit", path=TEXT, retry_after=0.05)
    submission = await provider.submit(text())
    assert [r.status for r in fake.requests_for("create")] == [429, 201]
    assert list(fake.tasks) == [submission.provider_task_id]


async def test_eleventh_concurrent_task_is_rate_limited(
    fake: FakeUlazAI, provider: UlazAIProvider
) -> None:
    for _ in range(10):
        await provider.submit(text())
    with pytest.raises(RateLimitedError):
        await provider.submit(text())
    assert len(fake.tasks) == 10
    assert [r.status for r in fake.requests_for("create")][10:] == [429] * 4


# -- faults map to typed errors ----------------------------------------------------------


async def test_auth_fault(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    task_id = (await provider.submit(text())).provider_task_id
    fake.inject("auth")
    with pytest.raises(ProviderAuthError):
        await provider.status(task_id)  # a 401 on a status check is not a failed task


async def test_insufficient_credits(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    fake.inject("insufficient_credits")
    with pytest.raises(InsufficientCreditsError):
        await provider.submit(text())


@pytest.mark.parametrize("how", ["fault", "prompt"])
async def test_422_on_create_is_a_content_policy_refusal(
    fake: FakeUlazAI, provider: UlazAIProvider, how: str
) -> None:
    prompt = "a cat"
    if how == "fault":
        fake.inject("content_policy_on_create")
    else:
        prompt += " #refuse"
    with pytest.raises(ProviderRefusedError) as exc:
        await provider.submit(text(prompt))
    assert exc.value.content_policy
    assert [r.status for r in fake.requests_for("create")] == [422]


async def test_bad_request_on_create_is_a_plain_refusal(provider: UlazAIProvider) -> None:
    with pytest.raises(ProviderRefusedError) as exc:
        await provider.submit(text("x" * 5001))
    assert not exc.value.content_policy
    assert "too long" in exc.value.detail


async def test_unknown_task(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    with pytest.raises(UnknownProviderTaskError):
        await provider.status("sra_2_nope")
    task_id = (await provider.submit(text())).provider_task_id
    fake.inject("unknown_task")
    with pytest.raises(UnknownProviderTaskError):
        await provider.status(task_id)


async def test_persistent_outage_gives_up_typed(fake: FakeUlazAI, provider: UlazAIProvider) -> None:
    task_id = (await provider.submit(text())).provider_task_id
    fake.inject("server_error", times=-1)
    with pytest.raises(ProviderUnavailableError):
        await provider.status(task_id)
    assert len(fake.requests_for("status")) == 4


# -- answers the fake never gives --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {"success": False, "error": "Video generation failed", "error_details": "Policy hit"},
            FailureCode.CONTENT_POLICY,
        ),
        (
            400,
            {"success": False, "error": "Video generation failed", "error_details": "Bad image"},
            FailureCode.INVALID_IMAGE,
        ),
        (422, {"success": False, "error": "Rejected"}, FailureCode.CONTENT_POLICY),
        (400, {"success": False, "error": "Video generation failed"}, FailureCode.PROVIDER_ERROR),
    ],
)
async def test_failure_body_under_a_4xx_status_is_a_failed_task(
    status: int, body: dict[str, Any], code: FailureCode
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(body, status)

    result = await mocked(handler).status("sra_2_a")
    assert result.state is ProviderState.FAILED and result.failure_code is code
    assert result.failure_message and body["error"] in result.failure_message
    assert len(calls) == 1


async def test_html_or_empty_4xx_on_status_stays_an_error() -> None:
    html = httpx.Response(
        400, content=b"<html>Bad Request</html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(ProviderRefusedError):
        await mocked(lambda _: html).status("sra_2_a")
    with pytest.raises(ProviderRefusedError):
        await mocked(lambda _: httpx.Response(400)).status("sra_2_a")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"success": True, "data": {}}, ProviderUnavailableError),
        ({"success": True}, ProviderUnavailableError),
        ({"success": True, "data": {"task_id": ""}}, ProviderUnavailableError),
        (["a", "list"], ProviderUnavailableError),
        ({"success": False, "error": "Insufficient credits"}, InsufficientCreditsError),
        ({"success": False, "error": "Content policy violation"}, ProviderRefusedError),
        ({"success": False, "error": "Nope"}, ProviderRefusedError),
    ],
)
async def test_odd_create_answers_are_typed_and_sent_once(
    body: Any, error: type[ProviderError]
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(body, 201)

    with pytest.raises(error):
        await mocked(handler).submit(text())
    assert len(calls) == 1


async def test_garbled_status_answers_are_retried_then_read() -> None:
    replies = iter(
        [
            answer({"success": True}),  # no data
            answer({"success": True, "data": {"progress": 5}}),  # no status
            answer(["nonsense"]),
            answer({"success": True, "data": {"status": "processing", "progress": "12.5"}}),
        ]
    )
    status = await mocked(lambda _: next(replies)).status("sra_2_a")
    assert status.state is ProviderState.RUNNING and status.progress == 12


@pytest.mark.parametrize(
    "data", [{"status": "success"}, {"status": "melted"}, {"status": "success", "video_url": 3}]
)
async def test_odd_task_data_is_a_typed_error(data: dict[str, Any]) -> None:
    provider = mocked(lambda _: answer({"success": True, "data": data}))
    with pytest.raises(ProviderUnavailableError):
        await provider.status("sra_2_a")


async def test_failed_status_inside_data_is_read_too() -> None:
    body = {"success": True, "data": {"status": "failed", "error": "NSFW output blocked"}}
    status = await mocked(lambda _: answer(body)).status("sra_2_a")
    assert status.state is ProviderState.FAILED
    assert status.failure_code is FailureCode.CONTENT_POLICY


async def test_media_without_url_is_a_typed_error(provider: UlazAIProvider) -> None:
    with pytest.raises(ProviderUnavailableError):
        await provider.media("t", ProviderStatus(ProviderState.SUCCEEDED))
