"""The provider seam: each adapter declares its own settings and registration, the
registry lists them, and nothing outside `bot/providers/` needs to know which exist."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest
from pydantic_settings import SettingsConfigDict

from bot.domain import Aspect, GenerationOptions, Mode, Quality
from bot.errors import CallbackRejectedError, ConfigurationError, InvalidInputError
from bot.providers.apixo import ApixoProvider
from bot.providers.base import (
    Capabilities,
    GenerationRequest,
    Media,
    ProviderDefaults,
    ProviderState,
    ProviderStatus,
    Submission,
    VideoProvider,
)
from bot.providers.config import ApiProviderSettings, ProviderSpec
from bot.providers.demo import DemoProvider
from bot.providers.http import ProviderHTTP
from bot.providers.limits import TaskCap
from bot.providers.openai import OpenAIProvider
from bot.providers.registry import DEFAULT_PROVIDER, PROVIDERS, build_provider
from bot.settings import Settings, load_settings

WHSEC = "whsec_" + base64.b64encode(b"a-webhook-signing-key-32-bytes!!").decode()
REQUEST = GenerationRequest(
    Mode.TEXT, "a red fox", GenerationOptions(Aspect.LANDSCAPE, 10, Quality.STANDARD)
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    names = {name.upper() for name in Settings.model_fields}
    names |= {env for spec in PROVIDERS.values() for env in spec.settings.env_names()}
    names |= {"FAKEVID_API_KEY", "FAKEVID_BASE_URL", "FAKEVID_REGION"}
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    monkeypatch.setenv("DISCORD_TOKEN", "tok")


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Request]]]:
    """A client whose every request is recorded and refused with a 400."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(400, json={"error": "recorded"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        yield client, sent


# -- every registered provider, from its own settings ---------------------------------


def test_every_provider_is_registered_under_its_own_name() -> None:
    assert DEFAULT_PROVIDER in PROVIDERS
    for name, spec in PROVIDERS.items():
        assert spec.name == name
        prefix = str(spec.settings.model_config.get("env_prefix"))
        assert prefix == f"{name.upper()}_"
        assert all(env.startswith(prefix) for env in spec.settings.env_names())


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_the_registry_builds_each_provider_from_its_own_settings(
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded: tuple[httpx.AsyncClient, list[httpx.Request]],
) -> None:
    client, sent = recorded
    spec = PROVIDERS[name]
    monkeypatch.setenv("SORA_PROVIDER", name)
    keyed = issubclass(spec.settings, ApiProviderSettings)
    if keyed:
        monkeypatch.setenv(spec.settings.env_name("api_key"), f"key-of-{name}")
        monkeypatch.setenv(spec.settings.env_name("base_url"), f"https://{name}.example/v9/")
    settings = load_settings()
    block = settings.provider_settings()
    assert type(block) is spec.settings and block is settings.provider_settings(name)

    provider = build_provider(settings, client)
    assert provider.name == name and provider.display_name == spec.display_name
    if not keyed:
        assert block.key is None and block.address is None
        return
    assert block.address == f"https://{name}.example/v9"  # the trailing slash dropped
    assert settings.base_url(name) == block.address
    assert f"key-of-{name}" in settings.secret_values()
    with pytest.raises(Exception):  # noqa: B017  (whatever the 400 becomes)
        await provider.submit(REQUEST)
    assert sent, "no request was sent"
    assert str(sent[0].url).startswith(f"https://{name}.example/v9/")
    assert sent[0].headers["authorization"].endswith(f" key-of-{name}")


@pytest.mark.parametrize("name", sorted(n for n in PROVIDERS if n != DEFAULT_PROVIDER))
def test_a_provider_without_its_key_is_not_built(name: str) -> None:
    settings = load_settings()  # the default provider: every other one has no key here
    with pytest.raises(ValueError, match=PROVIDERS[name].settings.env_name("api_key")):
        build_provider(settings, httpx.AsyncClient(), name)


