"""Fake APIXO (https://api.apixo.ai/api/v1): generateTask / statusTask for sora-2 and sora-2-pro.

Envelope ``{code, message, data}``; errors carry ``data.error`` (as in APIXO's error page) and the
HTTP status equals ``code``. Status ``data``: ``taskId``, ``state`` pending|processing|success|
failed, ``createTime`` (unix ms); once final also ``completeTime`` and ``costTime`` (ms); success
adds ``resultJson`` (a JSON *string* ``{"resultUrls": [...]}``), failure ``failCode``/``failMsg``.
With ``request_type: "callback"`` the same status body is POSTed to ``callback_url`` at the end.
"""

from __future__ import annotations

import json
import re
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
)

__all__ = ["FakeApixo"]

MODELS = ("sora-2", "sora-2-pro")
DURATIONS = (4, 8, 12)
ASPECT_RATIOS = ("landscape", "portrait")
PRO_SIZES = ("720*1280", "1280*720", "1024*1792", "1792*1024")
PRO_RESOLUTIONS = ("720p", "1080p")
PROMPT_LIMIT = {"sora-2": 10_000, "sora-2-pro": 5_000}

FAIL_CODES: dict[str, tuple[str, str]] = {
    "content_policy": ("CONTENT_VIOLATION", "Content violates safety guidelines"),
    "invalid_image": ("INVALID_IMAGE_URL", "Cannot access provided image URL"),
    "provider_error": ("GENERATION_FAILED", "Generic generation failure"),
}


class _Invalid(Exception):
    pass


