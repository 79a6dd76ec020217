"""Which adapter serves which `SORA_PROVIDER` name: one dict, one factory each."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bot.providers.apixo import ApixoProvider
from bot.providers.base import Capabilities, VideoProvider
from bot.providers.demo import DemoProvider
from bot.providers.http import ProviderHTTP
from bot.providers.limits import TaskCap
from bot.providers.openai import OpenAIProvider
from bot.providers.sora2api import Sora2ApiProvider
from bot.providers.soravideo import SoraVideoProvider
from bot.providers.ulazai import UlazAIProvider
from bot.settings import ProviderName, Settings

Factory = Callable[[Settings, httpx.AsyncClient], VideoProvider]


def _http(
    settings: Settings,
    client: httpx.AsyncClient,
    name: ProviderName,
    capabilities: Capabilities,
    scheme: str = "Bearer",
) -> ProviderHTTP:
    key = settings.api_key(name)
    base_url = settings.base_url(name)
    if key is None or base_url is None:
        raise ValueError(f"{name.upper()}_API_KEY is not set")
    return ProviderHTTP(
        client,
        provider=name,
        base_url=base_url,
        auth_header=("Authorization", f"{scheme} {key.get_secret_value()}"),
        requests_per_minute=capabilities.max_requests_per_minute,
    )


def _demo(settings: Settings, client: httpx.AsyncClient) -> VideoProvider:
    return DemoProvider(settings.demo_generation_seconds)


def _apixo(settings: Settings, client: httpx.AsyncClient) -> VideoProvider:
    return ApixoProvider(_http(settings, client, "apixo", ApixoProvider.capabilities))


def _sora2api(settings: Settings, client: httpx.AsyncClient) -> VideoProvider:
    return Sora2ApiProvider(_http(settings, client, "sora2api", Sora2ApiProvider.capabilities))


def _soravideo(settings: Settings, client: httpx.AsyncClient) -> VideoProvider:
    return SoraVideoProvider(_http(settings, client, "soravideo", SoraVideoProvider.capabilities))


def _ulazai(settings: Settings, client: httpx.AsyncClient) -> VideoProvider:
    return UlazAIProvider(
        _http(settings, client, "ulazai", UlazAIProvider.capabilities, scheme="Token")
    )


def _openai(settings: Settings, client: httpx.AsyncClient) -> VideoProvider:
    secret = settings.openai_webhook_secret
    return OpenAIProvider(
        _http(settings, client, "openai", OpenAIProvider.capabilities),
        webhook_secret=None if secret is None else secret.get_secret_value(),
    )


PROVIDERS: dict[ProviderName, Factory] = {
    "demo": _demo,
    "apixo": _apixo,
    "sora2api": _sora2api,
    "soravideo": _soravideo,
    "ulazai": _ulazai,
    "openai": _openai,
}


def build_provider(
    settings: Settings, client: httpx.AsyncClient, name: ProviderName | None = None
) -> VideoProvider:
    """The adapter for `name` (default: `SORA_PROVIDER`), behind its documented task cap.

    The cap counts only this process's own recent submits until it is given the store's
    count (`TaskCap.count_active_with`: the bot does, `sora-bot generate` has no store).
    Raises ValueError when the provider's key is not set.
    """
    provider = PROVIDERS[name or settings.sora_provider](settings, client)
    limit = provider.capabilities.max_concurrent_tasks
    return provider if limit is None else TaskCap(provider, limit)
