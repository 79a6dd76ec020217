"""What crosses the HTTP wire: a recorded request, its uploads, and the fake's reply.

Kept apart from the route handlers because every concern (REST, interactions, validation,
faults) builds replies the same way. Two Discord facts live in this module (FACTS.md §3):
JSON bodies go out as exactly ``application/json`` with no charset, since discord.py only
parses them then, and errors have the shape ``{"message", "code", "errors"?}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .protocol import JSON


@dataclass
class RecordedRequest:
    """One REST request as received (and how the fake answered it)."""

    method: str
    path: str  # relative to the API base, e.g. "/channels/123/messages"
    query: dict[str, str]
    headers: dict[str, str]
    json: Any  # parsed JSON body, or payload_json for multipart, else None
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, bytes)
    status: int = 0  # status code the fake answered with
    response: Any = None  # JSON body the fake answered with (None for 204)
    at: float = 0.0  # loop.time() when received
    injected: bool = False  # answered by a fail_next()/delay_next() rule

    @property
    def authorized(self) -> bool:
        return "Authorization" in self.headers


@dataclass
class Upload:
    """One file part of a multipart request (``files[n]``)."""

    field: str
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class Reply:
    """What the fake answers: a JSON body, or ``raw`` bytes (e.g. a Cloudflare HTML page)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"

    def to_response(self) -> web.Response:
        if self.status == 204:
            return web.Response(status=204, headers=self.headers)
        if self.raw is not None:
            return web.Response(
                status=self.status,
                body=self.raw,
                headers=self.headers,
                content_type=self.content_type,
            )
        # Exactly "application/json" (no charset): discord.py only parses JSON then.
        return web.Response(
            status=self.status,
            body=json.dumps(self.body).encode(),
            headers=self.headers,
            content_type="application/json",
        )


def err(status: int, message: str, code: int = 0, errors: JSON | None = None) -> Reply:
    """A Discord error reply: ``{"message", "code", "errors"?}``."""
    body: JSON = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return Reply(status, body)


@dataclass
class Call:
    """One routed request: the route pattern's named groups, the parsed body, the uploads."""

    request: web.Request
    rec: RecordedRequest
    params: dict[str, str]
    uploads: list[Upload]

    @property
    def body(self) -> Any:
        return self.rec.json


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass
class RouteDef:
    """A REST route: method, path pattern (relative to the API base), handler, and whether
    it needs ``Authorization: Bot <token>``."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    bot_auth: bool