class FakeApixo(FakeProvider):
    name = "apixo"
    prefix = "/api/v1"
    task_id_prefix = "task_"

    def build_routes(self) -> list[Route]:
        models = "|".join(re.escape(m) for m in MODELS)
        return [
            Route(
                ("POST",),
                re.compile(rf"/api/v1/generateTask/(?P<model>{models})"),
                "create",
                self._create,
            ),
            Route(
                ("GET",),
                re.compile(rf"/api/v1/statusTask/(?P<model>{models})"),
                "status",
                self._status,
            ),
        ]

    # -- shapes -----------------------------------------------------------------------

    def error_reply(self, status: int, message: str, detail: str | None = None) -> Reply:
        data: JSON | None = {"error": detail} if detail is not None else None
        return Reply(status, {"code": status, "message": message, "data": data})

    def auth_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(401, "Unauthorized", "Invalid or missing API Key")

    def rate_limit_reply(self) -> Reply:
        return self.error_reply(429, "Too Many Requests", "Rate limit exceeded. Wait and retry.")

    def server_error_reply(self) -> Reply:
        return self.error_reply(500, "Server Error", "Internal server error")

    def insufficient_credits_reply(self) -> Reply:
        reply = self.error_reply(402, "Insufficient credits", "Account has no credits")
        reply.body["data"]["failCode"] = "INSUFFICIENT_CREDITS"
        return reply

    def content_policy_reply(self) -> Reply:
        reply = self.error_reply(
            400, "Content violates safety guidelines", "Prompt rejected by content moderation"
        )
        reply.body["data"]["failCode"] = "CONTENT_VIOLATION"
        return reply

    def unknown_task_reply(self, task_id: str) -> Reply:
        return self.error_reply(404, "Not Found", f"Task not found: {task_id}")

    def status_body(self, task: FakeTask) -> JSON:
        now = self.now()
        phase = task.phase(now)
        data: JSON = {
            "taskId": task.id,
            "state": {
                "queued": "pending",
                "running": "processing",
                "succeeded": "success",
                "failed": "failed",
            }[phase],
            "createTime": int(task.created_wall * 1000),
        }
        if phase == "succeeded":
            data["resultJson"] = json.dumps({"resultUrls": [self.media_url(task.id)]})
        elif phase == "failed":
            data["failCode"], data["failMsg"] = FAIL_CODES[task.outcome]
        if phase in ("succeeded", "failed"):
            data["completeTime"] = int(task.completed_wall * 1000)
            data["costTime"] = int((task.ends_at - task.created_at) * 1000)
        return {"code": 200, "message": "success", "data": data}

    # -- handlers ---------------------------------------------------------------------

    def _validate(self, model: str, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise _Invalid("Request body must be a JSON object")
        request_type = body.get("request_type", "async")
        if request_type not in ("async", "callback"):
            raise _Invalid("request_type must be 'async' or 'callback'")
        callback_url = body.get("callback_url")
        if request_type == "callback" and not is_http_url(callback_url):
            raise _Invalid("callback_url is required when request_type=callback")
        if callback_url is not None and not is_http_url(callback_url):
            raise _Invalid("callback_url must be an http(s) URL")
        provider = body.get("provider", "official")
        if provider != "official":
            raise _Invalid("provider: only 'official' is supported")
        inp = body.get("input")
        if not isinstance(inp, dict):
            raise _Invalid("Missing required field: input")
        mode = inp.get("mode")
        if mode not in ("text-to-video", "image-to-video"):
            raise _Invalid("input.mode must be 'text-to-video' or 'image-to-video'")
        prompt = inp.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Invalid("Missing required field: input.prompt")
        if len(prompt) > PROMPT_LIMIT[model]:
            raise _Invalid(f"input.prompt exceeds {PROMPT_LIMIT[model]} characters")
        image_urls = inp.get("image_urls")
        if mode == "image-to-video":
            if (
                not isinstance(image_urls, list)
                or len(image_urls) != 1
                or not is_http_url(image_urls[0])
            ):
                raise _Invalid("input.image_urls must hold exactly 1 image URL for image-to-video")
        elif image_urls not in (None, []):
            raise _Invalid("input.image_urls is only allowed for image-to-video")
        duration = inp.get("duration", 4)
        if not is_int(duration) or duration not in DURATIONS:
            raise _Invalid("input.duration must be an integer: 4, 8 or 12")
        params: JSON = {
            "request_type": request_type,
            "mode": mode,
            "duration": duration,
            "image_urls": list(image_urls or []),
        }
        remove_watermark = inp.get("remove_watermark", True)
        if not isinstance(remove_watermark, bool):
            raise _Invalid("input.remove_watermark must be a boolean")
        params["remove_watermark"] = remove_watermark
        if model == "sora-2":
            aspect = inp.get("aspect_ratio", "landscape")
            if aspect not in ASPECT_RATIOS:
                raise _Invalid("input.aspect_ratio must be 'landscape' or 'portrait'")
            params["aspect_ratio"] = aspect
        elif mode == "text-to-video":
            size = inp.get("size", "1280*720")
            if size not in PRO_SIZES:
                raise _Invalid(f"input.size must be one of {', '.join(PRO_SIZES)}")
            params["size"] = size
        else:
            resolution = inp.get("resolution", "720p")
            if resolution not in PRO_RESOLUTIONS:
                raise _Invalid("input.resolution must be '720p' or '1080p'")
            params["resolution"] = resolution
        return params

    async def _create(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        model = m["model"]
        try:
            params = self._validate(model, req.json)
        except _Invalid as exc:
            return self.error_reply(400, "Invalid request", str(exc))
        body = req.json
        prompt: str = body["input"]["prompt"]
        if "#refuse" in prompt.lower():
            return self.content_policy_reply()
        callback = body.get("callback_url") if params["request_type"] == "callback" else None
        task = self.new_task(
            prompt,
            "image" if params["mode"] == "image-to-video" else "text",
            body,
            model=model,
            callback_url=callback,
            params=params,
        )
        return Reply(200, {"code": 200, "message": "success", "data": {"taskId": task.id}})

    async def _status(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        task_id = req.query.get("taskId")
        if not task_id:
            return self.error_reply(400, "Invalid request", "Missing required parameter: taskId")
        task = self.tasks.get(task_id)
        if task is None or task.model != m["model"]:  # a task is known under its own model only
            return self.unknown_task_reply(task_id)
        return Reply(200, self.status_body(task))

    def on_task_end(self, task: FakeTask) -> None:
        if task.callback_url:
            self.send_callback(task.callback_url, self.status_body(task), task.id, lambda _: {})