def test_keyword_values_reach_the_provider_settings_and_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    monkeypatch.setenv("DEMO_GENERATION_SECONDS", "5")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        sora_provider="openai",
        openai_api_key="from-keyword",
        OPENAI_WEBHOOK_SECRET=WHSEC,  # names in any case, as in the environment
    )
    block = settings.provider_settings()
    assert block.key is not None and block.key.get_secret_value() == "from-keyword"
    assert WHSEC in settings.secret_values()
    assert WHSEC.removeprefix("whsec_") in settings.secret_values()
    assert settings.provider_settings("demo").generation_seconds == 5  # type: ignore[attr-defined]


def test_blank_provider_settings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("SORA_PROVIDER=openai\nOPENAI_API_KEY=k\nOPENAI_WEBHOOK_SECRET=\n")
    monkeypatch.setenv("APIXO_API_KEY", "   ")
    settings = load_settings()
    assert settings.provider_settings("openai").webhook_secret is None  # type: ignore[attr-defined]
    assert settings.provider_settings("apixo").key is None


def test_every_provider_problem_is_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN")
    monkeypatch.setenv("SORA_PROVIDER", "apixo")
    monkeypatch.setenv("SORA2API_BASE_URL", "ftp://nope")
    monkeypatch.setenv("DEMO_GENERATION_SECONDS", "0")
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", "sk-secret-looking-value")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()
    assert lines[0] == "Configuration problems:"
    assert "  - DISCORD_TOKEN: is required but not set" in lines
    assert "  - SORA_PROVIDER: 'apixo' needs APIXO_API_KEY to be set" in lines
    assert "  - SORA2API_BASE_URL: must start with http:// or https://" in lines
    assert any(line.startswith("  - DEMO_GENERATION_SECONDS: ") for line in lines)
    assert any(
        line.startswith("  - OPENAI_WEBHOOK_SECRET: must start with whsec_") for line in lines
    )
    assert "sk-secret-looking-value" not in str(caught.value)


def test_an_unknown_provider_lists_the_registered_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_PROVIDER", "midjourney")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert f"- SORA_PROVIDER: must be one of {', '.join(sorted(PROVIDERS))}" in str(caught.value)


# -- a provider added by a test: one module's worth of code and one registry line -----


class FakeVidSettings(ApiProviderSettings):
    model_config = SettingsConfigDict(env_prefix="FAKEVID_")

    base_url: str = "https://fakevid.example/api"
    region: str = "eu"


class FakeVidProvider(ProviderDefaults):
    name = "fakevid"
    display_name = "FakeVid"
    capabilities = Capabilities(
        modes=frozenset({Mode.TEXT}),
        aspects=(Aspect.LANDSCAPE,),
        durations=(10,),
        qualities=(Quality.STANDARD,),
        max_prompt_length=100,
        image_input="url",
        result_lifetime=None,
        reports="callback",
    )

    def __init__(self, http: ProviderHTTP, region: str) -> None:
        self.http = http
        self.region = region

    async def submit(self, request: GenerationRequest) -> Submission:
        return Submission(f"{self.region}/task-1")

    async def status(self, provider_task_id: str) -> ProviderStatus:
        return ProviderStatus(ProviderState.SUCCEEDED, 100, video_url="https://cdn.example/v.mp4")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise CallbackRejectedError("not in this test")

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        return Media(url=status.video_url)


def _build_fakevid(settings: FakeVidSettings, client: httpx.AsyncClient) -> FakeVidProvider:
    http = settings.http(client, provider="fakevid", capabilities=FakeVidProvider.capabilities)
    return FakeVidProvider(http, settings.region)


FAKEVID = ProviderSpec("fakevid", "FakeVid", FakeVidSettings, _build_fakevid)


@pytest.fixture
def fakevid_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROVIDERS, FAKEVID.name, FAKEVID)


