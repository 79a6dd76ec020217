"""Shared machinery of the fake Sora 2 provider servers.

Every fake is an aiohttp server on 127.0.0.1 (random free port) that:

* records each request it receives (:class:`ProviderRequest`, in :attr:`FakeProvider.requests`),
* keeps tasks whose state derives from a clock (:class:`FakeTask`): queued for the first 10% of
  their duration, then running with progress rising linearly, then final (success or failure),
* serves the finished video (and thumbnail) at :meth:`FakeProvider.media_url`,
* answers with injected faults (:meth:`FakeProvider.inject`) instead of normal answers,
* POSTs callbacks/webhooks when a task ends (providers that have them).

Subclasses supply the routes and the provider's own JSON shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.message
import email.utils
import json
import re
import secrets
import socket
import struct
import time
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeVar, get_args, overload

import aiohttp
from aiohttp import web

__all__ = [
    "FAULT_KINDS",
    "CallbackDelivery",
    "FakeProvider",
    "FakeTask",
    "Fault",
    "Headers",
    "Outcome",
    "ProviderRequest",
    "Reply",
    "Route",
    "TaskPhase",
    "image_size",
    "make_jpeg",
    "make_png",
    "make_webp",
    "outcome_for_prompt",
]

JSON = dict[str, Any]
_T = TypeVar("_T")
Outcome = Literal["success", "content_policy", "invalid_image", "provider_error"]
TaskPhase = Literal["queued", "running", "succeeded", "failed"]
FaultKind = Literal[
    "rate_limit",
    "server_error",
    "html_500",
    "html_502",
    "html_503",
    "connection_reset",
    "truncated_json",
    "empty_body",
    "slow",
    "unknown_task",
    "auth",
    "insufficient_credits",
    "content_policy_on_create",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))

# Faults that only hit requests of these kinds (others leave them pending).
_FAULT_OPS: dict[str, frozenset[str]] = {
    "unknown_task": frozenset({"status"}),
    "content_policy_on_create": frozenset({"create", "remix"}),
    "insufficient_credits": frozenset({"create", "remix"}),
}
# Faults whose request is still processed normally (so side effects, e.g. a created task, happen).
_PROCESSED_FAULTS = frozenset({"slow", "truncated_json", "empty_body"})

QUEUED_FRACTION = 0.1


# --------------------------------------------------------------------------------------
# bytes the fakes serve
# --------------------------------------------------------------------------------------


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _default_mp4() -> bytes:
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mvhd = _box(b"mvhd", bytes(4) + bytes(8) + struct.pack(">II", 1000, 4000) + bytes(80))
    moov = _box(b"moov", mvhd)
    free = _box(b"free", b"fake sora video".ljust(64, b"\0"))
    mdat = _box(b"mdat", bytes(range(256)) * 16)
    return ftyp + moov + free + mdat


def make_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of the given pixel size (all black)."""
    row = b"\0" + bytes((width + 7) // 8)
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def make_jpeg(width: int, height: int) -> bytes:
    """JPEG-looking bytes (SOI, JFIF APP0, baseline SOF0 with the size, EOI); not decodable."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    sof0 += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def make_webp(width: int, height: int) -> bytes:
    """WebP-looking bytes (RIFF/WEBP with a lossy VP8 frame header of the given size)."""
    frame = b"\x9d\x01\x2a" + struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    vp8 = b"\x30\x01\x00" + frame + bytes(10)
    chunk = b"VP8 " + struct.pack("<I", len(vp8)) + vp8
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


DEFAULT_MP4 = _default_mp4()
DEFAULT_JPEG = make_jpeg(1280, 720) + bytes(64)
DEFAULT_WEBP = make_webp(1280, 720)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of PNG, JPEG, WebP or GIF bytes, read from their headers; None if unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        if marker in (0xD9, 0xDA):
            return None
        i += 2 + int(length)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (int(bits) & 0x3FFF) + 1, ((int(bits) >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def sniff_image(data: bytes) -> str | None:
    """The MIME type of JPEG/PNG/WebP/GIF bytes, by magic number."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


class Headers(dict[str, str]):
    """Request headers; lookups ignore case (keys are stored lower-cased)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            lower = key.lower()
            if lower in self:
                super().__setitem__(lower, f"{super().__getitem__(lower)}, {value}")
            else:
                super().__setitem__(lower, value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        return super().get(key.lower(), default)


@dataclass
class ProviderRequest:
    """One request as the fake received it, and how it answered."""

    method: str
    path: str  # full path as received, e.g. "/api/v1/generateTask/sora-2"
    query: dict[str, str]
    headers: dict[str, str]  # a :class:`Headers` (case-insensitive lookups)
    json: Any  # parsed JSON body (for a JSON content type), else None
    form: dict[str, str] = field(default_factory=dict)  # multipart / urlencoded text fields
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # name -> file
    body: bytes = b""  # raw body
    op: str = ""  # what the fake took it for: create, status, media, upload, ... or "unknown"
    at: float = 0.0  # fake clock (FakeProvider.now()) when received
    status: int = 0  # HTTP status answered (0: connection reset)
    response: Any = None  # JSON answered (None if not JSON)
    fault: str | None = None  # the injected fault that answered it
    bad_json: bool = False  # JSON content type but the body did not parse

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class FakeTask:
    """A generation task; its state derives from the fake clock.

    Queued for the first 10% of ``duration``, then running (progress rising linearly to 99),
    then final at ``created_at + duration`` (or when forced by finish()/fail_task()).
    """

    id: str
    prompt: str
    mode: str  # "text" | "image"
    body: Any  # the create request as received (JSON object or form fields)
    created_at: float  # fake clock (FakeProvider.now())
    duration: float  # seconds to finish
    outcome: Outcome
    callback_url: str | None = None
    model: str = ""  # provider model / variant, e.g. "sora-2", "sora-2-pro"
    params: JSON = field(default_factory=dict)  # normalised request parameters (with defaults)
    created_wall: float = 0.0  # unix time at creation (plus the fake clock's offset)
    forced_end: float | None = None
    deleted: bool = False
    notified: bool = False  # end-of-task callbacks were scheduled
    remixed_from: str | None = None
    input_reference: tuple[str, str, bytes] | None = None

    @property
    def ends_at(self) -> float:
        if self.forced_end is not None:
            return self.forced_end
        return self.created_at + self.duration

    def done(self, now: float) -> bool:
        return now >= self.ends_at

    def phase(self, now: float) -> TaskPhase:
        if self.done(now):
            return "succeeded" if self.outcome == "success" else "failed"
        if now < self.created_at + QUEUED_FRACTION * self.duration:
            return "queued"
        return "running"

    def progress(self, now: float) -> int:
        """0 while queued, then linear up to 99 while running; 100 once succeeded."""
        phase = self.phase(now)
        if phase == "succeeded":
            return 100
        start = self.created_at + QUEUED_FRACTION * self.duration
        span = self.duration * (1 - QUEUED_FRACTION)
        at = min(now, self.ends_at)
        if span <= 0 or at <= start:
            return 0
        return max(0, min(99, int(100 * (at - start) / span)))

    def wall(self, at: float) -> float:
        """Unix time corresponding to fake-clock time ``at``."""
        return self.created_wall + (at - self.created_at)

    @property
    def completed_wall(self) -> float:
        return self.wall(self.ends_at)


def outcome_for_prompt(prompt: str) -> Outcome:
    """``#fail`` -> content_policy, ``#badimage`` -> invalid_image, ``#error`` -> provider_error."""
    lowered = prompt.lower()
    if "#fail" in lowered:
        return "content_policy"
    if "#badimage" in lowered:
        return "invalid_image"
    if "#error" in lowered:
        return "provider_error"
    return "success"


@dataclass
class Fault:
    kind: str
    times: int  # < 0: forever
    path: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    hits: int = 0

    def applies(self, req: ProviderRequest) -> bool:
        if self.path is not None and self.path not in req.path:
            return False
        ops = _FAULT_OPS.get(self.kind)
        return ops is None or req.op in ops


@dataclass
class CallbackDelivery:
    """One POST of a callback/webhook by the fake."""

    url: str
    payload: JSON
    headers: dict[str, str]
    task_id: str
    attempt: int = 1  # 1 = first try; more with callback_retries
    copy: int = 1  # which of the duplicate_callbacks copies
    status: int | None = None  # receiver's HTTP status
    error: str | None = None  # connection error, if any
    done: bool = False


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable; ignored when raw is set
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False).encode()

    def to_response(self) -> web.Response:
        headers = dict(self.headers)
        headers["Content-Type"] = self.content_type
        return web.Response(status=self.status, body=self.payload(), headers=headers)


