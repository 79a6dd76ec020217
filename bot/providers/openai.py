"""OpenAI-compatible Videos API (`/v1/videos`), as the openai SDK's `resources/videos.py`.

OpenAI shut its own Sora API down on 2026-09-24; gateways that copy the shape remain, so
this adapter takes any base URL. The finished video is not public: it is downloaded
with the key from `/videos/{id}/content`. Webhooks are project-level Standard Webhooks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bot.domain import Aspect, Mode, Quality
from bot.errors import CallbackRejectedError, DuplicateCallbackError, ProviderUnavailableError
from bot.images import fit_image_in_thread
from bot.providers.base import (
    Capabilities,
    FailureCode,
    GenerationRequest,
    Media,
    ProviderDefaults,
    ProviderState,
    ProviderStatus,
    Submission,
    epoch_seconds,
    took_seconds,
)
from bot.providers.config import ApiProviderSettings, ProviderSpec
from bot.providers.http import ProviderHTTP, looks_like_content_policy


class OpenAISettings(ApiProviderSettings):
    """OPENAI_API_KEY, OPENAI_BASE_URL, and OPENAI_WEBHOOK_SECRET: the whsec_ signing
    secret of the gateway's webhooks, if it sends any."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_")

    base_url: str = "https://api.openai.com/v1"
    webhook_secret: SecretStr | None = None

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked here, not when the adapter is built, so a pasted-wrong secret is one
        readable line at start (exit 2) rather than a traceback."""
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw.startswith("whsec_"):
            raise ValueError("must start with whsec_ (copy it from the OpenAI dashboard)")
        try:
            key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not a valid whsec_ secret (base64 after the prefix)") from None
        if not key:
            raise ValueError("is not a valid whsec_ secret (nothing after the prefix)")
        return SecretStr(raw)

    def secret_values(self) -> list[str]:
        """The webhook secret's key part too: it is what a log line would show decoded."""
        values = super().secret_values()
        if self.webhook_secret is not None:
            values.append(self.webhook_secret.get_secret_value().removeprefix("whsec_"))
        return values


CAPABILITIES = Capabilities(
    modes=frozenset({Mode.TEXT, Mode.IMAGE}),
    aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT),
    durations=(4, 8, 12),
    qualities=(Quality.STANDARD, Quality.HIGH),
    max_prompt_length=5_000,  # undocumented upstream; gateways commonly cap here
    image_input="upload",
    reports="webhook",  # project-level webhooks, when the gateway is configured to send them
    result_lifetime=timedelta(hours=1),  # expires_at: about an hour after completion
    remix=True,
    expected_seconds=90.0,
    poll_interval_seconds=5.0,
)

STATES = {
    "queued": ProviderState.QUEUED,
    "in_progress": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}
WEBHOOK_TOLERANCE_SECONDS = 300
SEEN_WEBHOOKS = 10_000


def _model(quality: Quality) -> str:
    match quality:
        case Quality.STANDARD:
            return "sora-2"
        case Quality.HIGH:
            return "sora-2-pro"


def _size(aspect: Aspect) -> tuple[int, int]:
    match aspect:
        case Aspect.LANDSCAPE:
            return 1280, 720
        case Aspect.PORTRAIT:
            return 720, 1280
        case Aspect.SQUARE:
            raise ValueError("square is not offered by the Videos API")


def _failure(error: Any) -> tuple[FailureCode, str]:
    if not isinstance(error, dict):
        return FailureCode.PROVIDER_ERROR, "generation failed"
    code = str(error.get("code") or "")
    message = str(error.get("message") or code or "generation failed")
    if code == "moderation_blocked" or looks_like_content_policy(f"{code} {message}"):
        return FailureCode.CONTENT_POLICY, message
    if "image" in code or "input_reference" in message:
        return FailureCode.INVALID_IMAGE, message
    if code in ("insufficient_quota", "billing_hard_limit_reached"):
        return FailureCode.INSUFFICIENT_CREDITS, message
    return FailureCode.PROVIDER_ERROR, message


def _generation_seconds(video: Mapping[str, Any]) -> float | None:
    """How long the video took by the provider's clock: `completed_at - created_at`."""
    return took_seconds(
        epoch_seconds(video.get("created_at")), epoch_seconds(video.get("completed_at"))
    )


