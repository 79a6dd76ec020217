"""The soravideo.art adapter against the loopback fake (and a few hand-made odd answers)."""

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
from bot.providers.soravideo import CAPABILITIES, SoraVideoProvider
from tests.fakes.providers import FakeSoraVideo, make_png
from tests.helpers import fast_http

CREATE = "/api/v1/sora2/text-to-video"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSoraVideo]:
    async with FakeSoraVideo(generation_seconds=100) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http_client:
        yield http_client


@pytest.fixture
def provider(fake: FakeSoraVideo, client: httpx.AsyncClient) -> SoraVideoProvider:
    return SoraVideoProvider(fast_http(client, "soravideo", fake.base_url, fake.api_key))


def text(prompt: str = "a cat on a skateboard", **options: Any) -> GenerationRequest:
    return GenerationRequest(Mode.TEXT, prompt, GenerationOptions(**options))


def image_request(prompt: str = "the flower blooms", **options: Any) -> GenerationRequest:
    png = make_png(64, 48)
    image = ImageInput(data=png, content_type="image/png", width=64, height=48)
    return GenerationRequest(Mode.IMAGE, prompt, GenerationOptions(**options), image=image)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> SoraVideoProvider:
    """The adapter against hand-made answers the fake never gives."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SoraVideoProvider(
        fast_http(client, "soravideo", "https://soravideo.test/api/v1", "sk_test")
    )


# -- what goes over the wire -------------------------------------------------------------


def test_capabilities() -> None:
    assert SoraVideoProvider.name == "soravideo"
    assert SoraVideoProvider.display_name == "soravideo.art"
    assert CAPABILITIES.aspects == (Aspect.LANDSCAPE, Aspect.PORTRAIT, Aspect.SQUARE)
    assert CAPABILITIES.durations == (5, 10, 15) and CAPABILITIES.duration_selectable
    assert CAPABILITIES.image_input == "upload" and CAPABILITIES.reports == "poll"
    assert CAPABILITIES.max_prompt_length == 5_000
    assert CAPABILITIES.result_lifetime is not None and CAPABILITIES.result_lifetime.days == 15
    assert CAPABILITIES.poll_interval_seconds == 10.0


async def test_text_to_video_request(fake: FakeSoraVideo, provider: SoraVideoProvider) -> None:
    submission = await provider.submit(text("a cat", duration_seconds=15))
    assert submission.provider_task_id in fake.tasks
    assert submission.status.state is ProviderState.QUEUED
    (req,) = fake.requests
    assert (req.method, req.path, req.status) == ("POST", CREATE, 200)
    assert req.authorization == f"Bearer {fake.api_key}"
    assert req.json == {
        "prompt": "a cat",
        "aspectRatio": "16:9",
        "duration": 15,
        "quality": "standard",
    }


@pytest.mark.parametrize(
    ("aspect", "ratio"),
    [(Aspect.LANDSCAPE, "16:9"), (Aspect.PORTRAIT, "9:16"), (Aspect.SQUARE, "1:1")],
)
async def test_aspects_map_to_ratios(
    fake: FakeSoraVideo, provider: SoraVideoProvider, aspect: Aspect, ratio: str
) -> None:
    await provider.submit(text(aspect=aspect, duration_seconds=5))
    assert fake.last_request("create").json["aspectRatio"] == ratio


async def test_high_quality_uses_the_pro_path(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    await provider.submit(text(quality=Quality.HIGH, duration_seconds=10))
    req = fake.last_request("create")
    assert req.path == "/api/v1/sora2-pro/text-to-video"
    assert req.json["quality"] == "high"
    assert fake.tasks[next(iter(fake.tasks))].model == "sora2-pro"


@pytest.mark.parametrize(
    ("quality", "model"), [(Quality.STANDARD, "sora2"), (Quality.HIGH, "sora2-pro")]
)
async def test_image_is_uploaded_then_passed_as_image_url(
    fake: FakeSoraVideo, provider: SoraVideoProvider, quality: Quality, model: str
) -> None:
    request = image_request(quality=quality, duration_seconds=10, aspect=Aspect.PORTRAIT)
    assert request.image is not None and request.image.url is None
    await provider.submit(request)
    upload, create = fake.requests
    assert (upload.method, upload.path, upload.status) == ("POST", "/api/v1/upload", 200)
    assert upload.authorization == f"Bearer {fake.api_key}"
    assert upload.files["file"] == ("image.png", "image/png", request.image.data)
    (stored,) = fake.uploads.values()
    assert create.path == f"/api/v1/{model}/image-to-video"
    assert create.json["imageUrl"] == stored.url
    assert create.json["aspectRatio"] == "9:16"


async def test_jpeg_upload_is_named_and_typed(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + bytes(60) + b"\xff\xd9"
    image = ImageInput(data=jpeg, content_type="image/jpeg", width=8, height=8)
    await provider.submit(
        GenerationRequest(Mode.IMAGE, "go", GenerationOptions(duration_seconds=5), image=image)
    )
    assert fake.last_request("upload").files["file"][:2] == ("image.jpg", "image/jpeg")


# -- the lifecycle -----------------------------------------------------------------------


async def test_lifecycle_queued_running_succeeded(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    task_id = (await provider.submit(text(duration_seconds=10))).provider_task_id
    queued = await provider.status(task_id)
    assert queued.state is ProviderState.QUEUED and queued.progress == 0
    fake.advance(55)
    running = await provider.status(task_id)
    assert running.state is ProviderState.RUNNING and running.progress == 50
    fake.advance(50)
    done = await provider.status(task_id)
    assert done.state is ProviderState.SUCCEEDED and done.progress == 100
    assert done.video_url == fake.media_url(task_id)
    assert done.thumbnail_url == fake.thumbnail_url(task_id)
    assert await provider.media(task_id, done) == Media(url=fake.media_url(task_id))
    status_req = fake.last_request("status")
    assert status_req.path == f"/api/v1/tasks/{task_id}" and status_req.method == "GET"
    assert status_req.authorization == f"Bearer {fake.api_key}"


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("#fail", FailureCode.CONTENT_POLICY),
        ("#badimage", FailureCode.INVALID_IMAGE),
        ("#error", FailureCode.PROVIDER_ERROR),
    ],
)
async def test_failures_are_classified(
    fake: FakeSoraVideo, provider: SoraVideoProvider, marker: str, code: FailureCode
) -> None:
    task_id = (await provider.submit(text(f"a cat {marker}", duration_seconds=5))).provider_task_id
    fake.advance(200)
    failed = await provider.status(task_id)
    assert failed.state is ProviderState.FAILED and failed.failure_code is code
    assert failed.failure_message and failed.video_url is None


def test_no_callbacks(provider: SoraVideoProvider) -> None:
    with pytest.raises(CallbackRejectedError):
        provider.parse_callback({}, b'{"task_id": "task_1", "status": "completed"}')


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
    fake: FakeSoraVideo, provider: SoraVideoProvider, fault: str
) -> None:
    task_id = (await provider.submit(text(duration_seconds=5))).provider_task_id
    fake.inject(fault, path="/tasks/")
    status = await provider.status(task_id)
    assert status.state is ProviderState.QUEUED
    assert [r.fault for r in fake.requests_for("status")] == [fault, None]


async def test_slow_status_check_times_out_and_is_retried(fake: FakeSoraVideo) -> None:
    async with httpx.AsyncClient(timeout=0.2) as short:
        provider = SoraVideoProvider(fast_http(short, "soravideo", fake.base_url, fake.api_key))
        task_id = (await provider.submit(text(duration_seconds=5))).provider_task_id
        fake.inject("slow", path="/tasks/", delay=0.5)
        assert (await provider.status(task_id)).state is ProviderState.QUEUED
    assert len(fake.requests_for("status")) == 2


@pytest.mark.parametrize(
    "fault", ["server_error", "html_502", "connection_reset", "truncated_json", "empty_body"]
)
async def test_create_is_never_sent_twice_when_it_may_have_arrived(
    fake: FakeSoraVideo, provider: SoraVideoProvider, fault: str
) -> None:
    fake.inject(fault, path=CREATE)
    with pytest.raises(ProviderUnavailableError):
        await provider.submit(text(duration_seconds=5))
    assert len(fake.requests_for("create")) == 1


async def test_create_that_times_out_is_not_resent(fake: FakeSoraVideo) -> None:
    async with httpx.AsyncClient(timeout=0.2) as short:
        provider = SoraVideoProvider(fast_http(short, "soravideo", fake.base_url, fake.api_key))
        fake.inject("slow", path=CREATE, delay=0.5)
        with pytest.raises(ProviderUnavailableError, match="timed out"):
            await provider.submit(text(duration_seconds=5))
    assert len(fake.requests_for("create")) == 1


async def test_create_is_retried_after_a_429(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    fake.inject("rate_limit", path=CREATE, retry_after=0.05)
    submission = await provider.submit(text(duration_seconds=5))
    assert [r.status for r in fake.requests_for("create")] == [429, 200]
    assert list(fake.tasks) == [submission.provider_task_id]


async def test_upload_is_free_so_it_is_retried(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    fake.inject("server_error", path="/upload")
    fake.inject("truncated_json", path="/upload")
    await provider.submit(image_request(duration_seconds=5))
    assert [r.status for r in fake.requests_for("upload")] == [500, 200, 200]
    assert len(fake.requests_for("create")) == 1


async def test_failed_upload_sends_no_create(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    fake.inject("auth", path="/upload")
    with pytest.raises(ProviderAuthError):
        await provider.submit(image_request(duration_seconds=5))
    assert fake.requests_for("create") == []


# -- faults map to typed errors ----------------------------------------------------------


async def test_auth_fault(fake: FakeSoraVideo, provider: SoraVideoProvider) -> None:
    fake.inject("auth")
    with pytest.raises(ProviderAuthError):
        await provider.submit(text(duration_seconds=5))


async def test_wrong_key_is_an_auth_error(fake: FakeSoraVideo, client: httpx.AsyncClient) -> None:
    provider = SoraVideoProvider(fast_http(client, "soravideo", fake.base_url, "sk_wrong"))
    with pytest.raises(ProviderAuthError):
        await provider.status("task_x")


async def test_insufficient_credits(fake: FakeSoraVideo, provider: SoraVideoProvider) -> None:
    fake.inject("insufficient_credits")
    with pytest.raises(InsufficientCreditsError):
        await provider.submit(text(duration_seconds=5))


@pytest.mark.parametrize("how", ["fault", "prompt"])
async def test_content_policy_on_create(
    fake: FakeSoraVideo, provider: SoraVideoProvider, how: str
) -> None:
    prompt = "a cat"
    if how == "fault":
        fake.inject("content_policy_on_create")
    else:
        prompt += " #refuse"
    with pytest.raises(ProviderRefusedError) as exc:
        await provider.submit(text(prompt, duration_seconds=5))
    assert exc.value.content_policy
    assert len(fake.requests_for("create")) == 1


async def test_unknown_task(fake: FakeSoraVideo, provider: SoraVideoProvider) -> None:
    with pytest.raises(UnknownProviderTaskError):
        await provider.status("task_nope")
    task_id = (await provider.submit(text(duration_seconds=5))).provider_task_id
    fake.inject("unknown_task")
    with pytest.raises(UnknownProviderTaskError):
        await provider.status(task_id)


async def test_persistent_rate_limit_and_outage_give_up_typed(
    fake: FakeSoraVideo, provider: SoraVideoProvider
) -> None:
    task_id = (await provider.submit(text(duration_seconds=5))).provider_task_id
    fake.inject("rate_limit", times=-1)
    with pytest.raises(RateLimitedError):
        await provider.status(task_id)
    assert len(fake.requests_for("status")) == 4
    fake.clear_faults()
    fake.inject("html_502", times=-1)
    with pytest.raises(ProviderUnavailableError):
        await provider.status(task_id)


# -- envelopes the fake never sends ------------------------------------------------------


def answer(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"code": 402, "msg": "Insufficient credits", "error": "balance 0"},
            InsufficientCreditsError,
        ),
        ({"code": 401, "msg": "Unauthorized"}, ProviderAuthError),
        ({"code": 400, "msg": "Bad request", "error": "prompt is required"}, ProviderRefusedError),
        ({"code": 500, "msg": "Internal error"}, ProviderUnavailableError),
        ({"code": "oops", "msg": "?"}, ProviderUnavailableError),
        ({"msg": "no code at all", "data": {"task_id": "t"}}, ProviderUnavailableError),
        ({"code": 200, "msg": "success", "data": {}}, ProviderUnavailableError),
        ({"code": 200, "msg": "success"}, ProviderUnavailableError),
        (["not", "an", "object"], ProviderUnavailableError),
    ],
)
async def test_create_envelopes_under_http_200(body: Any, error: type[ProviderError]) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(body)

    with pytest.raises(error):
        await mocked(handler).submit(text(duration_seconds=5))
    assert len(calls) == 1


async def test_status_envelope_codes_under_http_200() -> None:
    replies = iter(
        [
            answer({"code": 500, "msg": "Internal error"}),  # retried
            answer({"code": 200, "msg": "success"}),  # no data: retried
            answer({"code": 200, "msg": "ok", "data": {"status": "processing", "progress": "40"}}),
        ]
    )
    status = await mocked(lambda _: next(replies)).status("task_1")
    assert status.state is ProviderState.RUNNING and status.progress == 40
    gone = mocked(lambda _: answer({"code": 404, "msg": "Task not found"}))
    with pytest.raises(UnknownProviderTaskError):
        await gone.status("task_1")


@pytest.mark.parametrize(
    "data",
    [
        {"status": "completed", "progress": 100},  # no video_url
        {"status": "exploded"},
        {"progress": 3},
    ],
)
async def test_odd_task_data_is_a_typed_error(data: dict[str, Any]) -> None:
    provider = mocked(lambda _: answer({"code": 200, "msg": "ok", "data": data}))
    with pytest.raises(ProviderUnavailableError):
        await provider.status("task_1")


async def test_failed_task_with_error_object_and_odd_progress() -> None:
    data = {"status": "failed", "progress": None, "error": {"message": "NSFW content detected"}}
    status = await mocked(lambda _: answer({"code": 200, "msg": "ok", "data": data})).status("t")
    assert status.state is ProviderState.FAILED
    assert status.failure_code is FailureCode.CONTENT_POLICY
    assert status.failure_message == "NSFW content detected"
    pending = {"status": "pending", "progress": "soon"}
    queued = await mocked(lambda _: answer({"code": 200, "data": pending})).status("t")
    assert queued.state is ProviderState.QUEUED and queued.progress is None


async def test_task_ids_are_escaped_in_the_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return answer({"code": 200, "data": {"status": "pending"}})

    await mocked(handler).status("a/b?c")
    assert seen == ["/api/v1/tasks/a%2Fb%3Fc"]


async def test_media_without_url_is_a_typed_error(provider: SoraVideoProvider) -> None:
    with pytest.raises(ProviderUnavailableError):
        await provider.media("t", ProviderStatus(ProviderState.SUCCEEDED))