Handler = Callable[[ProviderRequest, re.Match[str]], Awaitable[Reply]]


@dataclass
class Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]  # full-matched against the path
    op: str
    handler: Handler
    auth: bool = True


# --------------------------------------------------------------------------------------
# HTML pages of gateways
# --------------------------------------------------------------------------------------

_NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_CLOUDFLARE_PAGE = (
    '<!DOCTYPE html>\n<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> '
    '<![endif]-->\n<html lang="en-US">\n<head>\n<title>{host} | {status}: {reason}</title>\n'
    '<meta charset="UTF-8" />\n</head>\n<body>\n<div id="cf-wrapper">\n'
    '<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">{status}</span></h1>'
    '\n<p>{reason}</p>\n<span class="cf-footer-item">Cloudflare Ray ID: <strong>{ray}</strong>'
    "</span>\n</div>\n</body>\n</html>\n"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


def html_error_page(status: int, host: str = "api") -> Reply:
    """html_502 looks like Cloudflare; html_500 / html_503 look like nginx."""
    reason = _REASONS.get(status, "Error")
    headers: dict[str, str] = {}
    if status == 502:
        ray = secrets.token_hex(8)
        text = _CLOUDFLARE_PAGE.format(host=host, status=status, reason=reason, ray=ray)
        headers = {"Server": "cloudflare", "CF-RAY": f"{ray}-WAW"}
    else:
        text = _NGINX_PAGE.format(status=status, reason=reason)
        headers = {"Server": "nginx"}
    return Reply(
        status, raw=text.encode(), content_type="text/html; charset=UTF-8", headers=headers
    )


def format_retry_after(seconds: float) -> str:
    """Whole seconds as an integer ("2"), otherwise the decimal ("0.25")."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"


# --------------------------------------------------------------------------------------
# request parsing
# --------------------------------------------------------------------------------------


def _header_param(value: str, header: str, param: str) -> str | None:
    msg = email.message.Message()
    msg[header] = value
    got = msg.get_param(param, header=header)
    if got is None or isinstance(got, tuple):
        return None if got is None else str(email.utils.collapse_rfc2231_value(got))
    return str(got)


def parse_multipart(
    body: bytes, content_type: str
) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Text fields and file parts (name -> (filename, type, bytes)) of multipart/form-data."""
    form: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    boundary = _header_param(content_type, "content-type", "boundary")
    if not boundary:
        return form, files
    delimiter = b"--" + boundary.encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers = Headers()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "content-disposition", "name")
        if name is None:
            continue
        filename = _header_param(disposition, "content-disposition", "filename")
        if filename is not None:
            ctype = headers.get("content-type", "application/octet-stream")
            files[name] = (filename, ctype, content)
        else:
            form[name] = content.decode("utf-8", "replace")
    return form, files


