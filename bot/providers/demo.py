"""The demo provider: no network, no key, the full lifecycle, a real (tiny) MP4.

Stateless on purpose: the task id carries its start time and outcome, so a bot that
restarts mid-generation still follows its demo tasks to the end.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from importlib import resources

import httpx
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bot.domain import Aspect, Mode, Quality
from bot.errors import CallbackRejectedError, UnknownProviderTaskError
from bot.providers.base import (
    Capabilities,
    FailureCode,
    GenerationRequest,
    Media,
    ProviderDefaults,
    ProviderState,
    ProviderStatus,
    Submission,
)
from bot.providers.config import ProviderSettings, ProviderSpec

FAIL_MARKER = "#fail"


class DemoSettings(ProviderSettings):
    """DEMO_GENERATION_SECONDS: how long a demo video takes to "generate". No key."""

    model_config = SettingsConfigDict(env_prefix="DEMO_")

    generation_seconds: float = Field(default=20.0, gt=0, le=3600)


def demo_video() -> bytes:
    return resources.files("bot.providers").joinpath("assets/demo.mp4").read_bytes()


class DemoProvider(ProviderDefaults):
    name = "demo"
    display_name = "Demo"

    def __init__(
        self, generation_seconds: float = 20.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._seconds = generation_seconds
        self._clock = clock
        self.capabilities = Capabilities(
            modes=frozenset({Mode.TEXT, Mode.IMAGE}),
            aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT, Aspect.SQUARE),
            durations=(4, 8, 12),
            qualities=(Quality.STANDARD, Quality.HIGH),
            max_prompt_length=5_000,
            image_input="upload",
            result_lifetime=None,
            expected_seconds=generation_seconds,
            poll_interval_seconds=max(0.2, generation_seconds / 10),
        )

    async def submit(self, request: GenerationRequest) -> Submission:
        outcome = "f" if FAIL_MARKER in request.prompt.lower() else "s"
        started_ms = int(self._clock() * 1000)
        return Submission(f"demo-{started_ms}-{outcome}-{secrets.token_hex(4)}")

    async def status(self, provider_task_id: str) -> ProviderStatus:
        try:
            _, started_ms, outcome, _ = provider_task_id.split("-")
            started = int(started_ms) / 1000
        except ValueError:
            raise UnknownProviderTaskError(self.name, provider_task_id) from None
        elapsed = self._clock() - started
        if elapsed < self._seconds * 0.1:
            return ProviderStatus(ProviderState.QUEUED, 0)
        if elapsed < self._seconds:
            return ProviderStatus(
                ProviderState.RUNNING, min(99, int(100 * elapsed / self._seconds))
            )
        if outcome == "f":
            return ProviderStatus(
                ProviderState.FAILED,
                failure_code=FailureCode.CONTENT_POLICY,
                failure_message="The demo refuses prompts containing #fail.",
            )
        return ProviderStatus(ProviderState.SUCCEEDED, 100)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise CallbackRejectedError("the demo provider sends no callbacks")

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        return Media(data=demo_video())


def _build(settings: DemoSettings, client: httpx.AsyncClient) -> DemoProvider:
    return DemoProvider(settings.generation_seconds)


SPEC = ProviderSpec(DemoProvider.name, DemoProvider.display_name, DemoSettings, _build)
