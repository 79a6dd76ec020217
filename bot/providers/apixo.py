"""APIXO (api.apixo.ai): `{code, message, data}` envelopes, `resultJson` as a JSON string."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from pydantic_settings import SettingsConfigDict

from bot.domain import Aspect, Mode, Quality
from bot.errors import CallbackRejectedError, ProviderUnavailableError
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
    plausible_seconds,
    took_seconds,
)
from bot.providers.config import ApiProviderSettings, ProviderSpec
from bot.providers.http import ProviderHTTP, check_envelope, looks_like_content_policy


class ApixoSettings(ApiProviderSettings):
    """APIXO_API_KEY, APIXO_BASE_URL."""

    model_config = SettingsConfigDict(env_prefix="APIXO_")

    base_url: str = "https://api.apixo.ai/api/v1"


CAPABILITIES = Capabilities(
    modes=frozenset({Mode.TEXT, Mode.IMAGE}),
    aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT),
    durations=(4, 8, 12),
    qualities=(Quality.STANDARD, Quality.HIGH),
    max_prompt_length=5_000,  # 10,000 for sora-2, 5,000 for sora-2-pro: the stricter one
    image_input="url",
    reports="callback",
    result_lifetime=timedelta(days=15),
    max_concurrent_tasks=1_000,
    max_requests_per_minute=10_000,
    expected_seconds=180.0,  # the docs: wait about 180 s, then poll every 10 s
    poll_interval_seconds=10.0,
)

STATES = {
    "pending": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "success": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}
FAIL_CODES = {
    "CONTENT_VIOLATION": FailureCode.CONTENT_POLICY,
    "INVALID_IMAGE_URL": FailureCode.INVALID_IMAGE,
    "INSUFFICIENT_CREDITS": FailureCode.INSUFFICIENT_CREDITS,
}


def _model(quality: Quality) -> str:
    match quality:
        case Quality.STANDARD:
            return "sora-2"
        case Quality.HIGH:
            return "sora-2-pro"


# High quality asks sora-2-pro for its larger output, which is what "high" buys.
PRO_IMAGE_RESOLUTION = "1080p"


def _pro_size(aspect: Aspect) -> str:
    """sora-2-pro text-to-video takes a pixel size `W*H` (720*1280, 1280*720, 1024*1792,
    1792*1024), not an aspect name: the larger pro sizes, in the asked shape."""
    match aspect:
        case Aspect.LANDSCAPE:
            return "1792*1024"
        case Aspect.PORTRAIT:
            return "1024*1792"
        case Aspect.SQUARE:
            raise ValueError("APIXO makes no square videos")


class ApixoProvider(ProviderDefaults):
    name = "apixo"
    display_name = "APIXO"
    capabilities = CAPABILITIES

    def __init__(self, http: ProviderHTTP) -> None:
        self._http = http

    def _check(self, body: Any) -> None:
        check_envelope(self.name, body)

    async def submit(self, request: GenerationRequest) -> Submission:
        options = request.options
        model = _model(options.quality)
        payload: dict[str, Any] = {
            "mode": "image-to-video" if request.mode is Mode.IMAGE else "text-to-video",
            "prompt": request.prompt,
            "duration": options.duration_seconds,
            "remove_watermark": True,
        }
        if model == "sora-2":
            payload["aspect_ratio"] = options.aspect.value
        elif request.mode is Mode.IMAGE:
            # sora-2-pro image-to-video: the picture sets the shape; only the resolution.
            payload["resolution"] = PRO_IMAGE_RESOLUTION
        else:
            payload["size"] = _pro_size(options.aspect)
        if request.mode is Mode.IMAGE:
            if request.image is None or request.image.url is None:
                raise ValueError("image-to-video needs an image URL for APIXO")
            payload["image_urls"] = [request.image.url]
        body: dict[str, Any] = {"request_type": "async", "provider": "official", "input": payload}
        if request.callback_url:
            body["request_type"] = "callback"
            body["callback_url"] = request.callback_url
        answer = await self._http.request_json(
            "POST", f"generateTask/{model}", paid=True, json_body=body, check=self._check
        )
        task_id = (answer.get("data") or {}).get("taskId") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderUnavailableError(self.name, "created a task but sent no taskId")
        return Submission(f"{model}:{task_id}")

    async def status(self, provider_task_id: str) -> ProviderStatus:
        model, _, task_id = provider_task_id.rpartition(":")
        answer = await self._http.request_json(
            "GET",
            f"statusTask/{model or 'sora-2'}",
            params={"taskId": task_id},
            check=self._check,
            unknown_task_id=provider_task_id,
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ProviderUnavailableError(self.name, "status answer without data")
        return self._normalise(data)

    def _normalise(
        self, data: Mapping[str, Any], provider_task_id: str | None = None
    ) -> ProviderStatus:
        state = STATES.get(str(data.get("state", "")).lower())
        if state is None:
            raise ProviderUnavailableError(self.name, f"unknown state {data.get('state')!r}")
        match state:
            case ProviderState.SUCCEEDED:
                urls = _result_urls(data.get("resultJson"))
                if not urls:
                    raise ProviderUnavailableError(self.name, "success without a result URL")
                return ProviderStatus(
                    state,
                    100,
                    video_url=urls[0],
                    provider_task_id=provider_task_id,
                    generation_seconds=_generation_seconds(data),
                )
            case ProviderState.FAILED:
                raw = str(data.get("failCode") or "")
                message = str(data.get("failMsg") or raw or "generation failed")
                code = FAIL_CODES.get(raw.upper())
                if code is None:
                    code = (
                        FailureCode.CONTENT_POLICY
                        if looks_like_content_policy(message)
                        else FailureCode.PROVIDER_ERROR
                    )
                return ProviderStatus(
                    state,
                    failure_code=code,
                    failure_message=message,
                    provider_task_id=provider_task_id,
                    generation_seconds=_generation_seconds(data),
                )
            case ProviderState.QUEUED | ProviderState.RUNNING:
                return ProviderStatus(state, None, provider_task_id=provider_task_id)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        """APIXO POSTs the status body itself; the per-task URL token authenticates it."""
        try:
            payload = json.loads(body)
        except ValueError:
            raise CallbackRejectedError("callback body is not JSON") from None
        data = payload.get("data", payload) if isinstance(payload, dict) else None
        if not isinstance(data, dict) or not data.get("taskId"):
            raise CallbackRejectedError("callback without a taskId")
        try:
            return self._normalise(data, provider_task_id=str(data["taskId"]))
        except ProviderUnavailableError as exc:
            raise CallbackRejectedError(str(exc)) from None

    def same_task(self, stored_id: str, reported_id: str) -> bool:
        """Ids are stored as `model:taskId` (the status path needs the model); callbacks
        name the bare `taskId`."""
        if not stored_id or not reported_id:
            return False
        return stored_id == reported_id or stored_id.rsplit(":", 1)[-1] == reported_id

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        if status.video_url is None:
            raise ProviderUnavailableError(self.name, "no video URL for a finished task")
        return Media(url=status.video_url)


def _build(settings: ApixoSettings, client: httpx.AsyncClient) -> ApixoProvider:
    return ApixoProvider(
        settings.http(client, provider=ApixoProvider.name, capabilities=CAPABILITIES)
    )


SPEC = ProviderSpec(ApixoProvider.name, ApixoProvider.display_name, ApixoSettings, _build)


def _result_urls(raw: Any) -> list[str]:
    """`resultJson` is documented as a JSON string; accept an object too."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    if isinstance(raw, dict):
        urls = raw.get("resultUrls") or raw.get("result_urls") or []
        return [u for u in urls if isinstance(u, str) and u]
    return []


def _generation_seconds(data: Mapping[str, Any]) -> float | None:
    """APIXO's own `costTime` when it is a plausible duration, else `completeTime -
    createTime` (all in ms)."""
    cost = plausible_seconds(epoch_seconds(data.get("costTime"), 1000))
    if cost is not None:
        return cost
    return took_seconds(
        epoch_seconds(data.get("createTime"), 1000), epoch_seconds(data.get("completeTime"), 1000)
    )