# --------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------


class FakeProvider:
    """Base of the fake provider servers. Subclasses define routes and payload shapes."""

    name: ClassVar[str] = ""
    prefix: ClassVar[str] = ""  # documented path prefix, part of base_url
    task_id_prefix: ClassVar[str] = "task_"

    def __init__(self, *, api_key: str | None = None, generation_seconds: float = 0.5) -> None:
        self.api_key: str = api_key or f"test-{self.name}-key-0123456789"
        self.generation_seconds: float = generation_seconds
        self.requests: list[ProviderRequest] = []
        self.tasks: dict[str, FakeTask] = {}
        self.video_bytes: bytes = DEFAULT_MP4
        self.thumbnail_bytes: bytes = DEFAULT_JPEG
        self.thumbnail_content_type: str = "image/jpeg"
        # callbacks / webhooks
        self.callbacks_sent: list[tuple[str, JSON]] = []
        self.callback_deliveries: list[CallbackDelivery] = []
        self.duplicate_callbacks: int = 1
        self.callback_retries: int = 0  # extra tries after a non-2xx answer or connection error
        self.callback_retry_delay: float = 0.05
        self.callback_timeout: float = 5.0
        self._faults: list[Fault] = []
        self._offset = 0.0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._routes: list[Route] = self.build_routes() + self._media_routes()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Binds 127.0.0.1 on a free port; idempotent."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        self._wake = asyncio.Event()
        self._scheduler = asyncio.create_task(self._schedule_endings())

    async def stop(self) -> None:
        """Stops the server, pending callbacks and the task clock; idempotent."""
        if self._runner is None:
            return
        tasks = list(self._background)
        if self._scheduler is not None:
            tasks.append(self._scheduler)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._scheduler = None
        self._background.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__}.start() has not been called")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The value for <NAME>_BASE_URL (origin plus the documented path prefix)."""
        return self.origin + self.prefix

    def settings_overrides(self) -> dict[str, Any]:
        """Keyword overrides for bot.settings.Settings selecting this fake."""
        return {
            f"{self.name}_api_key": self.api_key,
            f"{self.name}_base_url": self.base_url,
            "sora_provider": self.name,
        }

    def env(self) -> dict[str, str]:
        """Environment variables selecting this fake."""
        return {k.upper(): str(v) for k, v in self.settings_overrides().items()}

    # -- clock ------------------------------------------------------------------------

    def now(self) -> float:
        """The fake clock: monotonic time plus what advance() added."""
        return time.monotonic() + self._offset

    def wall_now(self) -> float:
        """Unix time plus what advance() added."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Moves the fake clock forward (tasks progress/finish, callbacks fire)."""
        self._offset += seconds
        self._poke()

    def finish(self, task_id: str, outcome: Outcome | None = None) -> FakeTask:
        """Ends the task now (with its outcome, or ``outcome`` if given)."""
        task = self.tasks[task_id]
        if outcome is not None:
            task.outcome = outcome
        if not task.done(self.now()):
            task.forced_end = self.now()
        self._poke()
        return task

    def fail_task(self, task_id: str, outcome: Outcome = "provider_error") -> FakeTask:
        """Ends the task now as a failure of the given kind."""
        if outcome == "success":
            raise ValueError("fail_task() needs a failure outcome")
        return self.finish(task_id, outcome)

    def phase(self, task_id: str) -> TaskPhase:
        return self.tasks[task_id].phase(self.now())

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _schedule_endings(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            now = self.now()
            pending: list[float] = []
            for task in list(self.tasks.values()):
                if task.notified:
                    continue
                if task.done(now):
                    task.notified = True
                    try:
                        self.on_task_end(task)
                    except Exception as exc:  # pragma: no cover - a bug in a fake
                        print(f"fake {self.name}: on_task_end failed: {exc!r}")
                else:
                    pending.append(task.ends_at)
            timeout = max(0.0, min(pending) - now) if pending else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # -- tasks ------------------------------------------------------------------------

    def new_task_id(self) -> str:
        return self.task_id_prefix + secrets.token_hex(12)

    def new_task(
        self,
        prompt: str,
        mode: str,
        body: Any,
        *,
        model: str = "",
        callback_url: str | None = None,
        params: JSON | None = None,
        task_id: str | None = None,
    ) -> FakeTask:
        """Registers a task; prompt markers steer its outcome and duration."""
        duration = self.generation_seconds * (10 if "#slow" in prompt.lower() else 1)
        task = FakeTask(
            id=task_id or self.new_task_id(),
            prompt=prompt,
            mode=mode,
            body=body,
            created_at=self.now(),
            duration=duration,
            outcome=outcome_for_prompt(prompt),
            callback_url=callback_url,
            model=model,
            params=dict(params or {}),
            created_wall=self.wall_now(),
        )
        self.tasks[task.id] = task
        self._poke()
        return task

    def unfinished_tasks(self) -> list[FakeTask]:
        now = self.now()
        return [t for t in self.tasks.values() if not t.deleted and not t.done(now)]

    def on_task_end(self, task: FakeTask) -> None:
        """Called once when a task reaches its final state (subclasses send callbacks)."""

    # -- media ------------------------------------------------------------------------

    def media_url(self, task_id: str) -> str:
        return f"{self.origin}/cdn/{self.name}/videos/{task_id}.mp4"

    def thumbnail_url(self, task_id: str) -> str:
        return f"{self.origin}/cdn/{self.name}/thumbnails/{task_id}.jpg"

    def _media_routes(self) -> list[Route]:
        base = rf"/cdn/{re.escape(self.name)}"
        return [
            Route(
                ("GET", "HEAD"),
                re.compile(base + r"/videos/(?P<task_id>[^/]+)\.mp4"),
                "media",
                self._serve_video,
                auth=False,
            ),
            Route(
                ("GET", "HEAD"),
                re.compile(base + r"/thumbnails/(?P<task_id>[^/]+)\.jpg"),
                "media",
                self._serve_thumbnail,
                auth=False,
            ),
        ]

    def _finished_task(self, task_id: str) -> FakeTask | None:
        task = self.tasks.get(task_id)
        if task is None or task.deleted or task.phase(self.now()) != "succeeded":
            return None
        return task

    async def _serve_video(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        if self._finished_task(m["task_id"]) is None:
            return Reply(404, raw=b"Not Found", content_type="text/plain")
        return Reply(200, raw=self.video_bytes, content_type="video/mp4")

    async def _serve_thumbnail(self, req: ProviderRequest, m: re.Match[str]) -> Reply:
        if self._finished_task(m["task_id"]) is None:
            return Reply(404, raw=b"Not Found", content_type="text/plain")
        return Reply(200, raw=self.thumbnail_bytes, content_type=self.thumbnail_content_type)

    # -- faults -----------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        times: int = 1,
        path: str | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """The next ``times`` matching requests (path containing ``path``) get ``fault``.

        ``times < 0`` means until clear_faults(). unknown_task only hits status requests;
        content_policy_on_create and insufficient_credits only hit create (and remix) requests.
        """
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULT_KINDS)}")
        if times == 0:
            raise ValueError("times must be positive (or negative for 'until clear_faults()')")
        rule = Fault(fault, times, path, retry_after, delay)
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return list(self._faults)

    def _take_fault(self, req: ProviderRequest) -> Fault | None:
        for rule in self._faults:
            if rule.applies(req):
                rule.hits += 1
                if rule.times >= 0 and rule.hits >= rule.times:
                    self._faults.remove(rule)
                return rule
        return None

    # -- provider hooks (override) ------------------------------------------------------

    def build_routes(self) -> list[Route]:
        raise NotImplementedError

    def check_auth(self, req: ProviderRequest) -> bool:
        """Default: ``Authorization: Bearer <api_key>`` (scheme case-insensitive)."""
        value = req.headers.get("authorization") or ""
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    def error_reply(self, status: int, message: str, detail: str | None = None) -> Reply:
        raise NotImplementedError

    def auth_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(401, "Unauthorized", "Invalid or missing API key")

    def rate_limit_reply(self) -> Reply:
        return self.error_reply(429, "Rate limit exceeded", "Too many requests, retry later")

    def server_error_reply(self) -> Reply:
        return self.error_reply(500, "Internal server error", "Internal server error")

    def insufficient_credits_reply(self) -> Reply:
        return self.error_reply(402, "Insufficient credits", "Not enough credits for this task")

    def unknown_task_reply(self, task_id: str) -> Reply:
        return self.error_reply(404, "Task not found", f"Task not found: {task_id}")

    def content_policy_reply(self) -> Reply:
        return self.error_reply(400, "Content policy violation", "Prompt violates content policy")

    def not_found_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(404, "Not found", f"No route for {req.method} {req.path}")

    def bad_json_reply(self, req: ProviderRequest) -> Reply:
        return self.error_reply(400, "Invalid request", "Malformed JSON body")

    def requested_task_id(self, req: ProviderRequest, m: re.Match[str] | None) -> str:
        """The task id a status request asks about (for the unknown_task fault)."""
        if m is not None and "task_id" in m.groupdict():
            return m["task_id"]
        return req.query.get("taskId") or req.query.get("task_id") or ""

    # -- dispatch ---------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in self._routes:
            m = route.pattern.fullmatch(path)
            if m is not None and method in route.methods:
                return route, m
        return None, None

    async def _record(self, request: web.Request) -> ProviderRequest:
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        mime = ctype.split(";", 1)[0].strip().lower()
        parsed: Any = None
        form: dict[str, str] = {}
        files: dict[str, tuple[str, str, bytes]] = {}
        bad_json = False
        if mime == "application/json" or mime.endswith("+json"):
            if body:
                try:
                    parsed = json.loads(body)
                except ValueError:
                    bad_json = True
        elif mime == "multipart/form-data":
            form, files = parse_multipart(body, ctype)
        elif mime == "application/x-www-form-urlencoded":
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        return ProviderRequest(
            method=request.method,
            path=request.path,
            query={k: v for k, v in request.query.items()},
            headers=Headers(request.headers.items()),
            json=parsed,
            form=form,
            files=files,
            body=body,
            at=self.now(),
            bad_json=bad_json,
        )

    async def _process(
        self, req: ProviderRequest, route: Route | None, m: re.Match[str] | None
    ) -> Reply:
        if route is None or m is None:
            return self.not_found_reply(req)
        if route.auth and not self.check_auth(req):
            return self.auth_reply(req)
        if req.bad_json:
            return self.bad_json_reply(req)
        return await route.handler(req, m)

    def _fault_reply(self, rule: Fault, req: ProviderRequest, m: re.Match[str] | None) -> Reply:
        kind = rule.kind
        if kind == "rate_limit":
            reply = self.rate_limit_reply()
            if rule.retry_after is not None:
                reply.headers["Retry-After"] = format_retry_after(rule.retry_after)
            return reply
        if kind == "server_error":
            return self.server_error_reply()
        if kind.startswith("html_"):
            return html_error_page(int(kind.removeprefix("html_")), f"{self.name}.example")
        if kind == "unknown_task":
            return self.unknown_task_reply(self.requested_task_id(req, m))
        if kind == "auth":
            return self.auth_reply(req)
        if kind == "insufficient_credits":
            return self.insufficient_credits_reply()
        if kind == "content_policy_on_create":
            return self.content_policy_reply()
        raise AssertionError(kind)  # pragma: no cover

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        req = await self._record(request)
        self.requests.append(req)
        route, m = self._match(req.method, req.path)
        req.op = route.op if route is not None else "unknown"
        rule = self._take_fault(req)
        if rule is not None:
            req.fault = rule.kind
        if rule is not None and rule.kind == "connection_reset":
            _reset_connection(request)
            raise asyncio.CancelledError
        if rule is not None and rule.kind not in _PROCESSED_FAULTS:
            reply = self._fault_reply(rule, req, m)
        else:
            if rule is not None and rule.kind == "slow":
                await asyncio.sleep(rule.delay)
            reply = await self._process(req, route, m)
        if rule is not None and rule.kind == "truncated_json":
            full = reply.payload()
            reply = Reply(200, raw=full[: max(1, len(full) // 2)])
        elif rule is not None and rule.kind == "empty_body":
            reply = Reply(200, raw=b"")
        req.status = reply.status
        if reply.raw is None:
            req.response = reply.body
        return reply.to_response()

    # -- callbacks --------------------------------------------------------------------

    def send_callback(
        self, url: str, payload: JSON, task_id: str, headers: Callable[[bytes], dict[str, str]]
    ) -> None:
        """Schedules ``duplicate_callbacks`` POSTs of ``payload`` to ``url`` (in order)."""
        task = asyncio.get_running_loop().create_task(
            self._deliver_all(url, payload, task_id, headers)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _deliver_all(
        self, url: str, payload: JSON, task_id: str, headers: Callable[[bytes], dict[str, str]]
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        for copy in range(1, max(1, self.duplicate_callbacks) + 1):
            for attempt in range(1, self.callback_retries + 2):
                sent = dict(headers(body))
                sent.setdefault("Content-Type", "application/json")
                delivery = CallbackDelivery(url, payload, sent, task_id, attempt, copy)
                self.callback_deliveries.append(delivery)
                self.callbacks_sent.append((url, payload))
                ok = await self._post(delivery, body)
                delivery.done = True
                if ok:
                    break
                await asyncio.sleep(self.callback_retry_delay)

    async def _post(self, delivery: CallbackDelivery, body: bytes) -> bool:
        assert self._session is not None
        try:
            timeout = aiohttp.ClientTimeout(total=self.callback_timeout)
            async with self._session.post(
                delivery.url, data=body, headers=delivery.headers, timeout=timeout
            ) as resp:
                await resp.read()
                delivery.status = resp.status
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            return False

    async def wait_for_callbacks(self, count: int, timeout: float = 5.0) -> list[CallbackDelivery]:
        """Waits until ``count`` callback POSTs have completed (answered or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            done = [d for d in self.callback_deliveries if d.done]
            if len(done) >= count:
                return done
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(done)} of {count} callbacks delivered")
            await asyncio.sleep(0.01)

    # -- helpers for subclasses and tests ---------------------------------------------

    def requests_for(self, op: str) -> list[ProviderRequest]:
        return [r for r in self.requests if r.op == op]

    def last_request(self, op: str | None = None) -> ProviderRequest:
        for req in reversed(self.requests):
            if op is None or req.op == op:
                return req
        raise LookupError(f"no {op or ''} request recorded")


def _reset_connection(request: web.Request) -> None:
    """Closes the TCP connection with an RST (SO_LINGER 0), answering nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --------------------------------------------------------------------------------------
# small shared helpers
# --------------------------------------------------------------------------------------


def iso_utc(ts: float, *, millis: bool = False) -> str:
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
    text = dt.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