class OpenAIProvider(ProviderDefaults):
    name = "openai"
    display_name = "OpenAI-compatible Videos API"
    capabilities = CAPABILITIES

    def __init__(
        self,
        http: ProviderHTTP,
        *,
        webhook_secret: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._webhook_key = _webhook_key(webhook_secret) if webhook_secret else None
        self._clock = clock
        self._seen_webhooks: OrderedDict[str, None] = OrderedDict()

    @property
    def accepts_signed_webhooks(self) -> bool:
        return self._webhook_key is not None

    async def submit(self, request: GenerationRequest) -> Submission:
        width, height = _size(request.options.aspect)
        fields = {
            "model": _model(request.options.quality),
            "prompt": request.prompt,
            "seconds": str(request.options.duration_seconds),
            "size": f"{width}x{height}",
        }
        if request.mode is Mode.IMAGE:
            if request.image is None:
                raise ValueError("image-to-video needs an image")
            # The reference must be exactly the video's pixel size. Decoding and resizing
            # take up to a second: in a worker thread, never on the event loop.
            picture = await fit_image_in_thread(request.image.data, width, height)
            answer = await self._http.request_json(
                "POST",
                "videos",
                paid=True,
                data=fields,
                files={"input_reference": ("reference.png", picture, "image/png")},
            )
        else:
            answer = await self._http.request_json("POST", "videos", paid=True, json_body=fields)
        status = self._normalise(answer)
        video_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(video_id, str) or not video_id:
            raise ProviderUnavailableError(self.name, "created a video but sent no id")
        return Submission(video_id, status)

    async def remix(self, provider_task_id: str, prompt: str) -> Submission:
        answer = await self._http.request_json(
            "POST",
            f"videos/{provider_task_id}/remix",
            paid=True,
            json_body={"prompt": prompt},
            unknown_task_id=provider_task_id,
        )
        status = self._normalise(answer)
        video_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(video_id, str) or not video_id:
            raise ProviderUnavailableError(self.name, "remixed a video but sent no id")
        return Submission(video_id, status)

    async def status(self, provider_task_id: str) -> ProviderStatus:
        answer = await self._http.request_json(
            "GET", f"videos/{provider_task_id}", unknown_task_id=provider_task_id
        )
        return self._normalise(answer)

    def _normalise(self, video: Any, task_id: str | None = None) -> ProviderStatus:
        if not isinstance(video, dict):
            raise ProviderUnavailableError(self.name, "video answer is not an object")
        state = STATES.get(str(video.get("status", "")))
        if state is None:
            raise ProviderUnavailableError(self.name, f"unknown status {video.get('status')!r}")
        progress = video.get("progress")
        percent = int(progress) if isinstance(progress, int | float) else None
        match state:
            case ProviderState.FAILED:
                code, message = _failure(video.get("error"))
                return ProviderStatus(
                    state,
                    failure_code=code,
                    failure_message=message,
                    provider_task_id=task_id,
                    generation_seconds=_generation_seconds(video),
                )
            case ProviderState.SUCCEEDED:
                return ProviderStatus(
                    state,
                    100,
                    provider_task_id=task_id,
                    generation_seconds=_generation_seconds(video),
                )
            case ProviderState.QUEUED | ProviderState.RUNNING:
                return ProviderStatus(state, percent, provider_task_id=task_id)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        """Verify a Standard Webhooks signature, reject stale or replayed events."""
        if self._webhook_key is None:
            raise CallbackRejectedError("OPENAI_WEBHOOK_SECRET is not set")
        lowered = {k.lower(): v for k, v in headers.items()}
        msg_id = lowered.get("webhook-id", "")
        stamp = lowered.get("webhook-timestamp", "")
        signatures = lowered.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            raise CallbackRejectedError("missing webhook signature headers")
        try:
            sent_at = int(stamp)
        except ValueError:
            raise CallbackRejectedError("bad webhook timestamp") from None
        if abs(self._clock() - sent_at) > WEBHOOK_TOLERANCE_SECONDS:
            raise CallbackRejectedError("stale webhook timestamp")
        signed = f"{msg_id}.{stamp}.".encode() + body
        expected = base64.b64encode(
            hmac.new(self._webhook_key, signed, hashlib.sha256).digest()
        ).decode()
        offered = [part.split(",", 1)[1] for part in signatures.split() if part.startswith("v1,")]
        if not any(hmac.compare_digest(expected, sig) for sig in offered):
            raise CallbackRejectedError("webhook signature does not match")
        if msg_id in self._seen_webhooks:
            raise DuplicateCallbackError(f"webhook {msg_id} already processed")
        try:
            event = json.loads(body)
        except ValueError:
            raise CallbackRejectedError("webhook body is not JSON") from None
        data = event.get("data") if isinstance(event, dict) else None
        video_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(video_id, str) or not video_id:
            raise CallbackRejectedError("webhook without a video id")
        match event.get("type"):
            case "video.completed":
                status = ProviderStatus(ProviderState.SUCCEEDED, 100, provider_task_id=video_id)
            case "video.failed":
                # The event carries no reason; the tracker fetches the video for it.
                status = ProviderStatus(
                    ProviderState.FAILED,
                    failure_code=FailureCode.PROVIDER_ERROR,
                    failure_message="the provider reported the video failed",
                    provider_task_id=video_id,
                )
            case other:
                raise CallbackRejectedError(f"unhandled webhook type {other!r}")
        self._seen_webhooks[msg_id] = None
        while len(self._seen_webhooks) > SEEN_WEBHOOKS:
            self._seen_webhooks.popitem(last=False)
        return status

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        """The video, streamed to a temporary file (the caller owns it): a whole video
        in memory per delivery would not stay bounded, and a stalled download has a
        deadline (`ProviderHTTP.request_file`)."""
        spooled = await self._http.request_file(
            f"videos/{provider_task_id}/content", params={"variant": "video"}
        )
        if spooled.size == 0:
            await asyncio.to_thread(spooled.discard)
            raise ProviderUnavailableError(self.name, "empty video download")
        return Media(path=spooled.path, content_type=spooled.content_type or "video/mp4")


def _webhook_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"))
    except (binascii.Error, ValueError):
        raise ValueError("OPENAI_WEBHOOK_SECRET is not a valid whsec_ secret") from None


def _build(settings: OpenAISettings, client: httpx.AsyncClient) -> OpenAIProvider:
    secret = settings.webhook_secret
    return OpenAIProvider(
        settings.http(client, provider=OpenAIProvider.name, capabilities=CAPABILITIES),
        webhook_secret=None if secret is None else secret.get_secret_value(),
    )


SPEC = ProviderSpec(OpenAIProvider.name, OpenAIProvider.display_name, OpenAISettings, _build)
