"""Loopback fakes of the Sora 2 providers the bot's adapters talk to.

Each fake is an aiohttp server on 127.0.0.1 speaking one provider's documented shapes
(see /work/shared/providers.md), recording every request, with switchable faults::

    async with FakeApixo() as fake:
        settings = make_settings(..., **fake.settings_overrides())
        fake.inject("rate_limit", retry_after=1)
        ...
        assert fake.requests[-1].json["provider"] == "official"

Prompt markers steer outcomes without touching the fake: ``#fail`` (content policy failure),
``#badimage`` (invalid image failure), ``#error`` (provider error), ``#slow`` (10x duration),
``#refuse`` (refused at create as a content-policy violation).
"""

from .apixo import FakeApixo
from .base import (
    FAULT_KINDS,
    CallbackDelivery,
    FakeProvider,
    FakeTask,
    Fault,
    Outcome,
    ProviderRequest,
    TaskPhase,
    image_size,
    make_jpeg,
    make_png,
    make_webp,
    outcome_for_prompt,
)
from .openai import FakeOpenAI, sign_webhook, webhook_signature
from .sora2api import FakeSora2API
from .soravideo import FakeSoraVideo
from .ulazai import FakeUlazAI

ALL_FAKES: tuple[type[FakeProvider], ...] = (
    FakeApixo,
    FakeSora2API,
    FakeSoraVideo,
    FakeUlazAI,
    FakeOpenAI,
)
FAKES_BY_NAME: dict[str, type[FakeProvider]] = {cls.name: cls for cls in ALL_FAKES}

__all__ = [
    "ALL_FAKES",
    "FAKES_BY_NAME",
    "FAULT_KINDS",
    "CallbackDelivery",
    "FakeApixo",
    "FakeOpenAI",
    "FakeProvider",
    "FakeSora2API",
    "FakeSoraVideo",
    "FakeTask",
    "FakeUlazAI",
    "Fault",
    "Outcome",
    "ProviderRequest",
    "TaskPhase",
    "image_size",
    "make_jpeg",
    "make_png",
    "make_webp",
    "outcome_for_prompt",
    "sign_webhook",
    "webhook_signature",
]
