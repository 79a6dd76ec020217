"""One contract, every adapter: the same scenarios against each provider's fake server.

Each test checks what went over the wire (paths, auth, how often a paid create was sent)
as well as what came back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import (
    CallbackRejectedError,
    DuplicateCallbackError,
    InsufficientCreditsError,
    ProviderAuthError,
    ProviderRefusedError,
    ProviderUnavailableError,
    RateLimitedError,
    UnknownProviderTaskError,
)
from bot.providers.apixo import ApixoProvider
from bot.providers.base import (
    FailureCode,
    GenerationRequest,
    ProviderState,
    ProviderStatus,
    VideoProvider,
    plan_options,
)
from bot.providers.http import NotSentError
from bot.providers.openai import OpenAIProvider
from bot.providers.registry import build_provider
from bot.providers.sora2api import Sora2ApiProvider
from bot.providers.soravideo import SoraVideoProvider
from bot.providers.ulazai import UlazAIProvider
from bot.settings import Settings
from tests.fakes.providers import (
    FakeApixo,
    FakeOpenAI,
    FakeProvider,
    FakeSora2API,
    FakeSoraVideo,
    FakeUlazAI,
)
from tests.helpers import fast_http, free_port
from tests.providers.conftest import Received

NAMES = ["apixo", "sora2api", "soravideo", "ulazai", "openai"]
FAKES: dict[str, type[FakeProvider]] = {
    "apixo": FakeApixo,
    "sora2api": FakeSora2API,
    "soravideo": FakeSoraVideo,
    "ulazai": FakeUlazAI,
    "openai": FakeOpenAI,
}
SCHEMES = {"ulazai": "Token"}
TRANSIENT = ["server_error", "html_500", "html_502", "html_503", "connection_reset",
             "truncated_json", "empty_body"]  # fmt: skip


@dataclass
class Rig:
    name: str
    fake: FakeProvider
    provider: VideoProvider
    client: httpx.AsyncClient

    def creates(self) -> int:
        return len(self.fake.requests_for("create"))

    def statuses(self) -> int:
        return len(self.fake.requests_for("status"))


def adapter(name: str, fake: FakeProvider, client: httpx.AsyncClient) -> VideoProvider:
    http = fast_http(client, name, fake.base_url, fake.api_key, SCHEMES.get(name, "Bearer"))
    match name:
        case "apixo":
            return ApixoProvider(http)
        case "sora2api":
            return Sora2ApiProvider(http)
        case "soravideo":
            return SoraVideoProvider(http)
        case "ulazai":
            return UlazAIProvider(http)
        case "openai":
            assert isinstance(fake, FakeOpenAI)
            return OpenAIProvider(http, webhook_secret=fake.webhook_secret)
    raise AssertionError(name)


@pytest.fixture(params=NAMES)
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    name: str = request.param
    fake = FAKES[name](generation_seconds=0.3)
    await fake.start()
    client = httpx.AsyncClient(timeout=httpx.Timeout(1.0))
    try:
        yield Rig(name, fake, adapter(name, fake, client), client)
    finally:
        await client.aclose()
        await fake.stop()


def text_request(rig: Rig, prompt: str = "a red fox running through snow") -> GenerationRequest:
    planned = plan_options(
        rig.provider.display_name,
        rig.provider.capabilities,
        Mode.TEXT,
        prompt,
        GenerationOptions(Aspect.LANDSCAPE, 8, Quality.STANDARD),
    )
    return GenerationRequest(Mode.TEXT, prompt, planned.options)


async def run_to_end(rig: Rig, task_id: str) -> list[ProviderStatus]:
    seen: list[ProviderStatus] = []
    async with asyncio.timeout(5):
        while not seen or not seen[-1].state.is_final:
            seen.append(await rig.provider.status(task_id))
            await asyncio.sleep(0.05)
    return seen


async def test_text_video_from_submit_to_media(rig: Rig) -> None:
    submission = await rig.provider.submit(text_request(rig))
    seen = await run_to_end(rig, submission.provider_task_id)
    order = [s.state for s in seen]
    assert order[-1] is ProviderState.SUCCEEDED
    assert order == sorted(order, key=list(ProviderState).index)  # never backwards
    progress = [s.progress for s in seen if s.progress is not None]
    assert progress == sorted(progress) and all(0 <= p <= 100 for p in progress)

    media = await rig.provider.media(submission.provider_task_id, seen[-1])
    data = media.data
    if media.path is not None:  # spooled to disk (OpenAI-style content): ours to remove
        data = media.path.read_bytes()
        media.path.unlink()
    elif data is None:
        assert media.url is not None
        data = (await rig.client.get(media.url)).content
    assert data == rig.fake.video_bytes
    assert rig.creates() == 1

    expected = f"{SCHEMES.get(rig.name, 'Bearer')} {rig.fake.api_key}"
    for sent in rig.fake.requests:
        if sent.path.startswith("/cdn/"):
            continue  # public media URLs get no key
        assert sent.headers.get("authorization") == expected, sent.path


async def test_registry_wires_each_provider_with_its_auth_scheme(rig: Rig) -> None:
    settings = Settings(_env_file=None, discord_token="t", **rig.fake.settings_overrides())  # type: ignore[call-arg]
    provider = build_provider(settings, rig.client)
    assert provider.name == rig.name
    submission = await provider.submit(text_request(rig))
    assert submission.provider_task_id
    assert (
        rig.fake.requests[-1]
        .headers["authorization"]
        .startswith(SCHEMES.get(rig.name, "Bearer") + " ")
    )


@pytest.mark.parametrize(
    ("marker", "code"),
    [("#fail", FailureCode.CONTENT_POLICY), ("#error", FailureCode.PROVIDER_ERROR)],
)
async def test_failures_are_normalised(rig: Rig, marker: str, code: FailureCode) -> None:
    submission = await rig.provider.submit(text_request(rig, f"a fox {marker}"))
    final = (await run_to_end(rig, submission.provider_task_id))[-1]
    assert final.state is ProviderState.FAILED
    assert final.failure_code is code
    assert final.failure_message


@pytest.mark.parametrize("fault", [*TRANSIENT, "rate_limit"])
async def test_status_checks_ride_out_transient_faults(rig: Rig, fault: str) -> None:
    task_id = (await rig.provider.submit(text_request(rig))).provider_task_id
    rig.fake.inject(fault, retry_after=0.05 if fault == "rate_limit" else None)
    status = await rig.provider.status(task_id)
    assert status.state in (ProviderState.QUEUED, ProviderState.RUNNING, ProviderState.SUCCEEDED)
    assert rig.statuses() == 2  # the faulty answer, then the good one


async def test_status_checks_give_up_with_a_typed_error(rig: Rig) -> None:
    task_id = (await rig.provider.submit(text_request(rig))).provider_task_id
    rig.fake.inject("html_502", times=-1)
    with pytest.raises(ProviderUnavailableError):
        await rig.provider.status(task_id)
    assert rig.statuses() == 4  # bounded attempts, then a clear failure


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_a_paid_create_is_never_sent_twice_when_it_may_have_arrived(
    rig: Rig, fault: str
) -> None:
    rig.fake.inject(fault, path="generate" if rig.name != "soravideo" else "video")
    if rig.name == "openai":
        rig.fake.clear_faults()
        rig.fake.inject(fault, path="/videos")
    with pytest.raises(ProviderUnavailableError):
        await rig.provider.submit(text_request(rig))
    assert rig.creates() == 1


async def test_a_create_refused_with_429_is_sent_again(rig: Rig) -> None:
    rig.fake.inject("rate_limit", retry_after=0.05)
    submission = await rig.provider.submit(text_request(rig))
    assert submission.provider_task_id
    assert rig.creates() == 2


async def test_a_long_retry_after_is_reported_not_waited(rig: Rig) -> None:
    rig.fake.inject("rate_limit", retry_after=120)
    with pytest.raises(RateLimitedError) as exc:
        await rig.provider.submit(text_request(rig))
    assert exc.value.retry_after == pytest.approx(120, abs=1)
    assert rig.creates() == 1


async def test_connection_refused_create_is_retried_safely(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: the create certainly never arrived, so it may be sent again."""
    port = free_port()
    dead = FAKES[rig.name]()
    dead._port = port  # type: ignore[attr-defined]
    provider = adapter(rig.name, dead, rig.client)
    caplog.set_level(logging.WARNING, logger="bot.providers.http")
    with pytest.raises(NotSentError):
        await provider.submit(text_request(rig))
    retries = [r for r in caplog.records if "could not connect" in r.getMessage()]
    assert len(retries) == 3  # 4 attempts in all


