"""The gateway: the websocket discord.py keeps open, and the events sent down it.

Models the handshake (HELLO, heartbeats, IDENTIFY -> READY + one GUILD_CREATE per guild),
RESUME with replay of missed events, op 7 RECONNECT and op 9 INVALID_SESSION, close codes,
member requests (op 8), and the DISPATCH of events with increasing ``s`` filtered by the
session's intents and shard. Frames are plain JSON text: discord.py asks for zlib but reads
text frames uncompressed. FACTS.md §2 lists the shapes discord.py needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from .protocol import (
    EPHEMERAL,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    JSON,
    PRIVILEGED_INTENTS,
)
from .state import FakeState

if TYPE_CHECKING:
    from .models import FakeGuild


class GatewayConn:
    """One websocket connection: frames go out in order through ``queue`` and ``writer``."""

    def __init__(self, ws: web.WebSocketResponse, query: dict[str, str]) -> None:
        self.ws = ws
        self.query = query
        self.queue: asyncio.Queue[JSON | None] = asyncio.Queue()
        self.session: Session | None = None
        self.writer: asyncio.Task[None] | None = None


class Session:
    """A gateway session: its ``seq``, the log of dispatches a RESUME replays, and the
    connection it is attached to (None between a drop and the resume)."""

    def __init__(self, session_id: str, intents: int, shard: list[int] | None) -> None:
        self.id = session_id
        self.intents = intents
        self.shard = shard
        self.seq = 0
        self.log: list[JSON] = []
        self.conn: GatewayConn | None = None
        self.ready = False

    def has_guild(self, guild_id: int) -> bool:
        if not self.shard:
            return True
        shard_id, count = self.shard
        return (guild_id >> 22) % max(count, 1) == shard_id


class GatewayMixin(FakeState):
    """The websocket server and event dispatch."""

    heartbeat_interval_ms = 41250

    async def wait_identified(self, timeout: float = 10) -> None:
        """Until a client sent IDENTIFY (or RESUME) and got READY + GUILD_CREATEs."""

        def ready() -> bool:
            session = self._active_session
            return bool(session and session.ready and session.conn is not None)

        await self._signal.wait_for(ready, timeout, lambda: "gateway IDENTIFY" + self._recent())

    @staticmethod
    def _frame(op: int, d: Any = None) -> JSON:
        return {"op": op, "d": d, "s": None, "t": None}

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            return web.Response(status=503, text="shutting down")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True, timeout=2.0)
        await ws.prepare(request)
        conn = GatewayConn(ws, dict(request.query))
        self._conns.add(conn)
        conn.writer = asyncio.create_task(
            self._gateway_writer(conn), name="fake-discord-gateway-writer"
        )
        conn.queue.put_nowait(
            self._frame(
                10,
                {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ['["fake-gateway"]']},
            )
        )
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                    except ValueError:
                        await self._close_conn(conn, 4002, "Error while decoding payload.")
                        break
                    self.gateway_received.append(payload)
                    await self._on_gateway_payload(conn, payload)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await self._close_conn(conn, 4002, "Error while decoding payload.")
                    break
                else:
                    break
        finally:
            self._conns.discard(conn)
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.writer, 2)
            self._signal.fire()
        return ws

    async def _gateway_writer(self, conn: GatewayConn) -> None:
        while True:
            item = await conn.queue.get()
            try:
                if item is None:
                    return
                if "__close__" in item:
                    await conn.ws.close(
                        code=int(item["__close__"]), message=str(item.get("reason", "")).encode()
                    )
                    continue
                if conn.ws.closed:
                    continue
                await conn.ws.send_str(json.dumps(item))
                self.gateway_sent.append(item)
            except Exception:  # the socket went away; resumable events stay in the session log
                continue
            finally:
                conn.queue.task_done()

    async def _close_conn(self, conn: GatewayConn, code: int, reason: str) -> None:
        conn.queue.put_nowait({"__close__": code, "reason": reason})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.queue.join(), 5)

    async def _on_gateway_payload(self, conn: GatewayConn, payload: Any) -> None:
        if not isinstance(payload, dict):
            await self._close_conn(conn, 4002, "Error while decoding payload.")
            return
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:
            self.heartbeats += 1
            conn.queue.put_nowait(self._frame(11))
        elif op == 2:
            await self._identify(conn, data if isinstance(data, dict) else {})
        elif op == 6:
            await self._resume(conn, data if isinstance(data, dict) else {})
        elif conn.session is None:
            await self._close_conn(conn, 4003, "Not authenticated.")
        elif op == 3:
            self.presence_updates.append(data if isinstance(data, dict) else {})
        elif op == 4:
            pass  # voice state update: no voice in the fake
        elif op == 8:
            self._request_members(conn.session, data if isinstance(data, dict) else {})
        else:
            await self._close_conn(conn, 4001, "Unknown opcode.")

    def _token_ok(self, token: Any) -> bool:
        return token in (self.token, f"Bot {self.token}")

    async def _identify(self, conn: GatewayConn, data: JSON) -> None:
        self.identify_payloads.append(data)
        if not self._token_ok(data.get("token")):
            await self._close_conn(conn, 4004, "Authentication failed.")
            return
        if conn.session is not None:
            await self._close_conn(conn, 4005, "Already authenticated.")
            return
        intents = int(data.get("intents") or 0)
        if intents & PRIVILEGED_INTENTS and not self.privileged_intents_enabled:
            await self._close_conn(conn, 4014, "Disallowed intent(s).")
            return
        shard = data.get("shard")
        session = Session(secrets.token_hex(16), intents, list(shard) if shard else None)
        self._sessions[session.id] = session
        self._active_session = session
        session.conn = conn
        conn.session = session
        self.identify_count += 1
        ready: JSON = {
            "v": 10,
            "user_settings": {},
            "user": {**self.bot_user, "verified": True, "mfa_enabled": False, "email": None},
            "session_type": "normal",
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guilds": [
                {"id": str(g), "unavailable": True} for g in self.guilds if session.has_guild(g)
            ],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east", "us-central"],
            "auth": {},
            "application": {"id": str(self.app_id), "flags": self.application_flags},
            "_trace": ['["fake-gateway",{"micros":1}]'],
        }
        if session.shard:
            ready["shard"] = session.shard
        self._dispatch_to(session, "READY", ready)
        for gid, guild in list(self.guilds.items()):
            if session.has_guild(gid):
                self._dispatch_to(
                    session, "GUILD_CREATE", self._guild_create_payload(guild, session)
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.queue.join(), 5)
        session.ready = True
        self._signal.fire()

    async def _resume(self, conn: GatewayConn, data: JSON) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or not self._token_ok(data.get("token")):
            conn.queue.put_nowait(self._frame(9, False))
            return
        seq = int(data.get("seq") or 0)
        old = session.conn
        if old is not None and old is not conn:
            old.session = None
        session.conn = conn
        conn.session = session
        self._active_session = session
        for payload in session.log:
            if payload["s"] > seq:
                conn.queue.put_nowait(payload)
        self._dispatch_to(session, "RESUMED", {"_trace": ['["fake-gateway"]']})
        self.resume_count += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.queue.join(), 5)
        self._signal.fire()

    def _request_members(self, session: Session, data: JSON) -> None:
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        members = guild.members
        user_ids = data.get("user_ids")
        not_found: list[str] = []
        if user_ids is not None:
            wanted = {str(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m["user"]["id"] in wanted]
            not_found = sorted(wanted - {m["user"]["id"] for m in members})
        else:
            query = str(data.get("query") or "").lower()
            members = [m for m in members if m["user"]["username"].lower().startswith(query)]
            limit = int(data.get("limit") or 0)
            if limit:
                members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": copy.deepcopy(members),
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _guild_create_payload(self, guild: FakeGuild, session: Session) -> JSON:
        return guild.to_gateway(all_members=bool(session.intents & INTENT_GUILD_MEMBERS))

    def _dispatch_to(self, session: Session, event: str, data: Any) -> None:
        session.seq += 1
        payload: JSON = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.log.append(payload)
        if session.conn is not None:
            session.conn.queue.put_nowait(payload)

    def _session_for(self, guild_id: int | None) -> Session | None:
        """The connected session that gets `guild_id`'s events: its shard's (several bot
        processes may each hold some shards); with one session, that one, as before.
        Events of no guild (DMs) go to shard 0's, as Discord sends them."""
        active = self._active_session

        def serves(session: Session) -> bool:
            if guild_id is not None:
                return session.has_guild(guild_id)
            return not session.shard or session.shard[0] == 0

        if active is not None and active.conn is not None and active.ready and serves(active):
            return active
        for session in reversed(list(self._sessions.values())):
            if session.conn is not None and session.ready and serves(session):
                return session
        return active

    def dispatch_nowait(
        self, event: str, data: Any, *, intent: int | None = None, guild_id: int | None = None
    ) -> bool:
        """Queues a DISPATCH to the connected bot (in order) holding `guild_id`'s shard;
        False if no session/intent."""
        session = self._session_for(guild_id)
        if session is None or (intent is not None and not session.intents & intent):
            return False
        self._dispatch_to(session, event, data)
        return True

    async def dispatch(
        self, event: str, data: Any, *, intent: int | None = None, guild_id: int | None = None
    ) -> bool:
        """Like dispatch_nowait, then waits until the frame was written to the socket."""
        sent = self.dispatch_nowait(event, data, intent=intent, guild_id=guild_id)
        if sent:
            await self._flush(guild_id)
        return sent

    async def _flush(self, guild_id: int | None = None) -> None:
        session = self._session_for(guild_id)
        if session is not None and session.conn is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.conn.queue.join(), 5)

    def _dispatch_guild_event(self, guild: FakeGuild, event: str, data: Any, intent: int) -> None:
        if guild.id not in self.guilds:
            return  # still being built
        session = self._session_for(guild.id)
        if session is None or not session.ready or not session.has_guild(guild.id):
            return
        if session.intents & intent:
            self._dispatch_to(session, event, data)

    async def request_reconnect(self) -> None:
        """Sends op 7 RECONNECT: discord.py closes and RESUMEs."""
        session = self._active_session
        if session is not None and session.conn is not None:
            session.conn.queue.put_nowait(self._frame(7))

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Sends op 9 INVALID_SESSION."""
        session = self._active_session
        if session is not None and session.conn is not None:
            session.conn.queue.put_nowait(self._frame(9, resumable))

    async def drop_connection(self, code: int = 4000, reason: str = "Unknown error.") -> None:
        """Closes the bot's gateway socket with ``code`` (4000 -> it resumes)."""
        session = self._active_session
        if session is not None and session.conn is not None:
            await self._close_conn(session.conn, code, reason)

    def _message_event(self, msg: JSON, guild: FakeGuild | None) -> JSON:
        event = copy.deepcopy(msg)
        if guild is not None:
            event["guild_id"] = str(guild.id)
            member = guild.get_member(int(msg["author"]["id"]))
            if member is not None:
                event["member"] = {k: copy.deepcopy(v) for k, v in member.items() if k != "user"}
        return event

    def _dispatch_message(self, event: str, msg: JSON, guild: FakeGuild | None) -> None:
        if int(msg.get("flags") or 0) & EPHEMERAL:
            return
        session = self._session_for(None if guild is None else guild.id)
        if session is None or not session.ready:
            return
        intent = INTENT_GUILD_MESSAGES if guild is not None else INTENT_DIRECT_MESSAGES
        if not session.intents & intent or (guild is not None and not session.has_guild(guild.id)):
            return
        payload = self._message_event(msg, guild)
        own = msg["author"]["id"] == self.bot_user["id"]
        mentioned = any(u.get("id") == self.bot_user["id"] for u in msg.get("mentions") or [])
        if (
            not session.intents & INTENT_MESSAGE_CONTENT
            and guild is not None
            and not own
            and not mentioned
        ):
            payload.update(content="", embeds=[], attachments=[], components=[])
        self._dispatch_to(session, event, payload)

    def _dispatch_delete(self, msg: JSON, guild: FakeGuild | None) -> None:
        data: JSON = {"id": msg["id"], "channel_id": msg["channel_id"]}
        if guild is not None:
            data["guild_id"] = str(guild.id)
        self.dispatch_nowait(
            "MESSAGE_DELETE",
            data,
            intent=INTENT_GUILD_MESSAGES if guild else INTENT_DIRECT_MESSAGES,
        )
