"""Fake UlazAI (https://ulazai.com/api/v1), ``Authorization: Token KEY`` (Bearer is refused).

Paths end in ``/`` (a path without the slash is a 404, as in Django without APPEND_SLASH).
``POST /sora/generate/text-to-video/`` and ``/sora/generate/image-to-video/`` -> 201
``{success: true, data: {task_id, status, estimated_completion, credits_charged,
credits_remaining, webhook_url, message}}``. ``GET /sora/status/{task_id}/``:
processing ``{success: true, data: {task_id, status: "processing", progress,
estimated_completion}}``; success ``{success: true, data: {task_id, status: "success",
video_url, thumbnail_url, duration, resolution, file_size, created_at}}``; failure (HTTP 200)
``{success: false, error, error_details, credits_refunded}`` with NO ``data`` key.
Errors ``{success: false, error, error_details?}``: 400, 401, 402, 404, 422 (content policy),
429 (more than ``max_concurrent`` unfinished tasks), 500. No callbacks.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from .base import (
    JSON,
    FakeProvider,
    FakeTask,
    ProviderRequest,
    Reply,
    Route,
    is_http_url,
    iso_utc,
)

__all__ = ["FakeUlazAI"]

ASPECT_RATIOS = ("landscape", "portrait", "square")
QUALITIES = ("standard", "high")
RESOLUTIONS = {"landscape": "1920x1080", "portrait": "1080x1920", "square": "1080x1080"}
PROMPT_LIMIT = 5000

FAIL_DETAILS = {
    "content_policy": "Content policy violation detected in prompt",
    "invalid_image": "The source image could not be downloaded or processed",
    "provider_error": "Internal error during video generation",
}


class FakeUlazAI(FakeProvider):
    name = "ulazai"
    prefix = "/api/v1"
    task_id_prefix = "sra_2_"

    def __init__(self, *, api_key: str | None = None, generation_seconds: float = 0.5) -> None:
        super().__init__(api_key=api_key, generation_seconds=generation_seconds)
        self.credits: int = 100_000
        self.credit_cost: int = 80  # per video; 10 less with prompt_directory_optin
        self.max_concurrent: int = 10

    def new_task_id(self) -> str:
        return self.task_id_prefix + secrets.token_hex(8)

    def build_routes(self) -> list[Route]:
        return [
            Route(
                ("POST",),
                re.compile(r"/api/v1/sora/generate/(?P<mode>text|image)-to-video/"),
                "create",
                self._create,
            ),
            Route(
                ("GET",),
                re.compile(r"/api/v1/sora/status/(?P<task_id>[^/]+)/"),
                "status",
                self._status,
            ),
        ]

    # -- shapes -----------------------------------------------------------------------

    def check_auth(self, req: ProviderRequest) -> bool:
        value = req.headers.get("authorization") or ""
        scheme, _, token = value.partition(" ")
        return scheme == "Token" and token.strip() == self.api_key

    def error_reply(self, status: int, message: str, detail: str | None = None) -> Reply:
        body: JSON = {"success": False, "error": message}
        if detail is not None:
            body["error_details"] = detail
        return Reply(status, body)

    def auth_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(401, "Invalid or missing API key")

    def rate_limit_reply(self) -> Reply:
        return self.error_reply(429, "Rate limit exceeded (max 10 concurrent)")

    def server_error_reply(self) -> Reply:
        return self.error_reply(500, "Server error - credits will be refunded")

    def insufficient_credits_reply(self) -> Reply:
        reply = self.error_reply(402, "Insufficient credits")
        reply.body["credits_required"] = self.credit_cost
        reply.body["credits_available"] = self.credits
        return reply

    def content_policy_reply(self) -> Reply:
        return self.error_reply(
            422, "Content policy violation", "Content policy violation detected in prompt"
        )

    def unknown_task_reply(self, task_id: str) -> Reply:
        return self.error_reply(404, "Task not found", f"No Sora task with id {task_id}")

    def not_found_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(404, "Not found")

    def status_body(self, task: FakeTask) -> JSON:
        phase = task.phase(self.now())
        if phase == "failed":
            return {
                "success": False,
                "error": "Video generation failed",
                "error_details": FAIL_DETAILS[task.outcome],
                "credits_refunded": task.params.get("credits_charged", self.credit_cost),
            }
        if phase == "succeeded":
            data: JSON = {
                "task_id": task.id,
                "status": "success",
                "video_url": self.media_url(task.id),
                "thumbnail_url": self.thumbnail_url(task.id),
                "duration": 10,
                "resolution": RESOLUTIONS[task.params.get("aspect_ratio", "landscape")],
                "file_size": _human_size(len(self.video_bytes)),
                "created_at": iso_utc(task.created_wall),
            }
        else:
            data = {
                "task_id": task.id,
                "status": "processing",
                "progress": task.progress(self.now()),
                "estimated_completion": "1-2 minutes",
            }
        return {"success": True, "data": data}

    # -- handlers ---------------------------------------------------------------------

    @staticmethod
    def _invalid(body: Any, image: bool) -> str | None:
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return "prompt is required"
        if len(prompt) > PROMPT_LIMIT:
            return f"prompt too long (max {PROMPT_LIMIT} characters)"
        if body.get("aspect_ratio", "landscape") not in ASPECT_RATIOS:
            return "aspect_ratio must be one of landscape, portrait, square"
        if body.get("quality", "standard") not in QUALITIES:
            return "quality must be 'standard' or 'high'"
        if not isinstance(body.get("prompt_directory_optin", True), bool):
            return "prompt_directory_optin must be a boolean"
        if image and not is_http_url(body.get("image_url")):
            return "image_url is required"
        return None

    async def _create(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        image = m["mode"] == "image"
        problem = self._invalid(req.json, image)
        if problem is not None:
            return self.error_reply(400, "Invalid request parameters", problem)
        body: JSON = req.json
        prompt: str = body["prompt"]
        if "#refuse" in prompt.lower():
            return self.content_policy_reply()
        if len(self.unfinished_tasks()) >= self.max_concurrent:
            return self.rate_limit_reply()
        optin: bool = body.get("prompt_directory_optin", True)
        cost = self.credit_cost - (10 if optin else 0)
        if self.credits < cost:
            return self.insufficient_credits_reply()
        self.credits -= cost
        params: JSON = {
            "aspect_ratio": body.get("aspect_ratio", "landscape"),
            "quality": body.get("quality", "standard"),
            "prompt_directory_optin": optin,
            "image_url": body.get("image_url") if image else None,
            "credits_charged": cost,
        }
        task = self.new_task(prompt, "image" if image else "text", body, params=params)
        data = {
            "task_id": task.id,
            "status": "processing",
            "estimated_completion": "2-3 minutes",
            "credits_charged": cost,
            "credits_remaining": self.credits,
            "webhook_url": f"{self.base_url}/sora/status/{task.id}/",
            "message": "Sora 2 video generation started successfully",
        }
        return Reply(201, {"success": True, "data": data})

    async def _status(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        task = self.tasks.get(m["task_id"])
        if task is None:
            return self.unknown_task_reply(m["task_id"])
        return Reply(200, self.status_body(task))

    def on_task_end(self, task: FakeTask) -> None:
        if task.outcome != "success":  # "Failed generations automatically refund credits"
            self.credits += int(task.params.get("credits_charged", 0))


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.1f} KB"