async def test_bad_key_is_an_auth_error(rig: Rig) -> None:
    rig.fake.api_key = "some-other-key"
    with pytest.raises(ProviderAuthError):
        await rig.provider.submit(text_request(rig))
    assert "some-other-key" not in str(rig.fake.requests[-1].response)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("auth", ProviderAuthError),
        ("insufficient_credits", InsufficientCreditsError),
        ("content_policy_on_create", ProviderRefusedError),
    ],
)
async def test_create_refusals_are_typed(rig: Rig, fault: str, error: type[Exception]) -> None:
    rig.fake.inject(fault)
    with pytest.raises(error) as exc:
        await rig.provider.submit(text_request(rig))
    assert rig.creates() == 1
    if isinstance(exc.value, ProviderRefusedError):
        assert exc.value.content_policy is True
        assert "content policy" in exc.value.user_message


async def test_unknown_task_is_typed(rig: Rig) -> None:
    task_id = (await rig.provider.submit(text_request(rig))).provider_task_id
    rig.fake.inject("unknown_task")
    with pytest.raises(UnknownProviderTaskError):
        await rig.provider.status(task_id)


async def test_a_hung_status_check_times_out_and_is_retried(rig: Rig) -> None:
    task_id = (await rig.provider.submit(text_request(rig))).provider_task_id
    rig.fake.inject("slow", delay=2.0)  # longer than the client's 1 s timeout
    status = await rig.provider.status(task_id)
    assert status.state is not ProviderState.FAILED
    assert rig.statuses() == 2