@pytest.mark.usefixtures("fakevid_registered")
async def test_a_new_provider_works_from_its_own_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read from .env (any case) and the environment, like every setting.
    Path(".env").write_text("sora_provider=fakevid\nfakevid_region=ap\n")
    monkeypatch.setenv("FAKEVID_API_KEY", "fakevid-key-123")
    monkeypatch.setenv("FAKEVID_BASE_URL", "https://user:gw-password@gw.example/fv/")
    settings = load_settings()
    block = settings.provider_settings()
    assert isinstance(block, FakeVidSettings) and block.region == "ap"
    assert block.address == "https://user:gw-password@gw.example/fv"
    assert "fakevid-key-123" in settings.secret_values()
    assert "gw-password" in settings.secret_values()  # the URL's password, for the log filter
    assert block.address in settings.urls()

    async with httpx.AsyncClient() as client:
        provider = build_provider(settings, client)
        assert isinstance(provider, FakeVidProvider) and provider.region == "ap"
        assert provider.http.base_url == "https://user:gw-password@gw.example/fv"
        assert (await provider.submit(REQUEST)).provider_task_id == "ap/task-1"
        # What the protocol's defaults say for a provider that overrides nothing.
        assert provider.same_task("ap/task-1", "ap/task-1")
        assert not provider.accepts_signed_webhooks
        with pytest.raises(InvalidInputError, match="FakeVid can't remix"):
            await provider.remix("ap/task-1", "make it blue")


@pytest.mark.usefixtures("fakevid_registered")
def test_a_new_provider_s_problems_are_configuration_problems(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SORA_PROVIDER", "fakevid")
    monkeypatch.setenv("FAKEVID_BASE_URL", "gw.example")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "- SORA_PROVIDER: 'fakevid' needs FAKEVID_API_KEY to be set" in message
    assert "- FAKEVID_BASE_URL: must start with http:// or https://" in message


# -- what the protocol answers for every provider ---------------------------------------


def test_same_task_is_equality_by_default() -> None:
    demo = DemoProvider()
    assert demo.same_task("demo-1-s-ab", "demo-1-s-ab")
    assert not demo.same_task("demo-1-s-ab", "demo-1-s-ac")
    assert not demo.same_task("", "")


def test_apixo_callbacks_name_the_bare_task_id() -> None:
    apixo: VideoProvider = ApixoProvider(http=None)  # type: ignore[arg-type]
    assert apixo.same_task("sora-2-pro:abc123", "abc123")
    assert apixo.same_task("sora-2:abc123", "sora-2:abc123")
    assert apixo.same_task("abc123", "abc123")
    assert not apixo.same_task("sora-2:abc123", "abc124")
    assert not apixo.same_task("sora-2:abc123", "sora-2")
    assert not apixo.same_task("sora-2:abc123", "")
    assert TaskCap(apixo, 5).same_task("sora-2:abc123", "abc123")  # forwarded by the cap


async def test_remix_is_refused_by_default_and_frees_the_slot() -> None:
    with pytest.raises(InvalidInputError, match="Demo can't remix videos"):
        await DemoProvider().remix("demo-1-s-ab", "make it blue")
    capped = TaskCap(DemoProvider(), 1)
    with pytest.raises(InvalidInputError):
        await capped.remix("demo-1-s-ab", "make it blue")
    assert await capped.active() == 0
    assert not DemoProvider().capabilities.remix


def test_signed_webhooks_are_accepted_only_with_their_secret() -> None:
    http = ProviderHTTP(
        httpx.AsyncClient(), provider="openai", base_url="https://x.example", auth_header=("a", "b")
    )
    assert not OpenAIProvider(http).accepts_signed_webhooks
    signed = OpenAIProvider(http, webhook_secret=WHSEC)
    assert signed.accepts_signed_webhooks
    assert TaskCap(signed, 3).accepts_signed_webhooks
    assert not DemoProvider().accepts_signed_webhooks
