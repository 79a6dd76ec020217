"""soravideo.art (soravideo.art/api/v1): `{code, msg, data}` envelopes, images uploaded first.

Success is `{code: 200, msg, data}` and an error `{code, msg, error}`; the docs' own clients
test `code` and never the HTTP status, so the body's `code` is read whatever the status.
Standard quality is `/sora2/...`, high quality `/sora2-pro/...`. The service has no
callbacks: tasks are polled at `GET /tasks/{id}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic_settings import SettingsConfigDict

from bot.domain import Aspect, Mode, Quality
from bot.errors import CallbackRejectedError, ProviderUnavailableError
from bot.providers.base import (
    Capabilities,
    FailureCode,
    GenerationRequest,
    ImageInput,
    Media,
    ProviderDefaults,
    ProviderState,
    ProviderStatus,
    Submission,
    iso_instant,
    took_between,
)
from bot.providers.config import ApiProviderSettings, ProviderSpec
from bot.providers.http import (
    ProviderHTTP,
    check_envelope,
    error_text,
    looks_like_content_policy,
)


class SoraVideoSettings(ApiProviderSettings):
    """SORAVIDEO_API_KEY, SORAVIDEO_BASE_URL."""

    model_config = SettingsConfigDict(env_prefix="SORAVIDEO_")

    base_url: str = "https://soravideo.art/api/v1"


CAPABILITIES = Capabilities(
    modes=frozenset({Mode.TEXT, Mode.IMAGE}),
    aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT, Aspect.SQUARE),
    durations=(5, 10, 15),
    qualities=(Quality.STANDARD, Quality.HIGH),
    max_prompt_length=5_000,  # the docs are silent: the Sora 2 limit the other resellers state
    image_input="upload",  # `POST /upload` first, then `imageUrl` is the URL it returns
    reports="poll",  # no callback field is documented
    result_lifetime=timedelta(days=15),
    max_image_bytes=10 * 1024 * 1024,  # `/upload` takes JPG/PNG/WebP/GIF up to 10 MB
    expected_seconds=120.0,  # a video takes about 120-180 s: first look at the short end
    poll_interval_seconds=10.0,  # the samples poll every 3 s; 10 s is kinder and enough
)

ASPECTS = {Aspect.LANDSCAPE: "16:9", Aspect.PORTRAIT: "9:16", Aspect.SQUARE: "1:1"}
STATES = {
    "pending": ProviderState.QUEUED,
    "queued": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "running": ProviderState.RUNNING,
    "completed": ProviderState.SUCCEEDED,
    "success": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "error": ProviderState.FAILED,
}
IMAGE_WORDS = ("image", "picture", "photo")


def _model(quality: Quality) -> str:
    match quality:
        case Quality.STANDARD:
            return "sora2"
        case Quality.HIGH:
            return "sora2-pro"


def _progress(value: Any) -> int | None:
    try:
        return max(0, min(100, int(float(value))))
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _generation_seconds(data: Mapping[str, Any]) -> float | None:
    """`completed_at - created_at` (ISO-8601, UTC) by the provider's clock."""
    return took_between(iso_instant(data.get("created_at")), iso_instant(data.get("completed_at")))


def failure_code(message: str) -> FailureCode:
    if looks_like_content_policy(message):
        return FailureCode.CONTENT_POLICY
    if any(word in message.lower() for word in IMAGE_WORDS):
        return FailureCode.INVALID_IMAGE
    if "credit" in message.lower():
        return FailureCode.INSUFFICIENT_CREDITS
    return FailureCode.PROVIDER_ERROR


class SoraVideoProvider(ProviderDefaults):
    name = "soravideo"
    display_name = "soravideo.art"
    capabilities = CAPABILITIES

    def __init__(self, http: ProviderHTTP) -> None:
        self._http = http

    def _check(self, body: Any, unknown_task_id: str | None = None) -> None:
        check_envelope(self.name, body, unknown_task_id=unknown_task_id)

    def _check_with_data(self, body: Any, unknown_task_id: str | None = None) -> None:
        """An envelope that must carry a `data` object; inside the check, so that a
        garbled answer to a free call is retried like any malformed body."""
        self._check(body, unknown_task_id)
        if not isinstance(body.get("data"), dict):
            raise ProviderUnavailableError(self.name, "answer without a data object")

    def _check_upload(self, body: Any) -> None:
        self._check_with_data(body)
        if _text(body["data"].get("url")) is None:
            raise ProviderUnavailableError(self.name, "upload answer without a URL")

    async def _upload(self, image: ImageInput) -> str:
        """Upload the image (free, so retried like a status check) and return its URL."""
        answer = await self._http.request_json(
            "POST",
            "upload",
            files={"file": (f"image.{image.extension}", image.data, image.content_type)},
            check=self._check_upload,
        )
        url: str = answer["data"]["url"]
        return url

    async def submit(self, request: GenerationRequest) -> Submission:
        options = request.options
        model = _model(options.quality)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "aspectRatio": ASPECTS[options.aspect],
            "duration": options.duration_seconds,
            "quality": options.quality.value,
        }
        if request.mode is Mode.IMAGE:
            if request.image is None:
                raise ValueError("image-to-video needs an image for soravideo.art")
            body["imageUrl"] = await self._upload(request.image)
            path = f"{model}/image-to-video"
        else:
            path = f"{model}/text-to-video"
        answer = await self._http.request_json(
            "POST", path, paid=True, json_body=body, check=self._check
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise ProviderUnavailableError(self.name, "created a task but sent no task_id")
        return Submission(task_id)

    async def status(self, provider_task_id: str) -> ProviderStatus:
        answer = await self._http.request_json(
            "GET",
            f"tasks/{quote(provider_task_id, safe='')}",
            check=lambda body: self._check_with_data(body, provider_task_id),
            unknown_task_id=provider_task_id,
        )
        return self._normalise(answer["data"])

    def _normalise(self, data: Mapping[str, Any]) -> ProviderStatus:
        raw = str(data.get("status", "")).lower()
        state = STATES.get(raw)
        if state is None:
            raise ProviderUnavailableError(self.name, f"unknown task status {data.get('status')!r}")
        match state:
            case ProviderState.SUCCEEDED:
                video_url = _text(data.get("video_url"))
                if video_url is None:
                    raise ProviderUnavailableError(self.name, "completed without a video_url")
                return ProviderStatus(
                    state,
                    100,
                    video_url=video_url,
                    thumbnail_url=_text(data.get("thumbnail_url")),
                    generation_seconds=_generation_seconds(data),
                )
            case ProviderState.FAILED:
                message = error_text(data) or "video generation failed"
                return ProviderStatus(
                    state,
                    failure_code=failure_code(message),
                    failure_message=message,
                    generation_seconds=_generation_seconds(data),
                )
            case ProviderState.QUEUED | ProviderState.RUNNING:
                return ProviderStatus(state, _progress(data.get("progress")))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise CallbackRejectedError("soravideo.art sends no callbacks")

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        if status.video_url is None:
            raise ProviderUnavailableError(self.name, "no video URL for a finished task")
        return Media(url=status.video_url)


def _build(settings: SoraVideoSettings, client: httpx.AsyncClient) -> SoraVideoProvider:
    return SoraVideoProvider(
        settings.http(client, provider=SoraVideoProvider.name, capabilities=CAPABILITIES)
    )


SPEC = ProviderSpec(
    SoraVideoProvider.name, SoraVideoProvider.display_name, SoraVideoSettings, _build
)