# Callbacks ------------------------------------------------------------------------------


async def _callbacks(got: list[Received], count: int) -> list[Received]:
    async with asyncio.timeout(5):
        while len(got) < count:
            await asyncio.sleep(0.02)
    return got


@pytest.mark.parametrize("variant", ["record", "urls"])
@pytest.mark.parametrize("prompt", ["a fox", "a fox #fail"])
async def test_sora2api_callbacks_both_variants(
    receiver: tuple[str, list[Received]], variant: str, prompt: str
) -> None:
    url, got = receiver
    async with FakeSora2API(generation_seconds=0.1) as fake, httpx.AsyncClient() as client:
        fake.callback_variant = variant  # type: ignore[assignment]
        provider = adapter("sora2api", fake, client)
        request = GenerationRequest(Mode.TEXT, prompt, GenerationOptions(duration_seconds=10))
        submission = await provider.submit(
            GenerationRequest(request.mode, request.prompt, request.options, callback_url=url)
        )
        assert fake.requests_for("create")[0].json["callBackUrl"] == url
        (callback,) = await _callbacks(got, 1)
        status = provider.parse_callback(callback.headers, callback.body)
    assert status.provider_task_id == submission.provider_task_id
    if "#fail" in prompt:
        assert status.state is ProviderState.FAILED
        assert status.failure_code is FailureCode.CONTENT_POLICY
    else:
        assert status.state is ProviderState.SUCCEEDED
        assert status.video_url == fake.media_url(submission.provider_task_id)


