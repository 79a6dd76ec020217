"""Sora2API (api.sora2api.ai): `{code, msg, data}` envelopes, `successFlag` 0-3.

Its docs leave open whether the HTTP status mirrors the envelope `code`, so the body's
`code` is read whatever the status; and the video URL is in `response.imageUrl`.
"""

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
    iso_instant,
    took_between,
)
from bot.providers.config import ApiProviderSettings, ProviderSpec
from bot.providers.http import ProviderHTTP, check_envelope, error_text, looks_like_content_policy


class Sora2ApiSettings(ApiProviderSettings):
    """SORA2API_API_KEY, SORA2API_BASE_URL."""

    model_config = SettingsConfigDict(env_prefix="SORA2API_")

    base_url: str = "https://api.sora2api.ai/api/v1/sora2"


CAPABILITIES = Capabilities(
    modes=frozenset({Mode.TEXT, Mode.IMAGE}),
    aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT),
    durations=(10,),
    duration_selectable=False,  # no duration field is documented
    qualities=(Quality.STANDARD, Quality.HIGH),
    max_prompt_length=5_000,  # undocumented: the Sora 2 limit the other resellers state
    image_input="url",
    reports="callback",
    result_lifetime=timedelta(days=15),
    expected_seconds=150.0,
    poll_interval_seconds=10.0,  # the sample code polls every 30 s; callbacks are preferred
)


def _quality(quality: Quality) -> str:
    match quality:
        case Quality.STANDARD:
            return "standard"
        case Quality.HIGH:
            return "hd"


def _failure_code(message: str, error_code: Any) -> FailureCode:
    text = f"{message} {error_code or ''}".lower()
    if looks_like_content_policy(text):
        return FailureCode.CONTENT_POLICY
    if "image" in text:
        return FailureCode.INVALID_IMAGE
    if "credit" in text or "balance" in text or str(error_code) == "402":
        return FailureCode.INSUFFICIENT_CREDITS
    return FailureCode.PROVIDER_ERROR


class Sora2ApiProvider(ProviderDefaults):
    name = "sora2api"
    display_name = "Sora2API"
    capabilities = CAPABILITIES

    def __init__(self, http: ProviderHTTP) -> None:
        self._http = http

    def _check(self, body: Any) -> None:
        check_envelope(self.name, body)

    async def submit(self, request: GenerationRequest) -> Submission:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "aspectRatio": request.options.aspect.value,
            "quality": _quality(request.options.quality),
        }
        if request.mode is Mode.IMAGE:
            if request.image is None or request.image.url is None:
                raise ValueError("image-to-video needs an image URL for Sora2API")
            body["imageUrls"] = [request.image.url]
        if request.callback_url:
            body["callBackUrl"] = request.callback_url
        answer = await self._http.request_json(
            "POST", "generate", paid=True, json_body=body, check=self._check
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderUnavailableError(self.name, "created a task but sent no taskId")
        return Submission(task_id)

    async def status(self, provider_task_id: str) -> ProviderStatus:
        answer = await self._http.request_json(
            "GET",
            "record-info",
            params={"taskId": provider_task_id},
            check=self._check,
            unknown_task_id=provider_task_id,
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ProviderUnavailableError(self.name, "status answer without data")
        return self._from_record(data)

    def _from_record(self, data: Mapping[str, Any], task_id: str | None = None) -> ProviderStatus:
        try:
            flag = int(data.get("successFlag"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ProviderUnavailableError(
                self.name, f"odd successFlag {data.get('successFlag')!r}"
            ) from None
        match flag:
            case 0:
                return ProviderStatus(ProviderState.RUNNING, None, provider_task_id=task_id)
            case 1:
                urls = _video_urls(data.get("response"))
                if not urls:
                    raise ProviderUnavailableError(self.name, "success without a video URL")
                return ProviderStatus(
                    ProviderState.SUCCEEDED,
                    100,
                    video_url=urls[0],
                    provider_task_id=task_id,
                    generation_seconds=_generation_seconds(data),
                )
            case 2 | 3:
                what = "could not be created" if flag == 2 else "generation failed"
                message = str(data.get("errorMessage") or what)
                return ProviderStatus(
                    ProviderState.FAILED,
                    failure_code=_failure_code(message, data.get("errorCode")),
                    failure_message=message,
                    provider_task_id=task_id,
                    generation_seconds=_generation_seconds(data),
                )
            case _:
                raise ProviderUnavailableError(self.name, f"unknown successFlag {flag}")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        """Accept both documented shapes: record-info fields, or `taskId` + `resultUrls`,
        each either bare or inside a `{code, msg, data}` envelope."""
        try:
            payload = json.loads(body)
        except ValueError:
            raise CallbackRejectedError("callback body is not JSON") from None
        if not isinstance(payload, dict):
            raise CallbackRejectedError("callback body is not an object")
        inner = payload.get("data")
        data: dict[str, Any] = inner if isinstance(inner, dict) else payload
        task_id = data.get("taskId") or data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise CallbackRejectedError("callback without a taskId")
        try:
            if "successFlag" in data:
                return self._from_record(data, task_id)
        except ProviderUnavailableError as exc:
            raise CallbackRejectedError(str(exc)) from None
        code = payload.get("code", 200)
        urls = _video_urls(data)
        if str(code) == "200" and urls:
            return ProviderStatus(
                ProviderState.SUCCEEDED,
                100,
                video_url=urls[0],
                provider_task_id=task_id,
                generation_seconds=_generation_seconds(data),
            )
        if str(code) != "200":
            message = error_text(payload) or error_text(data) or f"code {code}"
            return ProviderStatus(
                ProviderState.FAILED,
                failure_code=_failure_code(message, code),
                failure_message=message,
                provider_task_id=task_id,
                generation_seconds=_generation_seconds(data),
            )
        raise CallbackRejectedError("callback says neither success nor failure")

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        if status.video_url is None:
            raise ProviderUnavailableError(self.name, "no video URL for a finished task")
        return Media(url=status.video_url)


def _build(settings: Sora2ApiSettings, client: httpx.AsyncClient) -> Sora2ApiProvider:
    return Sora2ApiProvider(
        settings.http(client, provider=Sora2ApiProvider.name, capabilities=CAPABILITIES)
    )


SPEC = ProviderSpec(Sora2ApiProvider.name, Sora2ApiProvider.display_name, Sora2ApiSettings, _build)


def _video_urls(raw: Any) -> list[str]:
    """`response.imageUrl` (the video, despite its name), or `resultUrls` as a list or JSON."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    if not isinstance(raw, dict):
        return []
    for key in ("imageUrl", "videoUrl", "video_url"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return [value]
    urls = raw.get("resultUrls") or raw.get("imageUrls") or []
    if isinstance(urls, str):
        try:
            urls = json.loads(urls)
        except ValueError:
            urls = [urls]
    return [u for u in urls if isinstance(u, str) and u] if isinstance(urls, list) else []


def _generation_seconds(data: Mapping[str, Any]) -> float | None:
    """`completeTime - createTime`, documented as "YYYY-MM-DD HH:MM:SS" with no zone: both
    read as given, on the provider's own clock."""
    return took_between(iso_instant(data.get("createTime")), iso_instant(data.get("completeTime")))
