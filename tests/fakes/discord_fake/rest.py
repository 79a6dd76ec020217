"""The REST front door, and the plain bot-token routes (identity, channels, guilds).

Every request under ``/api/v{n}/`` is recorded in :attr:`requests`, run through the fault
rules (faults.py), checked for ``Authorization: Bot <token>`` on bot routes (callbacks,
followups and ``@original`` carry none), and handed to the route table in server.py.
Bodies are JSON or multipart (``payload_json`` + ``files[n]``). This module also serves the
fake CDN and answers the bot-token routes: ``/users/@me``, application info, ``/gateway``,
channels, messages (``nonce`` + ``enforce_nonce`` de-duplication, closed DMs), history,
typing and guild lookups. Command routes live in commands.py, interaction routes in
responses.py. FACTS.md §3, §4.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import mimetypes
import re
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from .faults import FaultsMixin, fault_reply
from .messages import MessagesMixin
from .protocol import EPHEMERAL, IS_COMPONENTS_V2, JSON, SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS
from .validation import check_upload_sizes, validate_message
from .wire import Call, RecordedRequest, Reply, Upload, err

if TYPE_CHECKING:
    from .models import FakeGuild


class RestMixin(MessagesMixin, FaultsMixin):
    """HTTP plumbing, the CDN, and the identity/channel/message/guild routes."""

    async def wait_request(
        self,
        method: str,
        path_regex: str,
        *,
        count: int = 1,
        timeout: float = 10,
    ) -> RecordedRequest:
        """Until ``count`` answered requests match; returns the last of them."""
        pattern = re.compile(path_regex)

        def found() -> RecordedRequest | None:
            hits = self.requests_matching(method, pattern.pattern)
            hits = [r for r in hits if r.status]
            return hits[count - 1] if len(hits) >= count else None

        return await self._signal.wait_for(
            found, timeout, lambda: f"{method} {path_regex}" + self._recent()
        )

    def requests_matching(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [
            r for r in self.requests if method.upper() in ("*", r.method) and pattern.search(r.path)
        ]

    async def _read_body(self, request: web.Request) -> tuple[Any, list[Upload]]:
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            uploads: list[Upload] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                raw = bytes(await part.read(decode=False))
                if part.name == "payload_json":
                    payload = json.loads(raw.decode())
                else:
                    uploads.append(
                        Upload(
                            part.name or "",
                            part.filename or part.name or "file",
                            raw,
                            part.headers.get("Content-Type"),
                        )
                    )
            return payload, uploads
        raw_body = await request.read()
        if not raw_body:
            return None, []
        return json.loads(raw_body.decode()), []

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        rec = RecordedRequest(
            method=request.method,
            path="/" + request.match_info["tail"],
            query=dict(request.query),
            headers={str(k): v for k, v in request.headers.items()},
            json=None,
            at=loop.time(),
        )
        uploads: list[Upload] = []
        bad_body = False
        try:
            rec.json, uploads = await self._read_body(request)
        except (ValueError, UnicodeDecodeError):
            bad_body = True
        rec.files = [(u.filename, u.data) for u in uploads]
        self.requests.append(rec)
        reply: Reply | None = None
        rule = self._take_fault(rec)
        if rule is not None:
            rec.injected = True
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.drop and not rule.after:
                return self._drop(request, rec)
            if rule.status is not None and not rule.after:
                reply = fault_reply(rule)
        if reply is None:
            if bad_body:
                reply = err(400, "The request body contains invalid JSON.", 50109)
            else:
                reply = await self._route(request, rec, uploads)
        if rule is not None and rule.after:
            if rule.drop:
                return self._drop(request, rec)
            if rule.status is not None:
                reply = fault_reply(rule)
        rec.status = reply.status
        rec.response = reply.body
        self._signal.fire()
        return reply.to_response()

    def _drop(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        """Abort the TCP connection: the client sees it closed with no answer (status 0)."""
        rec.status = 0
        if request.transport is not None:
            request.transport.abort()
        self._signal.fire()
        return web.Response(status=204)  # never reaches the client

    async def _route(
        self, request: web.Request, rec: RecordedRequest, uploads: list[Upload]
    ) -> Reply:
        path_known = False
        for route in self._routes:
            match = route.pattern.fullmatch(rec.path)
            if match is None:
                continue
            path_known = True
            if route.method != rec.method:
                continue
            if route.bot_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                return err(401, "401: Unauthorized", 0)
            return await route.handler(Call(request, rec, match.groupdict(), uploads))
        if path_known:
            return err(405, "405: Method Not Allowed", 0)
        return err(404, "404: Not Found", 0)

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        self.cdn_requests.append(str(request.rel_url))
        data = self.attachment_data.get(int(request.match_info["attachment"]))
        if data is None:
            return web.Response(status=404, text="Not Found")
        ctype = (
            mimetypes.guess_type(request.match_info["filename"])[0] or "application/octet-stream"
        )
        return web.Response(body=data, content_type=ctype)

    async def _r_me(self, call: Call) -> Reply:
        return Reply(
            200,
            {
                **self.bot_user,
                "verified": True,
                "mfa_enabled": False,
                "email": None,
                "locale": "en-US",
            },
        )

    async def _r_get_user(self, call: Call) -> Reply:
        user = self.users.get(int(call.params["user"]))
        return Reply(200, user) if user else err(404, "Unknown User", 10013)

    async def _r_app_info(self, call: Call) -> Reply:
        return Reply(
            200,
            {
                "id": str(self.app_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(str(self.app_id).encode()).hexdigest(),
                "owner": self.app_owner,
                "team": None,
                "flags": self.application_flags,
                "bot": self.bot_user,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}},
                "tags": [],
            },
        )

    async def _r_gateway(self, call: Call) -> Reply:
        return Reply(200, {"url": self.gateway_url})

    async def _r_gateway_bot(self, call: Call) -> Reply:
        return Reply(
            200,
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14400000,
                    "max_concurrency": 1,
                },
            },
        )

    async def _r_channel_history(self, call: Call) -> Reply:
        """GET /channels/{id}/messages: newest first, `limit` (1-100), `before` a message id.

        As on Discord, public interaction responses and followups (which carry
        `interaction_metadata` and `webhook_id`) are part of the history; ephemeral ones
        are not."""
        channel_id = int(call.params["channel"])
        if not self._find_channel(channel_id):
            return err(404, "Unknown Channel", 10003)
        limit = max(1, min(100, int(call.rec.query.get("limit", "50"))))
        before = int(call.rec.query.get("before", "0") or 0)
        candidates = {int(m["id"]): m for m in self.channel_messages.get(channel_id, [])}
        for mid, m in self.messages.items():
            if (
                "interaction_metadata" in m
                and int(m["channel_id"]) == channel_id
                and not int(m.get("flags") or 0) & EPHEMERAL
            ):
                candidates.setdefault(mid, m)
        live = [
            m
            for m in candidates.values()
            if int(m["id"]) not in self.deleted_messages and (not before or int(m["id"]) < before)
        ]
        newest = sorted(live, key=lambda m: int(m["id"]), reverse=True)[:limit]
        return Reply(200, copy.deepcopy(newest))

    def forget_nonces(self) -> None:
        """As if Discord's nonce de-duplication window ("a few minutes") had passed."""
        self._nonces.clear()

    async def _r_get_channel(self, call: Call) -> Reply:
        found = self._find_channel(int(call.params["channel"]))
        return Reply(200, copy.deepcopy(found[0])) if found else err(404, "Unknown Channel", 10003)

    async def _r_create_dm(self, call: Call) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        try:
            recipient = int(body.get("recipient_id") or 0)
        except (TypeError, ValueError):
            recipient = 0
        if recipient not in self.users or recipient == self.app_id:
            return err(400, "Invalid Recipient(s)", 50033)
        return Reply(200, copy.deepcopy(self.dm_channel_for(recipient)))

    async def _r_create_message(self, call: Call) -> Reply:
        channel_id = int(call.params["channel"])
        found = self._find_channel(channel_id)
        if found is None:
            return err(404, "Unknown Channel", 10003)
        channel, guild = found
        if guild is None and int(channel["recipients"][0]["id"]) in self.dms_closed:
            return err(403, "Cannot send messages to this user", 50007)
        invalid = check_upload_sizes(call.uploads, self.upload_limit) or validate_message(
            call.body, call.uploads, require_content=True
        )
        if invalid is not None:
            return invalid
        body: JSON = call.body if isinstance(call.body, dict) else {}
        nonce = body.get("nonce")
        if (
            body.get("enforce_nonce")
            and nonce is not None
            and (channel_id, str(nonce)) in self._nonces
        ):
            return Reply(200, copy.deepcopy(self._nonces[(channel_id, str(nonce))]))
        flags = int(body.get("flags") or 0) & (
            SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2
        )
        msg = self._new_message(
            channel_id=channel_id,
            author=self.bot_user,
            body=body,
            uploads=call.uploads,
            msg_type=0,
            flags=flags,
            guild=guild,
        )
        if nonce is not None:
            self._nonces[(channel_id, str(nonce))] = msg
        self.channel_messages.setdefault(channel_id, []).append(msg)
        channel["last_message_id"] = msg["id"]
        self._dispatch_message("MESSAGE_CREATE", msg, guild)
        return Reply(200, copy.deepcopy(msg))

    def _channel_message(self, call: Call) -> tuple[JSON | None, FakeGuild | None, Reply | None]:
        channel_id = int(call.params["channel"])
        found = self._find_channel(channel_id)
        if found is None:
            return None, None, err(404, "Unknown Channel", 10003)
        msg = self.messages.get(int(call.params["mid"]))
        if (
            msg is None
            or int(msg["channel_id"]) != channel_id
            or int(msg["id"]) in self.deleted_messages
        ):
            return None, found[1], err(404, "Unknown Message", 10008)
        return msg, found[1], None

    async def _r_get_message(self, call: Call) -> Reply:
        msg, _, error = self._channel_message(call)
        return (
            Reply(200, copy.deepcopy(msg)) if msg else (error or err(404, "Unknown Message", 10008))
        )

    async def _r_edit_message(self, call: Call) -> Reply:
        msg, guild, error = self._channel_message(call)
        if msg is None:
            return error or err(404, "Unknown Message", 10008)
        body = call.body if isinstance(call.body, dict) else {}
        if msg["author"]["id"] != self.bot_user["id"] and set(body) - {"flags"}:
            return err(403, "Cannot edit a message authored by another user", 50005)
        invalid = check_upload_sizes(call.uploads, self.upload_limit) or validate_message(
            body, call.uploads, require_content=False
        )
        if invalid is not None:
            return invalid
        self._apply_edit(msg, body, call.uploads)
        self._dispatch_message("MESSAGE_UPDATE", msg, guild)
        return Reply(200, copy.deepcopy(msg))

    async def _r_delete_message(self, call: Call) -> Reply:
        msg, guild, error = self._channel_message(call)
        if msg is None:
            return error or err(404, "Unknown Message", 10008)
        self.deleted_messages.add(int(msg["id"]))
        self._dispatch_delete(msg, guild)
        return Reply(204)

    async def _r_typing(self, call: Call) -> Reply:
        if self._find_channel(int(call.params["channel"])) is None:
            return err(404, "Unknown Channel", 10003)
        return Reply(204)

    async def _r_get_guild(self, call: Call) -> Reply:
        guild = self.guilds.get(int(call.params["guild"]))
        if guild is None:
            return err(404, "Unknown Guild", 10004)
        payload = guild.to_rest()
        if str(call.rec.query.get("with_counts", "")).lower() in ("1", "true"):
            payload.update(
                approximate_member_count=len(guild.members), approximate_presence_count=0
            )
        return Reply(200, payload)

    async def _r_guild_channels(self, call: Call) -> Reply:
        guild = self.guilds.get(int(call.params["guild"]))
        return (
            Reply(200, copy.deepcopy(guild.channels)) if guild else err(404, "Unknown Guild", 10004)
        )

    async def _r_get_member(self, call: Call) -> Reply:
        guild = self.guilds.get(int(call.params["guild"]))
        if guild is None:
            return err(404, "Unknown Guild", 10004)
        member = guild.get_member(int(call.params["user"]))
        return Reply(200, copy.deepcopy(member)) if member else err(404, "Unknown Member", 10007)