async def test_apixo_callback_and_duplicates(receiver: tuple[str, list[Received]]) -> None:
    url, got = receiver
    async with FakeApixo(generation_seconds=0.1) as fake, httpx.AsyncClient() as client:
        fake.duplicate_callbacks = 2
        provider = adapter("apixo", fake, client)
        submission = await provider.submit(
            GenerationRequest(Mode.TEXT, "a fox", GenerationOptions(), callback_url=url)
        )
        body = fake.requests_for("create")[0].json
        assert body["request_type"] == "callback" and body["callback_url"] == url
        first, second = await _callbacks(got, 2)
        statuses = [provider.parse_callback(c.headers, c.body) for c in (first, second)]
    raw_id = submission.provider_task_id.split(":")[-1]
    assert all(s.state is ProviderState.SUCCEEDED for s in statuses)
    assert all(s.provider_task_id == raw_id for s in statuses)
    assert (
        statuses[0] == statuses[1]
    )  # a duplicate says the same thing: applying it twice is a no-op


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[]", b'{"data": {"state": "success"}}', b'{"code": 200}'],
)
@pytest.mark.parametrize("name", ["apixo", "sora2api"])
async def test_malformed_callbacks_are_rejected(name: str, body: bytes) -> None:
    async with FAKES[name]() as fake, httpx.AsyncClient() as client:
        provider = adapter(name, fake, client)
        with pytest.raises(CallbackRejectedError):
            provider.parse_callback({}, body)


async def test_openai_webhooks_verified_deduplicated_and_stale_rejected() -> None:
    async with FakeOpenAI() as fake, httpx.AsyncClient() as client:
        provider = adapter("openai", fake, client)
        body = json.dumps(
            {
                "id": "evt_1",
                "object": "event",
                "created_at": 1,
                "type": "video.completed",
                "data": {"id": "video_abc"},
            }
        ).encode()
        headers = fake.sign_webhook(body, msg_id="msg_1")
        status = provider.parse_callback(headers, body)
        assert status.state is ProviderState.SUCCEEDED and status.provider_task_id == "video_abc"
        with pytest.raises(DuplicateCallbackError):
            provider.parse_callback(headers, body)

        failed = body.replace(b"video.completed", b"video.failed")
        status = provider.parse_callback(fake.sign_webhook(failed, msg_id="msg_2"), failed)
        assert status.state is ProviderState.FAILED

        rejected: list[Callable[[], Any]] = [
            lambda: provider.parse_callback({}, body),  # unsigned
            lambda: provider.parse_callback(
                fake.sign_webhook(body, msg_id="m3", secret="whsec_" + "A" * 44), body
            ),  # wrong secret
            lambda: provider.parse_callback(
                fake.sign_webhook(body, msg_id="m4", timestamp=1_000_000), body
            ),  # stale
            lambda: provider.parse_callback(
                fake.sign_webhook(body, msg_id="m5"), body + b" "
            ),  # body altered after signing
            lambda: provider.parse_callback(fake.sign_webhook(b"nope", msg_id="m6"), b"nope"),
        ]
        for attempt in rejected:
            with pytest.raises(CallbackRejectedError):
                attempt()
            assert not isinstance(_raised(attempt), DuplicateCallbackError)


def _raised(attempt: Callable[[], Any]) -> BaseException | None:
    try:
        attempt()
    except BaseException as exc:
        return exc
    return None


async def test_openai_image_reference_is_resized_to_the_video_size() -> None:
    from tests.fakes.providers import make_png

    async with FakeOpenAI(generation_seconds=0.1) as fake, httpx.AsyncClient() as client:
        provider = adapter("openai", fake, client)
        from bot.providers.base import ImageInput

        image = ImageInput(make_png(500, 500), "image/png", 500, 500)
        request = GenerationRequest(
            Mode.IMAGE, "animate this", GenerationOptions(Aspect.PORTRAIT, 4), image=image
        )
        await provider.submit(request)
        sent = fake.requests_for("create")[0]
    assert sent.form["size"] == "720x1280" and sent.form["seconds"] == "4"
    _, _, data = sent.files["input_reference"]
    from tests.fakes.providers import image_size

    assert image_size(data) == (720, 1280)
