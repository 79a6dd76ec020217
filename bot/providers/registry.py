"""Which adapter serves which `SORA_PROVIDER` name: one line per provider.

Each adapter module exports its `SPEC` (`bot.providers.config.ProviderSpec`): its name,
its own settings class and how to build it. Adding a provider is a new module with its
`SPEC` and one line here; the bot's settings, service, tracker and listener learn about
it from the spec and the adapter's `Capabilities`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from bot.providers import apixo, demo, openai, sora2api, soravideo, ulazai
from bot.providers.base import VideoProvider
from bot.providers.config import ProviderSpec
from bot.providers.limits import TaskCap

if TYPE_CHECKING:  # bot.settings reads this registry; nothing here needs it at run time
    from bot.settings import Settings

PROVIDERS: dict[str, ProviderSpec[Any]] = {
    spec.name: spec
    for spec in (
        demo.SPEC,
        apixo.SPEC,
        sora2api.SPEC,
        soravideo.SPEC,
        ulazai.SPEC,
        openai.SPEC,
    )
}

# SORA_PROVIDER when it is not set: needs no key, so the whole bot can be tried for free.
DEFAULT_PROVIDER = demo.SPEC.name


def provider_names(value: str) -> tuple[str, ...]:
    """`apixo, sora2api,apixo` -> ("apixo", "sora2api"): in order, once each."""
    return tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))


def build_provider(
    settings: Settings, client: httpx.AsyncClient, name: str | None = None
) -> VideoProvider:
    """The adapter for `name` (default: `SORA_PROVIDER`), built from its own settings,
    behind its documented task cap.

    The cap counts only this process's own recent submits until it is given the store's
    count (`TaskCap.count_active_with`: the bot does, `sora-bot generate` has no store).
    Raises ValueError when the provider's key is not set.
    """
    name = name or settings.sora_providers[0]
    provider = PROVIDERS[name].build(settings.provider_settings(name), client)
    limit = provider.capabilities.max_concurrent_tasks
    return provider if limit is None else TaskCap(provider, limit)


def build_providers(
    settings: Settings, client: httpx.AsyncClient, names: str | None = None
) -> list[VideoProvider]:
    """Every provider `names` lists (a name or a comma list; default `SORA_PROVIDER`),
    in order (`bot.providers.pool.ProviderPool` takes them)."""
    chosen = provider_names(names) if names else settings.sora_providers
    return [build_provider(settings, client, name) for name in chosen]
