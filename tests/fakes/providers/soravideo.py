"""Fake soravideo.art (https://soravideo.art/api/v1).

``POST /sora2[-pro]/text-to-video`` and ``/sora2[-pro]/image-to-video`` -> ``data.task_id``;
``GET /tasks/{id}`` -> ``data`` ``{task_id, status pending|processing|completed|failed,
progress, video_url, thumbnail_url, created_at, completed_at, error}`` (ISO-8601 UTC times;
null where not yet known); ``POST /upload`` (multipart ``file``: JPG/PNG/WebP/GIF by magic
bytes, <= 10 MB) -> ``data.url`` (served by the fake); ``GET /credits`` -> ``data.credits``.
Success ``{code: 200, msg, data}``, errors ``{code, msg, error}`` with HTTP status = code.
No callbacks.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from .base import (
    JSON,
    FakeProvider,
    FakeTask,
    ProviderRequest,
    Reply,
    Route,
    is_http_url,
    is_int,
    iso_utc,
    sniff_image,
)

__all__ = ["FakeSoraVideo", "Upload"]

ASPECT_RATIOS = ("16:9", "9:16", "1:1")
DURATIONS = (5, 10, 15)
QUALITIES = ("standard", "high")
MAX_UPLOAD = 10 * 1024 * 1024

FAIL_MESSAGES = {
    "content_policy": "Content policy violation: the prompt was rejected by moderation",
    "invalid_image": "Invalid input image: could not load imageUrl",
    "provider_error": "Video generation failed due to an internal error",
}


@dataclass
class Upload:
    id: str
    filename: str
    content_type: str
    data: bytes
    url: str


class FakeSoraVideo(FakeProvider):
    name = "soravideo"
    prefix = "/api/v1"
    task_id_prefix = "task_"

    def __init__(self, *, api_key: str | None = None, generation_seconds: float = 0.5) -> None:
        super().__init__(api_key=api_key, generation_seconds=generation_seconds)
        self.credits: int = 1000
        self.credit_cost: dict[str, int] = {"sora2": 10, "sora2-pro": 30}
        self.uploads: dict[str, Upload] = {}

    def build_routes(self) -> list[Route]:
        return [
            Route(
                ("POST",),
                re.compile(r"/api/v1/(?P<model>sora2|sora2-pro)/(?P<mode>text|image)-to-video"),
                "create",
                self._create,
            ),
            Route(("GET",), re.compile(r"/api/v1/tasks/(?P<task_id>[^/]+)"), "status", self._task),
            Route(("POST",), re.compile(r"/api/v1/upload"), "upload", self._upload),
            Route(("GET",), re.compile(r"/api/v1/credits"), "credits", self._credits),
            Route(
                ("GET", "HEAD"),
                re.compile(r"/cdn/soravideo/uploads/(?P<upload_id>[^/]+)/[^/]+"),
                "media",
                self._serve_upload,
                auth=False,
            ),
        ]

    # -- shapes -----------------------------------------------------------------------

    def error_reply(self, status: int, message: str, detail: str | None = None) -> Reply:
        return Reply(status, {"code": status, "msg": message, "error": detail or message})

    def auth_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(401, "Unauthorized", "Invalid or missing API key")

    def content_policy_reply(self) -> Reply:
        return self.error_reply(
            400, "Content policy violation", "The prompt violates the content policy"
        )

    def insufficient_credits_reply(self) -> Reply:
        return self.error_reply(402, "Insufficient credits", "Not enough credits for this video")

    def task_data(self, task: FakeTask) -> JSON:
        phase = task.phase(self.now())
        done = phase in ("succeeded", "failed")
        return {
            "task_id": task.id,
            "status": {
                "queued": "pending",
                "running": "processing",
                "succeeded": "completed",
                "failed": "failed",
            }[phase],
            "progress": task.progress(self.now()),
            "video_url": self.media_url(task.id) if phase == "succeeded" else None,
            "thumbnail_url": self.thumbnail_url(task.id) if phase == "succeeded" else None,
            "created_at": iso_utc(task.created_wall, millis=True),
            "completed_at": iso_utc(task.completed_wall, millis=True) if done else None,
            "error": FAIL_MESSAGES[task.outcome] if phase == "failed" else None,
        }

    # -- handlers ---------------------------------------------------------------------

    @staticmethod
    def _invalid(body: Any, image: bool) -> str | None:
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return "prompt is required"
        negative = body.get("negativePrompt")
        if negative is not None and not isinstance(negative, str):
            return "negativePrompt must be a string"
        if body.get("aspectRatio", "16:9") not in ASPECT_RATIOS:
            return "aspectRatio must be one of 16:9, 9:16, 1:1"
        duration = body.get("duration", 10)
        if not is_int(duration) or duration not in DURATIONS:
            return "duration must be 5, 10 or 15"
        if body.get("quality", "standard") not in QUALITIES:
            return "quality must be 'standard' or 'high'"
        if image and not is_http_url(body.get("imageUrl")):
            return "imageUrl is required for image-to-video"
        return None

    async def _create(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        image = m["mode"] == "image"
        problem = self._invalid(req.json, image)
        if problem is not None:
            return self.error_reply(400, "Invalid parameters", problem)
        body: JSON = req.json
        prompt: str = body["prompt"]
        if "#refuse" in prompt.lower():
            return self.content_policy_reply()
        cost = self.credit_cost.get(m["model"], 10)
        if self.credits < cost:
            return self.insufficient_credits_reply()
        self.credits -= cost
        params: JSON = {
            "aspectRatio": body.get("aspectRatio", "16:9"),
            "duration": body.get("duration", 10),
            "quality": body.get("quality", "standard"),
            "negativePrompt": body.get("negativePrompt"),
            "imageUrl": body.get("imageUrl") if image else None,
            "cost": cost,
        }
        task = self.new_task(
            prompt, "image" if image else "text", body, model=m["model"], params=params
        )
        return Reply(200, {"code": 200, "msg": "success", "data": {"task_id": task.id}})

    async def _task(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        task = self.tasks.get(m["task_id"])
        if task is None:
            return self.unknown_task_reply(m["task_id"])
        return Reply(200, {"code": 200, "msg": "success", "data": self.task_data(task)})

    async def _upload(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        part = req.files.get("file")
        if part is None:
            return self.error_reply(400, "Invalid parameters", "multipart field 'file' is required")
        filename, _declared, data = part
        if len(data) > MAX_UPLOAD:
            return self.error_reply(400, "File too large", "Maximum file size is 10MB")
        content_type = sniff_image(data)
        if content_type is None:
            return self.error_reply(
                400, "Unsupported file type", "Only JPG, PNG, WebP and GIF images are supported"
            )
        upload_id = secrets.token_hex(8)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename.rsplit("/", 1)[-1]) or "image"
        url = f"{self.origin}/cdn/soravideo/uploads/{upload_id}/{safe}"
        self.uploads[upload_id] = Upload(upload_id, filename, content_type, data, url)
        return Reply(200, {"code": 200, "msg": "success", "data": {"url": url}})

    async def _credits(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        return Reply(200, {"code": 200, "msg": "success", "data": {"credits": self.credits}})

    async def _serve_upload(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        upload = self.uploads.get(m["upload_id"])
        if upload is None:
            return Reply(404, raw=b"Not Found", content_type="text/plain")
        return Reply(200, raw=upload.data, content_type=upload.content_type)

    def on_task_end(self, task: FakeTask) -> None:
        if task.outcome != "success":  # failed generations give the credits back
            self.credits += int(task.params.get("cost", 0))
