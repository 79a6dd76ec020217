"""Fake OpenAI Videos API (``/v1/videos``), as the ``openai`` SDK's ``client.videos`` speaks it.

``POST /v1/videos`` (JSON, or multipart with an ``input_reference`` file part whose pixel size
must equal ``size``), ``GET /v1/videos`` (cursor list), ``GET /v1/videos/{id}``,
``GET /v1/videos/{id}/content?variant=video|thumbnail|spritesheet`` (needs the key; 404 until
completed), ``DELETE /v1/videos/{id}``, ``POST /v1/videos/{id}/remix``.
Errors ``{"error": {message, type, param, code}}``. When ``webhook_url`` is set, a Standard
Webhooks signed ``video.completed`` / ``video.failed`` event is POSTed as each video ends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from .base import (
    DEFAULT_MP4,
    JSON,
    FakeProvider,
    FakeTask,
    ProviderRequest,
    Reply,
    Route,
    image_size,
    make_jpeg,
    make_webp,
    sniff_image,
)

__all__ = ["FakeOpenAI", "sign_webhook", "webhook_signature"]

MODELS = ("sora-2", "sora-2-pro")
SECONDS = ("4", "8", "12")
SIZES = {
    "sora-2": ("720x1280", "1280x720"),
    "sora-2-pro": ("720x1280", "1280x720", "1024x1792", "1792x1024"),
}
CREATE_FIELDS = frozenset({"model", "prompt", "seconds", "size", "input_reference"})
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}

FAILURES = {
    "content_policy": ("moderation_blocked", "Your request was blocked by our moderation system."),
    "invalid_image": (
        "invalid_input_reference",
        "The input reference image could not be processed.",
    ),
    "provider_error": ("internal_error", "Video generation failed due to an internal error."),
}


class _ApiError(Exception):
    def __init__(
        self, status: int, message: str, *, type: str, param: str | None, code: str | None
    ) -> None:
        super().__init__(message)
        self.reply = api_error(status, message, type=type, param=param, code=code)


def api_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Reply:
    return Reply(
        status, {"error": {"message": message, "type": type, "param": param, "code": code}}
    )


def _invalid(param: str, message: str, code: str = "invalid_value") -> _ApiError:
    return _ApiError(400, message, type="invalid_request_error", param=param, code=code)


def webhook_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """base64 HMAC-SHA256 of ``f"{msg_id}.{timestamp}.{body}"``, key = base64 after ``whsec_``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign_webhook(
    body: bytes,
    secret: str,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)."""
    msg_id = msg_id or f"wh_{secrets.token_hex(16)}"
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signature = webhook_signature(secret, msg_id, ts, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": f"v1,{signature}",
    }


class FakeOpenAI(FakeProvider):
    name = "openai"
    prefix = "/v1"
    task_id_prefix = "video_"

    def __init__(self, *, api_key: str | None = None, generation_seconds: float = 0.5) -> None:
        super().__init__(api_key=api_key, generation_seconds=generation_seconds)
        self.webhook_secret: str = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.webhook_url: str | None = None
        self.expires_after: float = 3600.0  # seconds from completion to expires_at
        self.video_bytes = DEFAULT_MP4
        self.thumbnail_bytes = make_webp(1280, 720) + bytes(32)
        self.thumbnail_content_type = "image/webp"
        self.spritesheet_bytes: bytes = make_jpeg(1280, 720) + bytes(64)

    def new_task_id(self) -> str:
        return self.task_id_prefix + secrets.token_hex(24)

    def build_routes(self) -> list[Route]:
        vid = r"(?P<task_id>[^/]+)"
        return [
            Route(("POST",), re.compile(r"/v1/videos"), "create", self._create),
            Route(("GET",), re.compile(r"/v1/videos"), "list", self._list),
            Route(("GET",), re.compile(rf"/v1/videos/{vid}"), "status", self._retrieve),
            Route(("DELETE",), re.compile(rf"/v1/videos/{vid}"), "delete", self._delete),
            Route(("GET",), re.compile(rf"/v1/videos/{vid}/content"), "content", self._content),
            Route(("POST",), re.compile(rf"/v1/videos/{vid}/remix"), "remix", self._remix),
        ]

    def _media_routes(self) -> list[Route]:
        return []  # no public URL: the content endpoint needs the key

    def media_url(self, task_id: str) -> str:
        return f"{self.base_url}/videos/{task_id}/content"

    def thumbnail_url(self, task_id: str) -> str:
        return f"{self.base_url}/videos/{task_id}/content?variant=thumbnail"

    # -- shapes -----------------------------------------------------------------------

    def error_reply(self, status: int, message: str, detail: str | None = None) -> Reply:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return api_error(status, detail or message, type=kind)

    def auth_reply(self, req: ProviderRequest) -> Reply:
        value = req.headers.get("authorization") or ""
        if not value.strip():
            return api_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        token = value.partition(" ")[2].strip()
        shown = f"{token[:3]}*****{token[-4:]}" if len(token) > 8 else "*****"
        return api_error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def rate_limit_reply(self) -> Reply:
        return api_error(
            429,
            "Rate limit reached for videos. Please try again later.",
            type="requests",
            code="rate_limit_exceeded",
        )

    def server_error_reply(self) -> Reply:
        return api_error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )

    def insufficient_credits_reply(self) -> Reply:
        return api_error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        )

    def content_policy_reply(self) -> Reply:
        return api_error(
            400, "Your request was blocked by our moderation system.", code="moderation_blocked"
        )

    def unknown_task_reply(self, task_id: str) -> Reply:
        return api_error(404, f"Video with id '{task_id}' not found.", param="video_id")

    def not_found_reply(self, req: ProviderRequest) -> Reply:
        return api_error(404, f"Invalid URL ({req.method} {req.path})")

    def bad_json_reply(self, req: ProviderRequest) -> Reply:
        return api_error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly.)",
        )

    def video_object(self, task: FakeTask) -> JSON:
        now = self.now()
        phase = task.phase(now)
        done = phase in ("succeeded", "failed")
        error: JSON | None = None
        if phase == "failed":
            code, message = FAILURES[task.outcome]
            error = {"code": code, "message": message}
        return {
            "id": task.id,
            "object": "video",
            "created_at": int(task.created_wall),
            "status": {
                "queued": "queued",
                "running": "in_progress",
                "succeeded": "completed",
                "failed": "failed",
            }[phase],
            "completed_at": int(task.completed_wall) if done else None,
            "error": error,
            "expires_at": (
                int(task.completed_wall + self.expires_after) if phase == "succeeded" else None
            ),
            "model": task.model,
            "progress": task.progress(now),
            "prompt": task.prompt,
            "remixed_from_video_id": task.remixed_from,
            "seconds": task.params["seconds"],
            "size": task.params["size"],
        }

    # -- handlers ---------------------------------------------------------------------

    def _create_fields(self, req: ProviderRequest) -> JSON:
        if isinstance(req.json, dict):
            fields: JSON = dict(req.json)
            if "input_reference" in fields:
                raise _invalid(
                    "input_reference",
                    "Invalid type for 'input_reference': expected a file upload.",
                    "invalid_type",
                )
            return fields
        if req.form or req.files:
            fields = dict(req.form)
            if "input_reference" in fields:
                raise _invalid(
                    "input_reference",
                    "Invalid type for 'input_reference': expected a file upload.",
                    "invalid_type",
                )
            for name, part in req.files.items():
                fields[name] = part
            return fields
        raise _invalid(
            "prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter"
        )

    def _validate(self, fields: JSON) -> JSON:
        for name in fields:
            if name not in CREATE_FIELDS:
                raise _invalid(name, f"Unknown parameter: '{name}'.", "unknown_parameter")
        model = fields.get("model", "sora-2")
        if model not in MODELS:
            raise _invalid(
                "model",
                f"Invalid value: '{model}'. Supported values are: 'sora-2' and 'sora-2-pro'.",
            )
        prompt = fields.get("prompt")
        if prompt is None:
            raise _invalid(
                "prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter"
            )
        if not isinstance(prompt, str):
            raise _invalid(
                "prompt", "Invalid type for 'prompt': expected a string.", "invalid_type"
            )
        if not prompt.strip():
            raise _invalid("prompt", "Invalid 'prompt': empty string.")
        seconds = fields.get("seconds", "4")
        if not isinstance(seconds, str):
            raise _invalid(
                "seconds",
                "Invalid type for 'seconds': expected one of '4', '8', '12', "
                f"but got {type(seconds).__name__} instead.",
                "invalid_type",
            )
        if seconds not in SECONDS:
            raise _invalid(
                "seconds",
                f"Invalid value: '{seconds}'. Supported values are: '4', '8', and '12'.",
            )
        size = fields.get("size", "720x1280")
        if not isinstance(size, str) or size not in SIZES[model]:
            allowed = ", ".join(f"'{s}'" for s in SIZES[model])
            raise _invalid("size", f"Invalid value: '{size}'. Supported values are: {allowed}.")
        reference = fields.get("input_reference")
        if reference is not None:
            _filename, _ctype, data = reference
            if sniff_image(data) not in ("image/png", "image/jpeg", "image/webp"):
                raise _invalid(
                    "input_reference",
                    "Invalid file format for 'input_reference'. Supported formats are: "
                    "image/jpeg, image/png, image/webp.",
                )
            dims = image_size(data)
            width, _, height = size.partition("x")
            if dims is not None and dims != (int(width), int(height)):
                raise _invalid(
                    "input_reference", "Inpaint image must match the requested width and height"
                )
        return {"model": model, "prompt": prompt, "seconds": seconds, "size": size}

    async def _create(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        try:
            fields = self._create_fields(req)
            params = self._validate(fields)
        except _ApiError as exc:
            return exc.reply
        if "#refuse" in params["prompt"].lower():
            return self.content_policy_reply()
        reference: tuple[str, str, bytes] | None = fields.get("input_reference")
        body: Any = req.json if isinstance(req.json, dict) else dict(req.form)
        task = self.new_task(
            params["prompt"],
            "image" if reference is not None else "text",
            body,
            model=params["model"],
            params=params,
        )
        task.input_reference = reference
        return Reply(200, self.video_object(task))

    def _live(self, task_id: str) -> FakeTask | None:
        task = self.tasks.get(task_id)
        return None if task is None or task.deleted else task

    async def _retrieve(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        task = self._live(m["task_id"])
        if task is None:
            return self.unknown_task_reply(m["task_id"])
        return Reply(200, self.video_object(task))

    async def _list(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        order = req.query.get("order", "desc")
        if order not in ("asc", "desc"):
            return _invalid("order", f"Invalid value: '{order}'.").reply
        try:
            limit = int(req.query.get("limit", "20"))
        except ValueError:
            return _invalid("limit", "Invalid type for 'limit': expected an integer.").reply
        tasks = sorted(
            (t for t in self.tasks.values() if not t.deleted),
            key=lambda t: t.created_at,
            reverse=order == "desc",
        )
        after = req.query.get("after")
        if after:
            ids = [t.id for t in tasks]
            tasks = tasks[ids.index(after) + 1 :] if after in ids else []
        page = tasks[: max(1, min(100, limit))]
        data = [self.video_object(t) for t in page]
        return Reply(
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(tasks) > len(page),
            },
        )

    async def _delete(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        task = self._live(m["task_id"])
        if task is None:
            return self.unknown_task_reply(m["task_id"])
        task.deleted = True
        return Reply(200, {"id": task.id, "object": "video.deleted", "deleted": True})

    async def _content(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        variant = req.query.get("variant", "video")
        if variant not in VARIANTS:
            return _invalid(
                "variant",
                f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail', "
                "and 'spritesheet'.",
            ).reply
        task = self._live(m["task_id"])
        if task is None:
            return self.unknown_task_reply(m["task_id"])
        if task.phase(self.now()) != "succeeded":
            return api_error(
                404,
                f"Video with id '{task.id}' is not ready: its status is "
                f"'{self.video_object(task)['status']}'.",
                param="video_id",
            )
        if self.wall_now() >= task.completed_wall + self.expires_after:
            return api_error(404, f"The content of video '{task.id}' has expired.")
        data = {
            "video": self.video_bytes,
            "thumbnail": self.thumbnail_bytes,
            "spritesheet": self.spritesheet_bytes,
        }[variant]
        return Reply(200, raw=data, content_type=VARIANTS[variant])

    async def _remix(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        source = self._live(m["task_id"])
        if source is None:
            return self.unknown_task_reply(m["task_id"])
        body = req.json if isinstance(req.json, dict) else dict(req.form)
        for name in body:
            if name != "prompt":
                return _invalid(name, f"Unknown parameter: '{name}'.", "unknown_parameter").reply
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return _invalid(
                "prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter"
            ).reply
        if source.phase(self.now()) != "succeeded":
            return api_error(
                400,
                f"Video '{source.id}' is not completed and cannot be remixed.",
                param="video_id",
            )
        if "#refuse" in prompt.lower():
            return self.content_policy_reply()
        params = dict(source.params, prompt=prompt)
        task = self.new_task(prompt, "text", body, model=source.model, params=params)
        task.remixed_from = source.id
        return Reply(200, self.video_object(task))

    # -- webhooks ---------------------------------------------------------------------

    def sign_webhook(
        self,
        body: bytes,
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> dict[str, str]:
        """Standard Webhooks headers for ``body`` (defaults: new id, now, webhook_secret)."""
        return sign_webhook(body, secret or self.webhook_secret, msg_id=msg_id, timestamp=timestamp)

    def webhook_event(self, task: FakeTask) -> JSON:
        return {
            "id": f"evt_{secrets.token_hex(16)}",
            "object": "event",
            "created_at": int(self.wall_now()),
            "type": "video.completed" if task.outcome == "success" else "video.failed",
            "data": {"id": task.id},
        }

    def on_task_end(self, task: FakeTask) -> None:
        if self.webhook_url is None or task.deleted:
            return
        msg_id = f"wh_{secrets.token_hex(16)}"  # the same for every copy/retry of this event

        def headers(body: bytes) -> dict[str, str]:
            return self.sign_webhook(body, msg_id=msg_id)

        self.send_callback(self.webhook_url, self.webhook_event(task), task.id, headers)
