"""UlazAI (ulazai.com/api/v1): `Authorization: Token KEY`, paths ending in `/`.

Two things its docs make easy to get wrong:
- `prompt_directory_optin` defaults to true, which publishes the video in UlazAI's public
  Prompt Directory (for a 10-credit discount). A Discord user's video is theirs, so every
  create sends `false`.
- A failed task's status is `{success: false, error, error_details, credits_refunded}` with
  no `data` key at all (the docs' own sample poller crashes on it); it is read as a failed
  task, not as a broken answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic_settings import SettingsConfigDict

from bot.domain import Aspect, Mode, Quality
from bot.errors import (
    CallbackRejectedError,
    InsufficientCreditsError,
    ProviderRefusedError,
    ProviderUnavailableError,
)
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
from bot.providers.config import ApiProviderSettings, ProviderSpec
from bot.providers.http import ProviderHTTP, error_text, looks_like_content_policy


class UlazAISettings(ApiProviderSettings):
    """ULAZAI_API_KEY, ULAZAI_BASE_URL."""

    model_config = SettingsConfigDict(env_prefix="ULAZAI_")

    base_url: str = "https://ulazai.com/api/v1"


CAPABILITIES = Capabilities(
    modes=frozenset({Mode.TEXT, Mode.IMAGE}),
    aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT, Aspect.SQUARE),
    durations=(10,),
    duration_selectable=False,  # "10-second videos": there is no duration field
    qualities=(Quality.STANDARD, Quality.HIGH),
    max_prompt_length=5_000,  # documented: "Max 5000 characters"
    image_input="url",  # `image_url` must be publicly accessible (JPG, PNG, WebP)
    reports="poll",  # "webhook_url" in the create answer is only the status URL
    result_lifetime=timedelta(days=15),
    max_concurrent_tasks=10,  # 429 "Rate limit exceeded (max 10 concurrent)"
    expected_seconds=120.0,  # "Fast processing (~2-3 minutes)"
    poll_interval_seconds=30.0,  # "Poll the status endpoint every 30 seconds"
)

STATES = {
    "pending": ProviderState.QUEUED,
    "queued": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "running": ProviderState.RUNNING,
    "success": ProviderState.SUCCEEDED,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "failure": ProviderState.FAILED,
    "error": ProviderState.FAILED,
}
IMAGE_WORDS = ("image", "picture", "photo")


def failure_code(message: str) -> FailureCode:
    """UlazAI reports failures in words only: read them."""
    if looks_like_content_policy(message):
        return FailureCode.CONTENT_POLICY
    if any(word in message.lower() for word in IMAGE_WORDS):
        return FailureCode.INVALID_IMAGE
    return FailureCode.PROVIDER_ERROR


def _progress(value: Any) -> int | None:
    try:
        return max(0, min(100, int(float(value))))
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _failed(body: Any) -> bool:
    return isinstance(body, dict) and body.get("success") is False


class UlazAIProvider(ProviderDefaults):
    name = "ulazai"
    display_name = "UlazAI"
    capabilities = CAPABILITIES

    def __init__(self, http: ProviderHTTP) -> None:
        self._http = http

    def _check_create(self, body: Any) -> None:
        """A 2xx create answer: `{success: true, data: {task_id, ...}}`.

        `success: false` under a 2xx is undocumented; the provider said it made nothing,
        so it is a refusal (never retried: this is the paid call)."""
        if not isinstance(body, dict):
            raise ProviderUnavailableError(self.name, "create answer is not a JSON object")
        if _failed(body):
            message = error_text(body) or "the request was refused"
            if "credit" in message.lower():
                raise InsufficientCreditsError(self.name, message)
            raise ProviderRefusedError(
                self.name, message, content_policy=looks_like_content_policy(message)
            )

    def _check_status(self, body: Any) -> None:
        """A 2xx status answer is either a failure (`success: false`, no `data`) or
        `{success: true, data: {status, ...}}`; anything else is malformed and, since a
        status check is free, retried by raising inside the check."""
        if not isinstance(body, dict):
            raise ProviderUnavailableError(self.name, "status answer is not a JSON object")
        if _failed(body):
            return
        data = body.get("data")
        if not isinstance(data, dict) or "status" not in data:
            raise ProviderUnavailableError(self.name, "status answer without data.status")

    async def submit(self, request: GenerationRequest) -> Submission:
        options = request.options
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "aspect_ratio": options.aspect.value,  # landscape | portrait | square, as ours
            "quality": options.quality.value,  # standard | high, as ours
            "prompt_directory_optin": False,  # never publish a user's video
        }
        if request.mode is Mode.IMAGE:
            if request.image is None or request.image.url is None:
                raise ValueError("image-to-video needs an image URL for UlazAI")
            body["image_url"] = request.image.url
            path = "sora/generate/image-to-video/"
        else:
            path = "sora/generate/text-to-video/"
        # 402 -> InsufficientCreditsError, 422 -> ProviderRefusedError(content_policy=True),
        # 429 (10 concurrent tasks) -> retried, then RateLimitedError: all in ProviderHTTP.
        answer = await self._http.request_json(
            "POST", path, paid=True, json_body=body, check=self._check_create
        )
        data = answer.get("data")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise ProviderUnavailableError(self.name, "created a task but sent no task_id")
        return Submission(task_id)

    async def status(self, provider_task_id: str) -> ProviderStatus:
        try:
            answer = await self._http.request_json(
                "GET",
                f"sora/status/{quote(provider_task_id, safe='')}/",
                check=self._check_status,
                unknown_task_id=provider_task_id,
            )
        except ProviderRefusedError as exc:
            # The HTTP status of the failure body is undocumented, and a 4xx body never
            # reaches us, only its words. ProviderHTTP has already taken out what is about
            # our request rather than the task: 401/403 (key), 402 (credits), 404 (unknown
            # task), 408/409/425/429 and 5xx (retried). A GET of a task id the provider gave
            # us carries nothing else to refuse, so the 4xx left (400, 410, 422...) with words
            # is read as the documented failure body: the task failed. A gateway's HTML page
            # or an empty body is not the provider speaking about the task: it stays an error.
            if "HTML page" in exc.detail or exc.detail.endswith("empty body"):
                raise
            message = exc.detail
            code = failure_code(message)
            if code is FailureCode.PROVIDER_ERROR and exc.content_policy:
                code = FailureCode.CONTENT_POLICY  # a 422: UlazAI's content-policy status
            return ProviderStatus(ProviderState.FAILED, failure_code=code, failure_message=message)
        return self._normalise(answer)

    def _normalise(self, body: Mapping[str, Any]) -> ProviderStatus:
        if _failed(body):
            message = error_text(body) or "video generation failed"
            return ProviderStatus(
                ProviderState.FAILED, failure_code=failure_code(message), failure_message=message
            )
        data: Mapping[str, Any] = body["data"]
        state = STATES.get(str(data.get("status", "")).lower())
        if state is None:
            raise ProviderUnavailableError(self.name, f"unknown task status {data.get('status')!r}")
        match state:
            case ProviderState.SUCCEEDED:
                video_url = _text(data.get("video_url"))
                if video_url is None:
                    raise ProviderUnavailableError(self.name, "success without a video_url")
                return ProviderStatus(
                    state,
                    100,
                    video_url=video_url,
                    thumbnail_url=_text(data.get("thumbnail_url")),
                )
            case ProviderState.FAILED:
                # Not documented (failures come without `data`), but read it if it comes.
                message = error_text(data) or error_text(body) or "video generation failed"
                return ProviderStatus(
                    state, failure_code=failure_code(message), failure_message=message
                )
            case ProviderState.QUEUED | ProviderState.RUNNING:
                return ProviderStatus(state, _progress(data.get("progress")))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        raise CallbackRejectedError("UlazAI sends no callbacks (only email notifications)")

    async def media(self, provider_task_id: str, status: ProviderStatus) -> Media:
        if status.video_url is None:
            raise ProviderUnavailableError(self.name, "no video URL for a finished task")
        return Media(url=status.video_url)


def _build(settings: UlazAISettings, client: httpx.AsyncClient) -> UlazAIProvider:
    # UlazAI wants `Authorization: Token KEY`, not Bearer.
    http = settings.http(
        client, provider=UlazAIProvider.name, capabilities=CAPABILITIES, scheme="Token"
    )
    return UlazAIProvider(http)


SPEC = ProviderSpec(UlazAIProvider.name, UlazAIProvider.display_name, UlazAISettings, _build)
