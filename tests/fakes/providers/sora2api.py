"""Fake Sora2API (https://api.sora2api.ai/api/v1/sora2): ``/generate`` and ``/record-info``.

Envelope ``{code, msg, data}``. ``record-info`` data: ``taskId``, ``paramJson`` (JSON string of
the request), ``createTime``/``completeTime`` ("YYYY-MM-DD HH:MM:SS", UTC; completeTime null
until final), ``response`` (``{"imageUrl": <video url>}`` on success, else null),
``successFlag`` 0 generating / 1 success / 2 create failed / 3 generation failed, ``errorCode``
(0 unless failed) and ``errorMessage``.

Errors: by default the HTTP status mirrors ``code``; with ``http_200_errors = True`` they come
back as HTTP 200 and only the body's ``code`` tells (the docs don't say which happens).

Callbacks (when ``callBackUrl`` was given), ``callback_variant``:
  "record": ``{code: 200|500, msg, data: <record-info data>}``
  "urls":   ``{code: 200|500, msg, data: {taskId, promptJson, resultUrls: [...]}}``
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any, Literal

from .base import JSON, FakeProvider, FakeTask, ProviderRequest, Reply, Route, is_http_url

__all__ = ["FakeSora2API"]

ASPECT_RATIOS = ("landscape", "portrait")
QUALITIES = ("standard", "hd")

# outcome -> (successFlag, errorCode, errorMessage)
FAILURES: dict[str, tuple[int, int, str]] = {
    "content_policy": (3, 400, "Content policy violation: the prompt was flagged by moderation"),
    "invalid_image": (2, 422, "Task creation failed: could not fetch the image at imageUrls[0]"),
    "provider_error": (3, 500, "Video generation failed, please try again"),
}


def _fmt_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


class FakeSora2API(FakeProvider):
    name = "sora2api"
    prefix = "/api/v1/sora2"
    task_id_prefix = "sora2_task_"

    def __init__(self, *, api_key: str | None = None, generation_seconds: float = 0.5) -> None:
        super().__init__(api_key=api_key, generation_seconds=generation_seconds)
        self.http_200_errors: bool = False
        self.callback_variant: Literal["record", "urls"] = "record"

    def build_routes(self) -> list[Route]:
        return [
            Route(("POST",), re.compile(r"/api/v1/sora2/generate"), "create", self._create),
            Route(("GET",), re.compile(r"/api/v1/sora2/record-info"), "status", self._status),
        ]

    # -- shapes -----------------------------------------------------------------------

    def error_reply(self, status: int, message: str, detail: str | None = None) -> Reply:
        http = 200 if self.http_200_errors else status
        return Reply(http, {"code": status, "msg": message, "data": None})

    def auth_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(401, "Unauthorized: missing or invalid API key")

    def rate_limit_reply(self) -> Reply:
        return self.error_reply(429, "Too many requests, please slow down")

    def server_error_reply(self) -> Reply:
        return self.error_reply(500, "Internal server error")

    def insufficient_credits_reply(self) -> Reply:
        return self.error_reply(402, "Insufficient credits")

    def content_policy_reply(self) -> Reply:
        return self.error_reply(400, "Your prompt was flagged by the content policy")

    def unknown_task_reply(self, task_id: str) -> Reply:
        return self.error_reply(404, f"Task not found: {task_id}")

    def bad_json_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(400, "Invalid request parameters or malformed JSON")

    def not_found_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(404, "Not found")

    def record(self, task: FakeTask) -> JSON:
        now = self.now()
        phase = task.phase(now)
        final = phase in ("succeeded", "failed")
        data: JSON = {
            "taskId": task.id,
            "paramJson": json.dumps(task.body, ensure_ascii=False),
            "completeTime": _fmt_time(task.completed_wall) if final else None,
            "response": {"imageUrl": self.media_url(task.id)} if phase == "succeeded" else None,
            "successFlag": 0,
            "errorCode": 0,
            "errorMessage": None,
            "createTime": _fmt_time(task.created_wall),
        }
        if phase == "succeeded":
            data["successFlag"] = 1
        elif phase == "failed":
            flag, code, message = FAILURES[task.outcome]
            data["successFlag"], data["errorCode"], data["errorMessage"] = flag, code, message
        return data

    def callback_payload(self, task: FakeTask) -> JSON:
        ok = task.outcome == "success"
        msg = "success" if ok else FAILURES[task.outcome][2]
        code = 200 if ok else 500
        if self.callback_variant == "urls":
            data: JSON = {
                "taskId": task.id,
                "promptJson": json.dumps(task.body, ensure_ascii=False),
                "resultUrls": [self.media_url(task.id)] if ok else [],
            }
        else:
            data = self.record(task)
        return {"code": code, "msg": msg, "data": data}

    # -- handlers ---------------------------------------------------------------------

    @staticmethod
    def _invalid(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return "prompt is required"
        if body.get("aspectRatio", "landscape") not in ASPECT_RATIOS:
            return "aspectRatio must be 'landscape' or 'portrait'"
        if body.get("quality", "standard") not in QUALITIES:
            return "quality must be 'standard' or 'hd'"
        urls = body.get("imageUrls")
        if urls is not None and (
            not isinstance(urls, list) or not all(is_http_url(u) for u in urls)
        ):
            return "imageUrls must be an array of image URLs"
        watermark = body.get("watermark")
        if watermark is not None and not isinstance(watermark, str):
            return "watermark must be a string"
        callback = body.get("callBackUrl")
        if callback is not None and not is_http_url(callback):
            return "callBackUrl must be an http(s) URL"
        return None

    async def _create(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        problem = self._invalid(req.json)
        if problem is not None:
            return self.error_reply(400, problem)
        body: JSON = req.json
        prompt: str = body["prompt"]
        if "#refuse" in prompt.lower():
            return self.content_policy_reply()
        params = {
            "aspectRatio": body.get("aspectRatio", "landscape"),
            "quality": body.get("quality", "standard"),
            "imageUrls": list(body.get("imageUrls") or []),
            "watermark": body.get("watermark"),
        }
        task = self.new_task(
            prompt,
            "image" if params["imageUrls"] else "text",
            body,
            model="sora-2",
            callback_url=body.get("callBackUrl"),
            params=params,
        )
        return Reply(200, {"code": 200, "msg": "success", "data": {"taskId": task.id}})

    async def _status(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        task_id = req.query.get("taskId")
        if not task_id:
            return self.error_reply(400, "taskId is required")
        task = self.tasks.get(task_id)
        if task is None:
            return self.unknown_task_reply(task_id)
        return Reply(200, {"code": 200, "msg": "success", "data": self.record(task)})

    def on_task_end(self, task: FakeTask) -> None:
        if task.callback_url:
            self.send_callback(task.callback_url, self.callback_payload(task), task.id, _no_headers)


def _no_headers(body: bytes) -> dict[str, str]:
    return {}
