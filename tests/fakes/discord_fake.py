"""A loopback fake of Discord's REST API and gateway for tests.

The real, unmodified discord.py client talks to it: point ``discord.http.Route.BASE`` at
:attr:`FakeDiscord.api_base` and ``DiscordWebSocket.DEFAULT_GATEWAY`` at
:attr:`FakeDiscord.gateway_url` (or use :meth:`FakeDiscord.patch_client` / :func:`run_bot`).

Payload shapes follow /work/shared/discord.md (sections 1-6). Everything runs on 127.0.0.1;
every REST request is recorded in :attr:`FakeDiscord.requests`.

Quick use::

    fake = FakeDiscord()
    await fake.start()
    guild = fake.add_guild("Test Guild")
    alice = fake.add_user("alice")
    async with run_bot(bot, fake):
        options = FakeDiscord.sub("quota", "set", daily=5)
        inter = await fake.send_command(guild, alice, "sora", options)
        final = await inter.wait_final()
        assert final["ephemeral"] and "5" in inter.text()
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import json
import math
import mimetypes
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

__all__ = [
    "ALL_PERMISSIONS",
    "DEFAULT_APP_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "EPHEMERAL",
    "LOADING",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FaultRule",
    "RecordedRequest",
    "message_text",
    "run_bot",
    "snowflake_time",
]

JSON = dict[str, Any]
T = TypeVar("T")

DISCORD_EPOCH_MS = 1_420_070_400_000

# Message flags
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15
_SENDABLE_FLAGS = SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2

# Permissions
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS: int = discord.Permissions.all().value
DEFAULT_APP_PERMISSIONS: int = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, attach_files=True
).value
DEFAULT_EVERYONE_PERMISSIONS: int = discord.Permissions(
    create_instant_invite=True,
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    read_message_history=True,
    use_application_commands=True,
    change_nickname=True,
    connect=True,
    speak=True,
    stream=True,
    use_voice_activation=True,
).value

# Gateway intents
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
_PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Interaction types and callback types
INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5
_ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    INTERACTION_COMMAND: frozenset({4, 5, 9}),
    INTERACTION_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    INTERACTION_AUTOCOMPLETE: frozenset({8}),
    INTERACTION_MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
WEBHOOK_TOKEN_TTL = 15 * 60.0
_COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
_USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


class SnowflakeFactory:
    """Mints current, strictly increasing snowflakes: ``(ms - DISCORD_EPOCH) << 22``."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate


def snowflake_time(snowflake: int) -> datetime.datetime:
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


def _iso(dt: datetime.datetime | None = None) -> str:
    return (dt or datetime.datetime.now(datetime.UTC)).isoformat()


def _text_of_components(components: list[Any]) -> list[str]:
    out: list[str] = []
    for comp in components:
        if not isinstance(comp, dict):
            continue
        if comp.get("type") == 10 and comp.get("content"):
            out.append(str(comp["content"]))
        for key in ("components", "accessory", "component"):
            inner = comp.get(key)
            if isinstance(inner, list):
                out.extend(_text_of_components(inner))
            elif isinstance(inner, dict):
                out.extend(_text_of_components([inner]))
    return out


def message_text(message: JSON) -> str:
    """Content + embed title/description/author/fields/footer + v2 text displays, one per line."""
    parts: list[str] = []
    if message.get("content"):
        parts.append(str(message["content"]))
    for embed in message.get("embeds") or []:
        author = embed.get("author") or {}
        if author.get("name"):
            parts.append(str(author["name"]))
        for key in ("title", "description"):
            if embed.get(key):
                parts.append(str(embed[key]))
        for fld in embed.get("fields") or []:
            for key in ("name", "value"):
                if fld.get(key):
                    parts.append(str(fld[key]))
        footer = embed.get("footer") or {}
        if footer.get("text"):
            parts.append(str(footer["text"]))
    parts.extend(_text_of_components(message.get("components") or []))
    return "\n".join(parts)


def _walk_components(components: list[Any]) -> Iterator[JSON]:
    for comp in components:
        if not isinstance(comp, dict):
            continue
        yield comp
        for key in ("components", "accessory", "component"):
            inner = comp.get(key)
            if isinstance(inner, list):
                yield from _walk_components(inner)
            elif isinstance(inner, dict):
                yield from _walk_components([inner])


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    if isinstance(value, str):
        return 3
    if isinstance(value, dict):
        if "filename" in value:
            return 11
        if "username" in value:
            return 6
        if "permissions" in value and ("color" in value or "colors" in value):
            return 8
        if "type" in value and "name" in value:
            return 7
    raise TypeError(f"cannot infer an application command option type for {value!r}")


class _Signal:
    """A broadcast "something changed" notification with predicate waits."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float, what: Callable[[], str] | str
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result is not None and result is not False:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                desc = what() if callable(what) else what
                raise TimeoutError(f"timed out after {timeout}s waiting for {desc}")
            if self._event is None:
                self._event = asyncio.Event()
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


class _FormErrors:
    """Collects Discord "Invalid Form Body" (code 50035) errors keyed by path."""

    def __init__(self) -> None:
        self.errors: JSON = {}

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        node = self.errors
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path: tuple[str | int, ...], value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def bad_len(self, path: tuple[str | int, ...], value: Any, low: int, high: int) -> None:
        size = len(value) if isinstance(value, str | list) else 0
        if not low <= size <= high:
            self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")

    def __bool__(self) -> bool:
        return bool(self.errors)


# --------------------------------------------------------------------------------------
# public data classes
# --------------------------------------------------------------------------------------


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
class FaultRule:
    """A fault injected with :meth:`FakeDiscord.fail_next` (status None = delay only)."""

    method: str
    pattern: re.Pattern[str]
    status: int | None
    times: int
    retry_after: float | None = None
    body: Any = None
    global_: bool = False
    delay: float = 0.0
    hits: int = 0
    after: bool = False  # carry the request out first, then answer with the fault
    drop: bool = False  # close the connection instead of answering


@dataclass
class _Upload:
    field: str
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class _Reply:
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


def _err(status: int, message: str, code: int = 0, errors: JSON | None = None) -> _Reply:
    body: JSON = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _Reply(status, body)


def _form_error(errors: _FormErrors) -> _Reply:
    return _err(400, "Invalid Form Body", 50035, errors.errors)


@dataclass
class _Call:
    request: web.Request
    rec: RecordedRequest
    params: dict[str, str]
    uploads: list[_Upload]

    @property
    def body(self) -> Any:
        return self.rec.json


_Handler = Callable[[_Call], Awaitable[_Reply]]


@dataclass
class _RouteDef:
    method: str
    pattern: re.Pattern[str]
    handler: _Handler
    bot_auth: bool


class _GatewayConn:
    def __init__(self, ws: web.WebSocketResponse, query: dict[str, str]) -> None:
        self.ws = ws
        self.query = query
        self.queue: asyncio.Queue[JSON | None] = asyncio.Queue()
        self.session: _Session | None = None
        self.writer: asyncio.Task[None] | None = None


class _Session:
    def __init__(self, session_id: str, intents: int, shard: list[int] | None) -> None:
        self.id = session_id
        self.intents = intents
        self.shard = shard
        self.seq = 0
        self.log: list[JSON] = []
        self.conn: _GatewayConn | None = None
        self.ready = False

    def has_guild(self, guild_id: int) -> bool:
        if not self.shard:
            return True
        shard_id, count = self.shard
        return (guild_id >> 22) % max(count, 1) == shard_id


# --------------------------------------------------------------------------------------
# guilds and interactions
# --------------------------------------------------------------------------------------


class FakeGuild:
    """A guild the fake bot is a member of. Mutations after IDENTIFY are dispatched."""

    def __init__(self, fake: FakeDiscord, *, guild_id: int, name: str, owner_id: int) -> None:
        self._fake = fake
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        self.premium_tier = 0
        self.joined_at = _iso()
        self.channels: list[JSON] = []
        self.roles: list[JSON] = [
            self._role_payload(guild_id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS, position=0)
        ]
        self.members: list[JSON] = []

    # -- builders -----------------------------------------------------------------

    def _role_payload(self, role_id: int, name: str, permissions: int, *, position: int) -> JSON:
        return {
            "id": str(role_id),
            "name": name,
            "permissions": str(permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    @property
    def everyone_role(self) -> JSON:
        return self.roles[0]

    @property
    def default_channel(self) -> JSON:
        for channel in self.channels:
            if channel["type"] in (0, 5):
                return channel
        raise LookupError(f"guild {self.id} has no text channel")

    def add_text_channel(
        self,
        name: str,
        *,
        channel_id: int | None = None,
        permission_overwrites: list[JSON] | None = None,
        parent_id: int | None = None,
    ) -> JSON:
        channel: JSON = {
            "id": str(channel_id or self._fake.new_id()),
            "type": 0,
            "guild_id": str(self.id),
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": copy.deepcopy(permission_overwrites or []),
            "parent_id": str(parent_id) if parent_id else None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }
        self.channels.append(channel)
        self._fake._dispatch_guild_event(
            self, "CHANNEL_CREATE", copy.deepcopy(channel), INTENT_GUILDS
        )
        return channel

    def add_role(self, name: str, *, permissions: int = 0, role_id: int | None = None) -> JSON:
        role = self._role_payload(
            role_id or self._fake.new_id(), name, permissions, position=len(self.roles)
        )
        self.roles.append(role)
        self._fake._dispatch_guild_event(
            self,
            "GUILD_ROLE_CREATE",
            {"guild_id": str(self.id), "role": copy.deepcopy(role)},
            INTENT_GUILDS,
        )
        return role

    def add_member(self, user: JSON, *, roles: list[int] | None = None) -> JSON:
        """Adds (or updates the roles of) a member; returns the member payload (with ``user``)."""
        existing = self.get_member(int(user["id"]))
        if existing is not None:
            if roles is not None:
                existing["roles"] = [str(r) for r in roles]
            return existing
        self._fake.users.setdefault(int(user["id"]), user)
        member: JSON = {
            "user": user,
            "roles": [str(r) for r in roles or []],
            "joined_at": _iso(),
            "premium_since": None,
            "nick": None,
            "avatar": None,
            "banner": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        self.members.append(member)
        self._fake._dispatch_guild_event(
            self,
            "GUILD_MEMBER_ADD",
            {"guild_id": str(self.id), **copy.deepcopy(member)},
            INTENT_GUILD_MEMBERS,
        )
        return member

    def get_member(self, user_id: int) -> JSON | None:
        for member in self.members:
            if int(member["user"]["id"]) == int(user_id):
                return member
        return None

    def get_channel(self, channel_id: int) -> JSON | None:
        for channel in self.channels:
            if int(channel["id"]) == int(channel_id):
                return channel
        return None

    def channel_named(self, name: str) -> JSON:
        for channel in self.channels:
            if channel["name"] == name:
                return channel
        raise LookupError(f"no channel named {name!r} in guild {self.id}")

    def to_rest(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": copy.deepcopy(self.roles),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": self.channels[0]["id"] if self.channels else None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
        }

    def to_gateway(self, *, all_members: bool) -> JSON:
        bot_id = str(self._fake.bot_user["id"])
        members = [m for m in self.members if all_members or m["user"]["id"] == bot_id]
        payload = self.to_rest()
        payload.update(
            {
                "joined_at": self.joined_at,
                "large": False,
                "unavailable": False,
                "member_count": len(self.members),
                "members": copy.deepcopy(members),
                "channels": copy.deepcopy(self.channels),
                "threads": [],
                "voice_states": [],
                "presences": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "lazy": True,
            }
        )
        return payload


class FakeInteraction:
    """Handle for one dispatched INTERACTION_CREATE and everything the bot answered."""

    def __init__(
        self,
        fake: FakeDiscord,
        payload: JSON,
        *,
        guild: FakeGuild | None,
        user: JSON,
        channel: JSON,
        permissions: int,
        app_permissions: int,
        component_message: JSON | None = None,
    ) -> None:
        self._fake = fake
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.payload = payload
        self.guild = guild
        self.user = user
        self.channel = channel
        self.channel_id = int(channel["id"])
        self.permissions = permissions
        self.app_permissions = app_permissions
        self.attachment_size_limit: int = payload["attachment_size_limit"]
        self.callbacks: list[JSON] = []
        self.followups: list[JSON] = []
        self.edits: list[JSON] = []
        self.first_callback_at: float | None = None
        self.dispatched_at = asyncio.get_running_loop().time()
        self.late = False  # a callback arrived after the deadline and got 10062
        self.expired = False  # set by expire(): webhook token dead (50027)
        self.modal: JSON | None = None  # data of a type-9 (modal) callback
        self.original: JSON | None = component_message  # @original message
        self.messages: dict[int, JSON] = {}  # messages created by this interaction
        self.followup_messages: list[JSON] = []  # followups that created new messages
        self.deleted: set[int] = set()
        self._final: JSON | None = None
        self._signal = _Signal()

    def __repr__(self) -> str:
        types = [c.get("type") for c in self.callbacks]
        return f"<FakeInteraction id={self.id} type={self.type} callbacks={types}>"

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def final_message(self) -> JSON | None:
        """The message wait_final() resolves to, in its current state (None if not yet)."""
        return self._final

    @property
    def ephemeral(self) -> bool:
        msg = self._final or self.original
        return bool(msg and int(msg.get("flags") or 0) & EPHEMERAL)

    def expire(self) -> None:
        """Simulates the 15-minute webhook token expiry: followups/edits get 401 code 50027."""
        self.expired = True

    def _describe(self) -> str:
        return (
            f"interaction {self.id} (callbacks={[c.get('type') for c in self.callbacks]}, "
            f"followups={len(self.followups)}, edits={len(self.edits)}, late={self.late})"
        )

    async def wait_callback(self, timeout: float = 5) -> JSON:
        """The first accepted callback body ``{"type", "data"}``."""
        return await self._signal.wait_for(
            lambda: self.callbacks[0] if self.callbacks else None, timeout, self._describe
        )

    async def wait_final(self, timeout: float = 10) -> JSON:
        """What the user ends up seeing.

        After a type 4/7 callback: that message. After a type 5/6 defer: the first followup or
        ``@original`` edit. Returns a copy of the message object (content, embeds, components,
        attachments, flags, ...) plus ``ephemeral: bool``. For type 8/9 callbacks: their data plus
        ``ephemeral: False`` and ``callback_type``.
        """

        def ready() -> JSON | None:
            if not self.callbacks:
                return None
            ctype = self.callbacks[0].get("type")
            if ctype in (8, 9):
                data = copy.deepcopy(self.callbacks[0].get("data") or {})
                data.update(ephemeral=False, callback_type=ctype)
                return data
            if self._final is None:
                return None
            out = copy.deepcopy(self._final)
            out["ephemeral"] = bool(int(self._final.get("flags") or 0) & EPHEMERAL)
            out["callback_type"] = ctype
            return out

        return await self._signal.wait_for(ready, timeout, self._describe)

    async def wait_followups(self, count: int, timeout: float = 10) -> list[JSON]:
        """Waits until ``count`` followup bodies were accepted; returns the bodies."""
        return await self._signal.wait_for(
            lambda: list(self.followups) if len(self.followups) >= count else None,
            timeout,
            self._describe,
        )

    def text(self) -> str:
        """Content + embed titles/descriptions/fields/footers of the final message."""
        if self.callbacks and self.callbacks[0].get("type") == 8:
            choices = (self.callbacks[0].get("data") or {}).get("choices") or []
            return "\n".join(str(c.get("name")) for c in choices)
        if self.callbacks and self.callbacks[0].get("type") == 9:
            data = self.callbacks[0].get("data") or {}
            return "\n".join(
                [str(data.get("title", "")), *_text_of_components(data.get("components") or [])]
            )
        if self._final is None:
            raise AssertionError(f"no final message yet for {self._describe()}")
        return message_text(self._final)

    def all_text(self) -> str:
        """Text of the original response and every followup message, in order."""
        msgs = [m for m in self.messages.values() if int(m["id"]) not in self.deleted]
        if self.original is not None and self.original not in msgs:
            msgs.insert(0, self.original)
        return "\n".join(message_text(m) for m in msgs)

    # -- follow-on interactions ---------------------------------------------------

    def _find_component(self, target: str, message: JSON | None) -> tuple[JSON, JSON]:
        msg = message or self._final or self.original
        if msg is None:
            raise AssertionError(f"no message with components for {self._describe()}")
        for comp in _walk_components(msg.get("components") or []):
            if comp.get("custom_id") == target or comp.get("label") == target:
                return msg, comp
        raise AssertionError(
            f"no component {target!r} in message {msg.get('id')}: {msg.get('components')}"
        )

    async def click(
        self, target: str, *, message: JSON | None = None, user: JSON | None = None
    ) -> FakeInteraction:
        """Clicks the button with that custom_id or label on the final (or given) message."""
        msg, comp = self._find_component(target, message)
        if comp.get("disabled"):
            raise AssertionError(f"button {target!r} is disabled")
        if comp.get("type") != 2 or "custom_id" not in comp:
            raise AssertionError(f"component {target!r} is not a clickable button: {comp}")
        return await self._fake.send_component(
            self.guild,
            user or self.user,
            msg,
            comp["custom_id"],
            component_type=2,
            channel_id=self.channel_id,
            permissions=self.permissions,
            app_permissions=self.app_permissions,
        )

    async def select(
        self,
        target: str,
        values: list[str],
        *,
        message: JSON | None = None,
        user: JSON | None = None,
    ) -> FakeInteraction:
        """Picks ``values`` in the select menu with that custom_id (or placeholder)."""
        msg = message or self._final or self.original
        comp: JSON | None = None
        if msg is not None:
            for c in _walk_components(msg.get("components") or []):
                if c.get("custom_id") == target or c.get("placeholder") == target:
                    comp = c
                    break
        if msg is None or comp is None:
            raise AssertionError(f"no select {target!r} in {msg}")
        return await self._fake.send_component(
            self.guild,
            user or self.user,
            msg,
            comp["custom_id"],
            component_type=int(comp["type"]),
            values=values,
            channel_id=self.channel_id,
            permissions=self.permissions,
            app_permissions=self.app_permissions,
        )

    async def submit_modal(
        self, values: dict[str, Any], *, user: JSON | None = None
    ) -> FakeInteraction:
        """Submits the modal this interaction opened (type 9); ``values`` by custom_id."""
        if self.modal is None:
            raise AssertionError(f"{self._describe()} did not open a modal")
        return await self._fake.send_modal_submit(
            self.guild,
            user or self.user,
            self.modal["custom_id"],
            _fill_modal(self.modal.get("components") or [], values),
            message=self.payload.get("message"),
            channel_id=self.channel_id,
            permissions=self.permissions,
            app_permissions=self.app_permissions,
        )


def _fill_modal(components: list[Any], values: dict[str, Any]) -> list[JSON]:
    out: list[JSON] = []
    for comp in components:
        if not isinstance(comp, dict):
            continue
        ctype = comp.get("type")
        if ctype == 1:
            out.append({"type": 1, "components": _fill_modal(comp.get("components") or [], values)})
        elif ctype == 18 and isinstance(comp.get("component"), dict):
            inner = _fill_modal([comp["component"]], values)
            if inner:
                out.append({"type": 18, "id": comp.get("id", 0), "component": inner[0]})
        elif ctype == 4:
            cid = comp["custom_id"]
            out.append(
                {
                    "type": 4,
                    "id": comp.get("id", 0),
                    "custom_id": cid,
                    "value": str(values.get(cid, comp.get("value") or "")),
                }
            )
        elif ctype in (3, 5, 6, 7, 8):
            cid = comp["custom_id"]
            picked = values.get(cid, [])
            out.append(
                {"type": ctype, "id": comp.get("id", 0), "custom_id": cid, "values": list(picked)}
            )
    return out


# --------------------------------------------------------------------------------------
# the fake
# --------------------------------------------------------------------------------------


class FakeDiscord:
    """Fake Discord REST API + gateway on 127.0.0.1 for the real discord.py client."""

    heartbeat_interval_ms = 41250

    def __init__(
        self, *, token: str = "fake-token", app_id: int | None = None, bot_name: str = "SoraBot"
    ) -> None:
        self.new_id = SnowflakeFactory()
        self.token = token
        self.app_id: int = app_id or self.new_id()
        self.bot_user: JSON = {
            "id": str(self.app_id),
            "username": bot_name,
            "discriminator": "4242",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        self.users: dict[int, JSON] = {self.app_id: self.bot_user}
        self.app_owner = self._make_user("app_owner")
        self.guilds: dict[int, FakeGuild] = {}
        self.dm_channels: dict[int, JSON] = {}  # channel id -> DM channel
        self.dms_closed: set[int] = set()  # user ids whose DMs refuse the bot (403 50007)

        # recorded state
        self.requests: list[RecordedRequest] = []
        self.cdn_requests: list[str] = []
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.command_syncs: list[tuple[int | None, list[JSON]]] = []
        self.channel_messages: dict[int, list[JSON]] = {}
        self.messages: dict[int, JSON] = {}  # every message the fake knows, by id
        self.deleted_messages: set[int] = set()
        self.interactions: list[FakeInteraction] = []
        self.attachment_data: dict[int, bytes] = {}

        # gateway state
        self.identify_payloads: list[JSON] = []
        self.gateway_received: list[JSON] = []
        self.gateway_sent: list[JSON] = []
        self.presence_updates: list[JSON] = []
        self.heartbeats = 0
        self.identify_count = 0
        self.resume_count = 0

        # knobs
        self.interaction_timeout: float | None = 3.0  # callback deadline; None disables
        self.webhook_token_ttl: float = WEBHOOK_TOKEN_TTL
        self.upload_limit: int = DEFAULT_UPLOAD_LIMIT  # per file, bot-token uploads
        self.privileged_intents_enabled = True  # False: IDENTIFY with them -> close 4014
        self.application_flags = (1 << 13) | (1 << 15) | (1 << 19)

        self._faults: list[FaultRule] = []
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._interactions_by_id: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[int, str], JSON] = {}
        self._sessions: dict[str, _Session] = {}
        self._active_session: _Session | None = None
        self._conns: set[_GatewayConn] = set()
        self._signal = _Signal()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = False
        self._routes = self._build_routes()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Binds 127.0.0.1 on a free port."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/gateway/{tail:.*}", self._handle_gateway)
        app.router.add_get("/attachments/{channel}/{attachment}/{filename}", self._handle_cdn)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._handle_api)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._stopping = False

    async def stop(self) -> None:
        """Closes websockets (code 1000) and the server; idempotent."""
        if self._runner is None:
            return
        self._stopping = True
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1000, message=b"fake discord shutting down")
        for conn in list(self._conns):
            if conn.writer is not None:
                conn.queue.put_nowait(None)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.writer, 2)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord.start() has not been called")
        return self._port

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.http_base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patch_client(self) -> Iterator[None]:
        """Points discord.py's ``Route.BASE`` and ``DEFAULT_GATEWAY`` here; restores on exit."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # -- world building ---------------------------------------------------------------

    def _make_user(self, username: str, user_id: int | None = None) -> JSON:
        uid = user_id or self.new_id()
        user: JSON = {
            "id": str(uid),
            "username": username,
            "discriminator": "0",
            "global_name": username,
            "avatar": None,
            "bot": False,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        self.users[uid] = user
        return user

    def add_user(self, username: str, *, user_id: int | None = None, dms_open: bool = True) -> JSON:
        """A Discord user (not yet in any guild). ``dms_open=False``: DMs to them get 403 50007."""
        user = self._make_user(username, user_id)
        if not dms_open:
            self.dms_closed.add(int(user["id"]))
        return user

    def add_guild(
        self, name: str = "Test Guild", *, guild_id: int | None = None, owner_id: int | None = None
    ) -> FakeGuild:
        """A guild with a "general" text channel, the @everyone role, the bot and the owner."""
        gid = guild_id or self.new_id()
        if owner_id is None:
            owner = self._make_user(f"owner_{len(self.guilds) + 1}")
            owner_id = int(owner["id"])
        else:
            owner = self.users.get(owner_id) or self._make_user(f"owner_{owner_id}", owner_id)
        guild = FakeGuild(self, guild_id=gid, name=name, owner_id=owner_id)
        guild.add_text_channel("general")
        guild.add_member(self.bot_user)
        guild.add_member(owner)
        self.guilds[gid] = guild
        session = self._active_session
        if session is not None and session.ready and session.has_guild(gid):
            self._dispatch_to(session, "GUILD_CREATE", self._guild_create_payload(guild, session))
        return guild

    def make_attachment(
        self, filename: str, data: bytes, *, content_type: str | None = None
    ) -> JSON:
        """An attachment object served by the fake CDN, e.g. for an ATTACHMENT option."""
        return self._store_attachment(0, filename, data, content_type=content_type)

    def dm_channel_for(self, user_id: int) -> JSON:
        for existing in self.dm_channels.values():
            if int(existing["recipients"][0]["id"]) == int(user_id):
                return existing
        user = self.users.get(int(user_id))
        if user is None:
            raise LookupError(f"unknown user {user_id}")
        channel: JSON = {
            "id": str(self.new_id()),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [user],
        }
        self.dm_channels[int(channel["id"])] = channel
        return channel

    def dm_messages(self, user_id: int) -> list[JSON]:
        """Messages the bot posted in its DM with this user."""
        for cid, channel in self.dm_channels.items():
            if int(channel["recipients"][0]["id"]) == int(user_id):
                return self.channel_messages.get(cid, [])
        return []

    # -- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        body: Any = None,
        global_: bool = False,
        delay: float = 0.0,
        after: bool = False,
    ) -> FaultRule:
        """Answers the next ``times`` matching requests with ``status``.

        ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched in the path relative to
        the API base (e.g. ``r"/channels/\\d+/messages$"``). A 429 looks like Discord's (JSON body,
        rate-limit headers, ``Via``); ``retry_after`` defaults to 0.05 s. ``body``: dict/list ->
        JSON, str/bytes -> text/html (like a Cloudflare page). Matching requests are recorded.
        ``after=True``: the request is carried out first (the message is created, the nonce
        remembered) and only the answer is lost, as when Discord's edge fails after the write.
        """
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=status,
            times=times,
            retry_after=retry_after,
            body=body,
            global_=global_,
            delay=delay,
            after=after,
        )
        self._faults.append(rule)
        return rule

    def delay_next(
        self, method: str, path_regex: str, seconds: float, *, times: int = 1
    ) -> FaultRule:
        """Delays the next matching requests by ``seconds``, then answers them normally."""
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=None,
            times=times,
            delay=seconds,
        )
        self._faults.append(rule)
        return rule

    def drop_next(
        self, method: str, path_regex: str, *, times: int = 1, after: bool = True
    ) -> FaultRule:
        """Closes the connection of the next matching requests without an answer.

        With ``after=True`` (the default) the request is carried out first, so the client
        cannot tell whether it took effect: the case a retry with the same nonce exists for.
        """
        rule = FaultRule(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=None,
            times=times,
            after=after,
            drop=True,
        )
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, rec: RecordedRequest) -> FaultRule | None:
        for rule in self._faults:
            if rule.times <= 0 or rule.method not in ("*", rec.method):
                continue
            if rule.pattern.search(rec.path):
                rule.times -= 1
                rule.hits += 1
                return rule
        return None

    def _fault_reply(self, rule: FaultRule) -> _Reply:
        status = int(rule.status or 500)
        if status == 429:
            retry_after = 0.05 if rule.retry_after is None else float(rule.retry_after)
            body = (
                rule.body
                if rule.body is not None
                else {
                    "message": "You are being rate limited.",
                    "retry_after": retry_after,
                    "global": rule.global_,
                }
            )
            headers = {
                "Retry-After": str(max(1, math.ceil(retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": hashlib.md5(rule.pattern.pattern.encode()).hexdigest(),
                "X-RateLimit-Scope": "global" if rule.global_ else "user",
                "Via": "1.1 google",
            }
            if rule.global_:
                headers["X-RateLimit-Global"] = "true"
        else:
            defaults: dict[int, tuple[str, int]] = {
                400: ("400: Bad Request", 0),
                401: ("401: Unauthorized", 0),
                403: ("Missing Permissions", 50013),
                404: ("404: Not Found", 0),
                500: ("500: Internal Server Error", 0),
                502: ("502: Bad Gateway", 0),
                503: ("503: Service Unavailable", 0),
                504: ("504: Gateway Timeout", 0),
            }
            message, code = defaults.get(status, (f"{status}: Error", 0))
            body = rule.body if rule.body is not None else {"message": message, "code": code}
            headers = {}
            if rule.retry_after is not None:
                headers["Retry-After"] = str(max(1, math.ceil(rule.retry_after)))
        if isinstance(body, str | bytes):
            raw = body.encode() if isinstance(body, str) else body
            return _Reply(status, None, headers, raw=raw, content_type="text/html")
        return _Reply(status, body, headers)

    # -- waiting ------------------------------------------------------------------------

    def _recent(self) -> str:
        tail = self.requests[-8:]
        return "; recent requests: " + ", ".join(f"{r.method} {r.path} -> {r.status}" for r in tail)

    async def wait_identified(self, timeout: float = 10) -> None:
        """Until a client sent IDENTIFY (or RESUME) and got READY + GUILD_CREATEs."""

        def ready() -> bool:
            session = self._active_session
            return bool(session and session.ready and session.conn is not None)

        await self._signal.wait_for(ready, timeout, lambda: "gateway IDENTIFY" + self._recent())

    async def wait_commands_synced(
        self, guild_id: int | None = None, timeout: float = 10
    ) -> list[JSON]:
        """Until a PUT of global (``guild_id=None``) or that guild's commands happened."""

        def synced() -> list[JSON] | None:
            for scope, commands in reversed(self.command_syncs):
                if scope == guild_id:
                    return commands
            return None

        return await self._signal.wait_for(
            synced, timeout, lambda: f"command sync for guild {guild_id}" + self._recent()
        )

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

    # -- gateway --------------------------------------------------------------------------

    @staticmethod
    def _frame(op: int, d: Any = None) -> JSON:
        return {"op": op, "d": d, "s": None, "t": None}

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        if self._stopping:
            return web.Response(status=503, text="shutting down")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True, timeout=2.0)
        await ws.prepare(request)
        conn = _GatewayConn(ws, dict(request.query))
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

    async def _gateway_writer(self, conn: _GatewayConn) -> None:
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

    async def _close_conn(self, conn: _GatewayConn, code: int, reason: str) -> None:
        conn.queue.put_nowait({"__close__": code, "reason": reason})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.queue.join(), 5)

    async def _on_gateway_payload(self, conn: _GatewayConn, payload: Any) -> None:
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

    async def _identify(self, conn: _GatewayConn, data: JSON) -> None:
        self.identify_payloads.append(data)
        if not self._token_ok(data.get("token")):
            await self._close_conn(conn, 4004, "Authentication failed.")
            return
        if conn.session is not None:
            await self._close_conn(conn, 4005, "Already authenticated.")
            return
        intents = int(data.get("intents") or 0)
        if intents & _PRIVILEGED_INTENTS and not self.privileged_intents_enabled:
            await self._close_conn(conn, 4014, "Disallowed intent(s).")
            return
        shard = data.get("shard")
        session = _Session(secrets.token_hex(16), intents, list(shard) if shard else None)
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

    async def _resume(self, conn: _GatewayConn, data: JSON) -> None:
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

    def _request_members(self, session: _Session, data: JSON) -> None:
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

    def _guild_create_payload(self, guild: FakeGuild, session: _Session) -> JSON:
        return guild.to_gateway(all_members=bool(session.intents & INTENT_GUILD_MEMBERS))

    def _dispatch_to(self, session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        payload: JSON = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.log.append(payload)
        if session.conn is not None:
            session.conn.queue.put_nowait(payload)

    def dispatch_nowait(self, event: str, data: Any, *, intent: int | None = None) -> bool:
        """Queues a DISPATCH to the connected bot (in order); False if no session/intent."""
        session = self._active_session
        if session is None or (intent is not None and not session.intents & intent):
            return False
        self._dispatch_to(session, event, data)
        return True

    async def dispatch(self, event: str, data: Any, *, intent: int | None = None) -> bool:
        """Like dispatch_nowait, then waits until the frame was written to the socket."""
        sent = self.dispatch_nowait(event, data, intent=intent)
        if sent:
            await self._flush()
        return sent

    async def _flush(self) -> None:
        session = self._active_session
        if session is not None and session.conn is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.conn.queue.join(), 5)

    def _dispatch_guild_event(self, guild: FakeGuild, event: str, data: Any, intent: int) -> None:
        if guild.id not in self.guilds:
            return  # still being built
        session = self._active_session
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
        session = self._active_session
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

    async def send_user_message(
        self,
        guild: FakeGuild | None,
        user: JSON,
        content: str,
        *,
        channel_id: int | None = None,
        embeds: list[JSON] | None = None,
    ) -> JSON:
        """A user posts a message: stored and dispatched as MESSAGE_CREATE (intents respected)."""
        if guild is not None:
            guild.add_member(user)
            channel = guild.get_channel(channel_id) if channel_id else guild.default_channel
        else:
            channel = self.dm_channel_for(int(user["id"]))
        if channel is None:
            raise LookupError(f"unknown channel {channel_id}")
        msg = self._new_message(
            channel_id=int(channel["id"]),
            author=user,
            body={"content": content, "embeds": embeds or []},
            uploads=[],
            msg_type=0,
            flags=0,
            guild=guild,
        )
        self._dispatch_message("MESSAGE_CREATE", msg, guild)
        await self._flush()
        return msg

    # -- interactions -----------------------------------------------------------------

    def find_command(
        self, name: str, guild: FakeGuild | None = None, *, command_type: int = 1
    ) -> JSON | None:
        """A synced command by name: the guild's first (if given), then global."""
        if guild is not None:
            for cmd in self.guild_commands.get(guild.id, []):
                if cmd["name"] == name and int(cmd.get("type", 1)) == command_type:
                    return cmd
        for cmd in self.global_commands:
            if cmd["name"] == name and int(cmd.get("type", 1)) == command_type:
                return cmd
        return None

    @staticmethod
    def option(name: str, value: Any, type: int | None = None) -> JSON:
        """One leaf option; the type is inferred (str 3, bool 5, int 4, float 10, attachment 11,
        user 6, role 8, channel 7) unless given."""
        return {"type": type or _infer_option_type(value), "name": name, "value": value}

    @staticmethod
    def sub(*path: str, **values: Any) -> list[JSON]:
        """Options for ``/cmd [group] sub key=value...``.

        ``sub("quota", "set", daily=5)`` -> group "quota" / subcommand "set" / daily (type 4);
        ``sub("ping")`` -> subcommand "ping"; ``sub(prompt="cat")`` -> top-level options only.
        Attachment/user/role/channel dicts are accepted as values and resolved by send_command.
        """
        leaves = [FakeDiscord.option(name, value) for name, value in values.items()]
        if not path:
            return leaves
        if len(path) > 2:
            raise ValueError("at most a group and a subcommand")
        node: JSON = {"type": 1, "name": path[-1], "options": leaves}
        if len(path) == 2:
            node = {"type": 2, "name": path[0], "options": [node]}
        return [node]

    def _resolve_options(
        self, options: list[JSON], guild: FakeGuild | None, resolved: JSON
    ) -> list[JSON]:
        out: list[JSON] = []
        for raw in options:
            opt = dict(raw)
            otype = int(opt.get("type", 0))
            if otype in (1, 2):
                opt["options"] = self._resolve_options(
                    list(opt.get("options") or []), guild, resolved
                )
            elif isinstance(opt.get("value"), dict):
                opt["value"] = self._resolve_value(otype, opt["value"], guild, resolved)
            elif otype in (6, 7, 8, 9, 11) and isinstance(opt.get("value"), int):
                opt["value"] = str(opt["value"])
            out.append(opt)
        return out

    def _resolve_value(
        self, otype: int, value: JSON, guild: FakeGuild | None, resolved: JSON
    ) -> str:
        vid = str(value["id"])
        if otype == 11:
            resolved.setdefault("attachments", {})[vid] = copy.deepcopy(value)
        elif otype in (6, 9) and "username" in value:
            resolved.setdefault("users", {})[vid] = copy.deepcopy(value)
            member = guild.get_member(int(vid)) if guild else None
            if member is not None:
                resolved.setdefault("members", {})[vid] = {
                    **{k: copy.deepcopy(v) for k, v in member.items() if k != "user"},
                    "permissions": "0",
                }
        elif otype in (8, 9):
            resolved.setdefault("roles", {})[vid] = copy.deepcopy(value)
        elif otype == 7:
            resolved.setdefault("channels", {})[vid] = {
                "id": vid,
                "type": value["type"],
                "name": value.get("name"),
                "permissions": str(ALL_PERMISSIONS),
                "guild_id": value.get("guild_id"),
                "parent_id": value.get("parent_id"),
                "last_message_id": None,
                "flags": 0,
            }
        return vid

    def _command_data(
        self,
        guild: FakeGuild | None,
        name: str,
        options: list[JSON] | None,
        resolved: JSON | None,
        command_type: int,
    ) -> JSON:
        cmd = self.find_command(name, guild, command_type=command_type)
        auto_resolved: JSON = {}
        data: JSON = {
            "id": cmd["id"] if cmd else str(self.new_id()),
            "name": name,
            "type": command_type,
            "options": self._resolve_options(copy.deepcopy(options or []), guild, auto_resolved),
        }
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        for key, values in (resolved or {}).items():
            auto_resolved.setdefault(key, {}).update(copy.deepcopy(values))
        if auto_resolved:
            data["resolved"] = auto_resolved
        return data

    async def send_command(
        self,
        guild: FakeGuild | None,
        user: JSON,
        name: str,
        options: list[JSON] | None = None,
        *,
        channel_id: int | None = None,
        permissions: int = 0,
        app_permissions: int = DEFAULT_APP_PERMISSIONS,
        resolved: JSON | None = None,
        locale: str = "en-US",
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        command_type: int = 1,
    ) -> FakeInteraction:
        """Dispatches an APPLICATION_COMMAND INTERACTION_CREATE (guild=None: bot DM)."""
        data = self._command_data(guild, name, options, resolved, command_type)
        return await self._send_interaction(
            INTERACTION_COMMAND,
            guild,
            user,
            data,
            channel_id=channel_id,
            permissions=permissions,
            app_permissions=app_permissions,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
        )

    async def send_autocomplete(
        self,
        guild: FakeGuild | None,
        user: JSON,
        name: str,
        options: list[JSON] | None = None,
        *,
        channel_id: int | None = None,
        permissions: int = 0,
        app_permissions: int = DEFAULT_APP_PERMISSIONS,
        resolved: JSON | None = None,
        focused: str | None = None,
        locale: str = "en-US",
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> FakeInteraction:
        """Dispatches an APPLICATION_COMMAND_AUTOCOMPLETE; the ``focused`` option (default: an
        option already marked, else the last leaf) gets ``"focused": true``. No ``resolved``."""
        data = self._command_data(guild, name, options, None, 1)
        data.pop("resolved", None)
        leaves: list[JSON] = []

        def walk(opts: list[JSON]) -> None:
            for opt in opts:
                if opt.get("type") in (1, 2):
                    walk(opt.get("options") or [])
                else:
                    leaves.append(opt)

        walk(data["options"])
        if not any(o.get("focused") for o in leaves):
            target = [o for o in leaves if o["name"] == focused] if focused else leaves[-1:]
            if not target:
                raise ValueError(f"no option {focused!r} to focus in {options}")
            target[0]["focused"] = True
        # ``resolved`` is accepted for signature parity: Discord sends none with autocomplete.
        return await self._send_interaction(
            INTERACTION_AUTOCOMPLETE,
            guild,
            user,
            data,
            channel_id=channel_id,
            permissions=permissions,
            app_permissions=app_permissions,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
        )

    async def send_component(
        self,
        guild: FakeGuild | None,
        user: JSON,
        message: JSON,
        custom_id: str,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
        channel_id: int | None = None,
        permissions: int = 0,
        app_permissions: int = DEFAULT_APP_PERMISSIONS,
        resolved: JSON | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """Dispatches a MESSAGE_COMPONENT interaction for a message the bot sent."""
        stored = self.messages.get(int(message["id"]), message)
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if component_type != 2:
            data["values"] = list(values or [])
        if resolved:
            data["resolved"] = copy.deepcopy(resolved)
        return await self._send_interaction(
            INTERACTION_COMPONENT,
            guild,
            user,
            data,
            channel_id=channel_id or int(stored["channel_id"]),
            permissions=permissions,
            app_permissions=app_permissions,
            locale=locale,
            message=stored,
        )

    async def send_modal_submit(
        self,
        guild: FakeGuild | None,
        user: JSON,
        custom_id: str,
        components: list[JSON],
        *,
        message: JSON | None = None,
        channel_id: int | None = None,
        permissions: int = 0,
        app_permissions: int = DEFAULT_APP_PERMISSIONS,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """Dispatches a MODAL_SUBMIT with raw submitted components (see submit_modal)."""
        stored = self.messages.get(int(message["id"]), message) if message else None
        data: JSON = {"custom_id": custom_id, "components": copy.deepcopy(components)}
        return await self._send_interaction(
            INTERACTION_MODAL_SUBMIT,
            guild,
            user,
            data,
            channel_id=channel_id,
            permissions=permissions,
            app_permissions=app_permissions,
            locale=locale,
            message=stored,
        )

    async def _send_interaction(
        self,
        itype: int,
        guild: FakeGuild | None,
        user: JSON,
        data: JSON,
        *,
        channel_id: int | None,
        permissions: int,
        app_permissions: int,
        locale: str,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        message: JSON | None = None,
    ) -> FakeInteraction:
        session = self._active_session
        if session is None or session.conn is None or not session.ready:
            raise RuntimeError(
                "no bot is connected to the fake gateway (await fake.wait_identified())"
            )
        self.users.setdefault(int(user["id"]), user)
        if permissions & ADMINISTRATOR:
            permissions = ALL_PERMISSIONS
        iid = self.new_id()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "data": data,
            "token": token,
            "version": 1,
            "app_permissions": str(app_permissions),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": attachment_size_limit,
        }
        if guild is not None:
            channel = guild.get_channel(channel_id) if channel_id else guild.default_channel
            if channel is None:
                raise LookupError(f"channel {channel_id} is not in guild {guild.id}")
            member = guild.add_member(user)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                channel_id=channel["id"],
                channel={**copy.deepcopy(channel), "permissions": str(permissions)},
                member={**copy.deepcopy(member), "permissions": str(permissions)},
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            channel = (
                self.dm_channels.get(channel_id)
                if channel_id
                else self.dm_channel_for(int(user["id"]))
            )
            if channel is None:
                raise LookupError(f"unknown DM channel {channel_id}")
            payload.update(
                channel_id=channel["id"],
                channel=copy.deepcopy(channel),
                user=copy.deepcopy(user),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        if message is not None:
            payload["message"] = copy.deepcopy(message)
        inter = FakeInteraction(
            self,
            payload,
            guild=guild,
            user=user,
            channel=channel,
            permissions=permissions,
            app_permissions=app_permissions,
            component_message=message,
        )
        self.interactions.append(inter)
        self._interactions_by_id[iid] = inter
        self._interactions_by_token[token] = inter
        await self.dispatch("INTERACTION_CREATE", payload)
        return inter

    # -- REST plumbing ----------------------------------------------------------------

    def _build_routes(self) -> list[_RouteDef]:
        sf = r"(?P<{}>\d+)"
        table: list[tuple[str, str, _Handler, bool]] = [
            ("GET", "/users/@me", self._r_me, True),
            ("GET", f"/users/{sf.format('user')}", self._r_get_user, True),
            ("POST", "/users/@me/channels", self._r_create_dm, True),
            ("GET", "/oauth2/applications/@me", self._r_app_info, True),
            ("GET", "/applications/@me", self._r_app_info, True),
            ("GET", "/gateway", self._r_gateway, False),
            ("GET", "/gateway/bot", self._r_gateway_bot, True),
            ("PUT", f"/applications/{sf.format('app')}/commands", self._r_put_commands, True),
            ("GET", f"/applications/{sf.format('app')}/commands", self._r_get_commands, True),
            (
                "PUT",
                f"/applications/{sf.format('app')}/guilds/{sf.format('guild')}/commands",
                self._r_put_commands,
                True,
            ),
            (
                "GET",
                f"/applications/{sf.format('app')}/guilds/{sf.format('guild')}/commands",
                self._r_get_commands,
                True,
            ),
            (
                "POST",
                f"/interactions/{sf.format('iid')}/(?P<token>[^/]+)/callback",
                self._r_callback,
                False,
            ),
            ("POST", f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)", self._r_followup, False),
            (
                "GET",
                f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._r_webhook_get,
                False,
            ),
            (
                "PATCH",
                f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._r_webhook_edit,
                False,
            ),
            (
                "DELETE",
                f"/webhooks/{sf.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\\d+)",
                self._r_webhook_delete,
                False,
            ),
            ("GET", f"/channels/{sf.format('channel')}", self._r_get_channel, True),
            ("POST", f"/channels/{sf.format('channel')}/messages", self._r_create_message, True),
            ("GET", f"/channels/{sf.format('channel')}/messages", self._r_channel_history, True),
            (
                "GET",
                f"/channels/{sf.format('channel')}/messages/{sf.format('mid')}",
                self._r_get_message,
                True,
            ),
            (
                "PATCH",
                f"/channels/{sf.format('channel')}/messages/{sf.format('mid')}",
                self._r_edit_message,
                True,
            ),
            (
                "DELETE",
                f"/channels/{sf.format('channel')}/messages/{sf.format('mid')}",
                self._r_delete_message,
                True,
            ),
            ("POST", f"/channels/{sf.format('channel')}/typing", self._r_typing, True),
            ("GET", f"/guilds/{sf.format('guild')}", self._r_get_guild, True),
            ("GET", f"/guilds/{sf.format('guild')}/channels", self._r_guild_channels, True),
            (
                "GET",
                f"/guilds/{sf.format('guild')}/members/{sf.format('user')}",
                self._r_get_member,
                True,
            ),
        ]
        return [_RouteDef(m, re.compile(p), h, a) for m, p, h, a in table]

    async def _read_body(self, request: web.Request) -> tuple[Any, list[_Upload]]:
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            uploads: list[_Upload] = []
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
                        _Upload(
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
        uploads: list[_Upload] = []
        bad_body = False
        try:
            rec.json, uploads = await self._read_body(request)
        except (ValueError, UnicodeDecodeError):
            bad_body = True
        rec.files = [(u.filename, u.data) for u in uploads]
        self.requests.append(rec)
        reply: _Reply | None = None
        rule = self._take_fault(rec)
        if rule is not None:
            rec.injected = True
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.drop and not rule.after:
                return self._drop(request, rec)
            if rule.status is not None and not rule.after:
                reply = self._fault_reply(rule)
        if reply is None:
            if bad_body:
                reply = _err(400, "The request body contains invalid JSON.", 50109)
            else:
                reply = await self._route(request, rec, uploads)
        if rule is not None and rule.after:
            if rule.drop:
                return self._drop(request, rec)
            if rule.status is not None:
                reply = self._fault_reply(rule)
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
        self, request: web.Request, rec: RecordedRequest, uploads: list[_Upload]
    ) -> _Reply:
        path_known = False
        for route in self._routes:
            match = route.pattern.fullmatch(rec.path)
            if match is None:
                continue
            path_known = True
            if route.method != rec.method:
                continue
            if route.bot_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                return _err(401, "401: Unauthorized", 0)
            return await route.handler(_Call(request, rec, match.groupdict(), uploads))
        if path_known:
            return _err(405, "405: Method Not Allowed", 0)
        return _err(404, "404: Not Found", 0)

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        self.cdn_requests.append(str(request.rel_url))
        data = self.attachment_data.get(int(request.match_info["attachment"]))
        if data is None:
            return web.Response(status=404, text="Not Found")
        ctype = (
            mimetypes.guess_type(request.match_info["filename"])[0] or "application/octet-stream"
        )
        return web.Response(body=data, content_type=ctype)

    # -- message building ---------------------------------------------------------------

    def _store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> JSON:
        aid = self.new_id()
        self.attachment_data[aid] = data
        now = int(time.time())
        sig = secrets.token_hex(32)
        query = f"ex={now + 86400:x}&is={now:x}&hm={sig}&"
        url = f"{self.http_base}/attachments/{channel_id}/{aid}/{filename}?{query}"
        att: JSON = {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type
            or mimetypes.guess_type(filename)[0]
            or "application/octet-stream",
            "width": None,
            "height": None,
        }
        if description:
            att["description"] = description
        if ephemeral:
            att["ephemeral"] = True
        return att

    def _build_attachments(
        self,
        declared: list[Any] | None,
        uploads: list[_Upload],
        existing: list[JSON],
        *,
        channel_id: int,
        ephemeral: bool,
        keep_existing_by_default: bool,
    ) -> list[JSON]:
        by_index: dict[str, _Upload] = {}
        for i, up in enumerate(uploads):
            m = re.fullmatch(r"files\[(\d+)\]", up.field)
            by_index[m.group(1) if m else str(i)] = up
        result: list[JSON] = []
        used: set[str] = set()
        if declared is None:
            if keep_existing_by_default:
                result.extend(existing)
        else:
            old = {a["id"]: a for a in existing}
            for entry in declared:
                if not isinstance(entry, dict):
                    continue
                aid = str(entry.get("id"))
                if aid in old and aid not in by_index:
                    kept = dict(old[aid])
                    if entry.get("description"):
                        kept["description"] = entry["description"]
                    result.append(kept)
                elif aid in by_index:
                    up = by_index[aid]
                    used.add(aid)
                    result.append(
                        self._store_attachment(
                            channel_id,
                            str(entry.get("filename") or up.filename),
                            up.data,
                            content_type=up.content_type
                            if up.content_type != "application/octet-stream"
                            else None,
                            description=entry.get("description"),
                            ephemeral=ephemeral,
                        )
                    )
        for key, up in by_index.items():
            if key not in used:
                result.append(
                    self._store_attachment(
                        channel_id,
                        up.filename,
                        up.data,
                        content_type=up.content_type
                        if up.content_type != "application/octet-stream"
                        else None,
                        ephemeral=ephemeral,
                    )
                )
        return result

    def _mentions(self, content: str, guild: FakeGuild | None) -> tuple[list[JSON], list[str]]:
        users: list[JSON] = []
        for uid in dict.fromkeys(_USER_MENTION_RE.findall(content)):
            user = self.users.get(int(uid))
            if user is not None:
                entry = copy.deepcopy(user)
                member = guild.get_member(int(uid)) if guild else None
                if member is not None:
                    entry["member"] = {
                        k: copy.deepcopy(v) for k, v in member.items() if k != "user"
                    }
                users.append(entry)
        roles = [r for r in dict.fromkeys(_ROLE_MENTION_RE.findall(content))]
        return users, roles

    def _new_message(
        self,
        *,
        channel_id: int,
        author: JSON,
        body: JSON,
        uploads: list[_Upload],
        msg_type: int,
        flags: int,
        guild: FakeGuild | None,
        interaction: FakeInteraction | None = None,
    ) -> JSON:
        mid = self.new_id()
        content = str(body.get("content") or "")
        mentions, mention_roles = self._mentions(content, guild)
        embeds = [{"type": "rich", **copy.deepcopy(e)} for e in body.get("embeds") or []]
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": msg_type,
            "content": content,
            "author": copy.deepcopy(author),
            "embeds": embeds,
            "attachments": self._build_attachments(
                body.get("attachments"),
                uploads,
                [],
                channel_id=channel_id,
                ephemeral=bool(flags & EPHEMERAL),
                keep_existing_by_default=False,
            ),
            "components": copy.deepcopy(body.get("components") or []),
            "flags": flags,
            "timestamp": _iso(snowflake_time(mid)),
            "edited_timestamp": None,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": "@everyone" in content or "@here" in content,
            "pinned": False,
            "tts": bool(body.get("tts")),
            "reactions": [],
            "sticker_items": [],
        }
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        if body.get("poll"):
            msg["poll"] = copy.deepcopy(body["poll"])
        ref = body.get("message_reference")
        if isinstance(ref, dict) and ref.get("message_id"):
            msg["type"] = 19
            ref_out: JSON = {
                "type": int(ref.get("type", 0)),
                "message_id": str(ref["message_id"]),
                "channel_id": str(ref.get("channel_id") or channel_id),
            }
            if guild is not None:
                ref_out["guild_id"] = str(guild.id)
            msg["message_reference"] = ref_out
            referenced = self.messages.get(int(ref["message_id"]))
            msg["referenced_message"] = copy.deepcopy(referenced) if referenced else None
        if interaction is not None:
            msg["webhook_id"] = str(self.app_id)
            msg["application_id"] = str(self.app_id)
            owners = interaction.payload.get("authorizing_integration_owners", {})
            msg["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": copy.deepcopy(interaction.user),
                "authorizing_integration_owners": copy.deepcopy(owners),
            }
            cmd_name = (interaction.payload.get("data") or {}).get("name")
            if interaction.type == INTERACTION_COMMAND and cmd_name:
                msg["interaction_metadata"]["name"] = cmd_name
                msg["interaction_metadata"]["command_type"] = 1
                msg["interaction"] = {
                    "id": str(interaction.id),
                    "type": interaction.type,
                    "name": cmd_name,
                    "user": copy.deepcopy(interaction.user),
                }
        self.messages[mid] = msg
        return msg

    def _apply_edit(
        self, msg: JSON, body: JSON, uploads: list[_Upload], *, mark_edited: bool = True
    ) -> None:
        if "content" in body:
            msg["content"] = str(body.get("content") or "")
            guild = self._guild_of_channel(int(msg["channel_id"]))
            msg["mentions"], msg["mention_roles"] = self._mentions(msg["content"], guild)
        if "embeds" in body:
            msg["embeds"] = [{"type": "rich", **copy.deepcopy(e)} for e in body.get("embeds") or []]
        if "components" in body:
            msg["components"] = copy.deepcopy(body.get("components") or [])
        if "attachments" in body or uploads:
            msg["attachments"] = self._build_attachments(
                body.get("attachments") if "attachments" in body else None,
                uploads,
                list(msg.get("attachments") or []),
                channel_id=int(msg["channel_id"]),
                ephemeral=bool(int(msg.get("flags") or 0) & EPHEMERAL),
                keep_existing_by_default=True,
            )
        flags = int(msg.get("flags") or 0)
        if "flags" in body and body["flags"] is not None:
            flags = (flags & ~SUPPRESS_EMBEDS) | (int(body["flags"]) & SUPPRESS_EMBEDS)
            flags |= int(body["flags"]) & IS_COMPONENTS_V2
        was_loading = bool(flags & LOADING)
        msg["flags"] = flags & ~LOADING
        if mark_edited and not was_loading:
            msg["edited_timestamp"] = _iso()

    def _guild_of_channel(self, channel_id: int) -> FakeGuild | None:
        for guild in self.guilds.values():
            if guild.get_channel(channel_id) is not None:
                return guild
        return None

    def _find_channel(self, channel_id: int) -> tuple[JSON, FakeGuild | None] | None:
        if channel_id in self.dm_channels:
            return self.dm_channels[channel_id], None
        guild = self._guild_of_channel(channel_id)
        if guild is None:
            return None
        channel = guild.get_channel(channel_id)
        return (channel, guild) if channel is not None else None

    # -- validation -----------------------------------------------------------------------

    def _validate_message(
        self,
        body: Any,
        uploads: list[_Upload],
        *,
        require_content: bool,
        prefix: tuple[str | int, ...] = (),
    ) -> _Reply | None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return _err(400, "400: Bad Request", 50035)
        errors = _FormErrors()
        flags = int(body.get("flags") or 0)
        v2 = bool(flags & IS_COMPONENTS_V2)
        content = body.get("content")
        if v2 and content:
            errors.add(
                (*prefix, "content"),
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
            )
        errors.max_len((*prefix, "content"), content, 2000)
        nonce = body.get("nonce")
        if isinstance(nonce, str):
            errors.max_len((*prefix, "nonce"), nonce, 25)
        embeds = body.get("embeds") or []
        if isinstance(embeds, list):
            if len(embeds) > 10:
                errors.bad_len((*prefix, "embeds"), embeds, 0, 10)
            total = 0
            for i, embed in enumerate(embeds):
                if not isinstance(embed, dict):
                    continue
                p = (*prefix, "embeds", i)
                errors.max_len((*p, "title"), embed.get("title"), 256)
                errors.max_len((*p, "description"), embed.get("description"), 4096)
                author = embed.get("author") or {}
                footer = embed.get("footer") or {}
                errors.max_len((*p, "author", "name"), author.get("name"), 256)
                errors.max_len((*p, "footer", "text"), footer.get("text"), 2048)
                fields = embed.get("fields") or []
                if len(fields) > 25:
                    errors.bad_len((*p, "fields"), fields, 0, 25)
                for j, fld in enumerate(fields):
                    name, value = fld.get("name"), fld.get("value")
                    if not name:
                        errors.add(
                            (*p, "fields", j, "name"),
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        )
                    if not value:
                        errors.add(
                            (*p, "fields", j, "value"),
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        )
                    errors.max_len((*p, "fields", j, "name"), name, 256)
                    errors.max_len((*p, "fields", j, "value"), value, 1024)
                    total += len(str(name or "")) + len(str(value or ""))
                for text in (
                    embed.get("title"),
                    embed.get("description"),
                    author.get("name"),
                    footer.get("text"),
                ):
                    total += len(str(text or ""))
            if total > 6000:
                errors.add(
                    (*prefix, "embeds"),
                    "MAX_EMBED_SIZE_EXCEEDED",
                    "Embed size exceeds maximum size of 6000",
                )
        components = body.get("components") or []
        if isinstance(components, list) and not v2:
            if len(components) > 5:
                errors.bad_len((*prefix, "components"), components, 0, 5)
            for i, row in enumerate(components):
                inner = row.get("components") or [] if isinstance(row, dict) else []
                if len(inner) > 5:
                    errors.bad_len((*prefix, "components", i, "components"), inner, 1, 5)
        for i, comp in enumerate(
            _walk_components(components if isinstance(components, list) else [])
        ):
            cid = comp.get("custom_id")
            if cid is not None and not 1 <= len(str(cid)) <= 100:
                errors.bad_len((*prefix, "components", i, "custom_id"), str(cid), 1, 100)
        if errors:
            return _form_error(errors)
        if require_content and not (
            content
            or embeds
            or components
            or uploads
            or body.get("attachments")
            or body.get("sticker_ids")
            or body.get("poll")
        ):
            return _err(400, "Cannot send an empty message", 50006)
        return None

    def _check_upload_sizes(self, uploads: list[_Upload], limit: int) -> _Reply | None:
        if any(len(u.data) > limit for u in uploads):
            return _err(413, "Request entity too large", 40005)
        return None

    def _validate_commands(self, body: Any, *, is_global: bool) -> _Reply | None:
        if not isinstance(body, list):
            return _err(
                400,
                "Invalid Form Body",
                50035,
                {
                    "_errors": [
                        {
                            "code": "LIST_TYPE_CONVERT",
                            "message": "Only iterables may be used in a ListType",
                        }
                    ]
                },
            )
        errors = _FormErrors()
        seen: set[tuple[int, str]] = set()
        counts: dict[int, int] = {}
        for i, cmd in enumerate(body):
            if not isinstance(cmd, dict):
                errors.add((i,), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                continue
            ctype = int(cmd.get("type") or 1)
            counts[ctype] = counts.get(ctype, 0) + 1
            name = str(cmd.get("name") or "")
            if (ctype, name) in seen:
                errors.add(
                    (i, "name"),
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique ({name})",
                )
            seen.add((ctype, name))
            if ctype == 1:
                if not _COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
                    errors.add(
                        (i, "name"),
                        "APPLICATION_COMMAND_INVALID_NAME",
                        f"Command name is invalid ({name!r})",
                    )
                errors.bad_len((i, "description"), cmd.get("description") or "", 1, 100)
            else:
                errors.bad_len((i, "name"), name, 1, 32)
            self._validate_options(errors, (i, "options"), cmd.get("options") or [])
            if not is_global and cmd.get("contexts"):
                pass  # Discord ignores contexts on guild commands
        if counts.get(1, 0) > 100:
            errors.add(
                (),
                "APPLICATION_COMMANDS_LIMIT",
                "Maximum number of application commands reached (100)",
            )
        if errors:
            return _form_error(errors)
        return None

    def _validate_options(
        self, errors: _FormErrors, path: tuple[str | int, ...], options: list[Any]
    ) -> None:
        if len(options) > 25:
            errors.bad_len(path, options, 0, 25)
        seen_optional = False
        names: set[str] = set()
        for j, opt in enumerate(options):
            if not isinstance(opt, dict):
                continue
            p = (*path, j)
            name = str(opt.get("name") or "")
            if not _COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
                errors.add(
                    (*p, "name"),
                    "APPLICATION_COMMAND_INVALID_NAME",
                    f"Option name is invalid ({name!r})",
                )
            if name in names:
                errors.add(
                    (*p, "name"),
                    "APPLICATION_COMMAND_OPTIONS_DUPLICATE_NAME",
                    "Option names must be unique",
                )
            names.add(name)
            errors.bad_len((*p, "description"), opt.get("description") or "", 1, 100)
            otype = int(opt.get("type") or 0)
            if otype in (1, 2):
                self._validate_options(errors, (*p, "options"), opt.get("options") or [])
                continue
            required = bool(opt.get("required"))
            if required and seen_optional:
                errors.add(
                    (*p, "required"),
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
            seen_optional = seen_optional or not required
            choices = opt.get("choices") or []
            if len(choices) > 25:
                errors.bad_len((*p, "choices"), choices, 0, 25)
            if choices and opt.get("autocomplete"):
                errors.add(
                    (*p, "autocomplete"),
                    "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                    "Autocomplete cannot be enabled on options with choices",
                )

    # -- REST handlers: identity ----------------------------------------------------------

    async def _r_me(self, call: _Call) -> _Reply:
        return _Reply(
            200,
            {
                **self.bot_user,
                "verified": True,
                "mfa_enabled": False,
                "email": None,
                "locale": "en-US",
            },
        )

    async def _r_get_user(self, call: _Call) -> _Reply:
        user = self.users.get(int(call.params["user"]))
        return _Reply(200, user) if user else _err(404, "Unknown User", 10013)

    async def _r_app_info(self, call: _Call) -> _Reply:
        return _Reply(
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

    async def _r_gateway(self, call: _Call) -> _Reply:
        return _Reply(200, {"url": self.gateway_url})

    async def _r_gateway_bot(self, call: _Call) -> _Reply:
        return _Reply(
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

    # -- REST handlers: commands ----------------------------------------------------------

    async def _r_put_commands(self, call: _Call) -> _Reply:
        if int(call.params["app"]) != self.app_id:
            return _err(403, "Missing Access", 50001)
        guild_id = int(call.params["guild"]) if call.params.get("guild") else None
        if guild_id is not None and guild_id not in self.guilds:
            return _err(403, "Missing Access", 50001)
        invalid = self._validate_commands(call.body, is_global=guild_id is None)
        if invalid is not None:
            return invalid
        version = str(self.new_id())
        echoed: list[JSON] = []
        for cmd in call.body:
            ctype = int(cmd.get("type") or 1)
            key = (guild_id, ctype, cmd["name"])
            cid = self._command_ids.setdefault(key, self.new_id())
            out = copy.deepcopy(cmd)
            perms = cmd.get("default_member_permissions")
            out.update(
                id=str(cid),
                application_id=str(self.app_id),
                version=version,
                type=ctype,
                description=cmd.get("description", ""),
                default_member_permissions=None if perms is None else str(perms),
                nsfw=bool(cmd.get("nsfw", False)),
            )
            if guild_id is not None:
                out["guild_id"] = str(guild_id)
                out.pop("dm_permission", None)
                out["contexts"] = None
            else:
                out["dm_permission"] = (
                    cmd.get("dm_permission", True) if cmd.get("dm_permission") is not None else True
                )
                out["contexts"] = cmd.get("contexts")
            out["integration_types"] = cmd.get("integration_types") or [0]
            echoed.append(out)
        if guild_id is None:
            self.global_commands = echoed
        else:
            self.guild_commands[guild_id] = echoed
        self.command_syncs.append((guild_id, echoed))
        return _Reply(200, copy.deepcopy(echoed))

    async def _r_get_commands(self, call: _Call) -> _Reply:
        if int(call.params["app"]) != self.app_id:
            return _err(403, "Missing Access", 50001)
        if call.params.get("guild"):
            guild_id = int(call.params["guild"])
            if guild_id not in self.guilds:
                return _err(403, "Missing Access", 50001)
            return _Reply(200, copy.deepcopy(self.guild_commands.get(guild_id, [])))
        return _Reply(200, copy.deepcopy(self.global_commands))

    # -- REST handlers: interactions ------------------------------------------------------

    async def _r_callback(self, call: _Call) -> _Reply:
        inter = self._interactions_by_id.get(int(call.params["iid"]))
        if inter is None or inter.token != call.params["token"]:
            return _err(404, "Unknown interaction", 10062)
        now = asyncio.get_running_loop().time()
        if inter.first_callback_at is None:
            inter.first_callback_at = now - inter.dispatched_at
        if inter.acknowledged:
            return _err(400, "Interaction has already been acknowledged.", 40060)
        if (
            self.interaction_timeout is not None
            and now - inter.dispatched_at > self.interaction_timeout
        ):
            inter.late = True
            inter._signal.fire()
            return _err(404, "Unknown interaction", 10062)
        body = call.body
        if not isinstance(body, dict) or "type" not in body:
            errors = _FormErrors()
            errors.add(("type",), "BASE_TYPE_REQUIRED", "This field is required")
            return _form_error(errors)
        ctype = int(body["type"])
        data = body.get("data") or {}
        if ctype not in _ALLOWED_CALLBACKS.get(inter.type, frozenset()) or (
            ctype in (6, 7) and inter.original is None
        ):
            errors = _FormErrors()
            errors.add(
                ("type",),
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Invalid interaction callback type {ctype}",
            )
            return _form_error(errors)
        invalid = self._validate_callback(ctype, data, call.uploads, inter)
        if invalid is not None:
            return invalid

        inter.callbacks.append(body)
        msg: JSON | None = None
        eph = bool(int(data.get("flags") or 0) & EPHEMERAL)
        guild = inter.guild
        if ctype == 4:
            msg = self._new_message(
                channel_id=inter.channel_id,
                author=self.bot_user,
                body=data,
                uploads=call.uploads,
                msg_type=20,
                flags=int(data.get("flags") or 0) & _SENDABLE_FLAGS,
                guild=guild,
                interaction=inter,
            )
            inter.original = msg
            inter.messages[int(msg["id"])] = msg
            inter._final = msg
            self._dispatch_message("MESSAGE_CREATE", msg, guild)
        elif ctype == 5:
            msg = self._new_message(
                channel_id=inter.channel_id,
                author=self.bot_user,
                body={},
                uploads=[],
                msg_type=20,
                flags=LOADING | (EPHEMERAL if eph else 0),
                guild=guild,
                interaction=inter,
            )
            inter.original = msg
            inter.messages[int(msg["id"])] = msg
            self._dispatch_message("MESSAGE_CREATE", msg, guild)
        elif ctype == 7 and inter.original is not None:
            msg = inter.original
            eph = bool(int(msg.get("flags") or 0) & EPHEMERAL)
            self._apply_edit(msg, data, call.uploads)
            inter._final = msg
            self._dispatch_message("MESSAGE_UPDATE", msg, guild)
        elif ctype == 9:
            inter.modal = copy.deepcopy(data)
        inter._signal.fire()

        if str(call.rec.query.get("with_response", "")).lower() not in ("1", "true"):
            return _Reply(204)
        info: JSON = {"id": str(inter.id), "type": inter.type}
        reply: JSON = {"interaction": info}
        if ctype in (4, 5, 7) and msg is not None:
            info.update(
                response_message_id=msg["id"],
                response_message_loading=ctype == 5,
                response_message_ephemeral=eph,
            )
        if ctype in (4, 7) and msg is not None:
            reply["resource"] = {"type": ctype, "message": copy.deepcopy(msg)}
        elif ctype in (5, 6):
            reply["resource"] = {"type": ctype}
        return _Reply(200, reply)

    def _validate_callback(
        self, ctype: int, data: Any, uploads: list[_Upload], inter: FakeInteraction
    ) -> _Reply | None:
        if ctype in (4, 7):
            too_big = self._check_upload_sizes(uploads, inter.attachment_size_limit)
            return too_big or self._validate_message(
                data, uploads, require_content=ctype == 4, prefix=("data",)
            )
        errors = _FormErrors()
        if not isinstance(data, dict):
            data = {}
        if ctype == 5 and int(data.get("flags") or 0) & ~EPHEMERAL:
            errors.add(
                ("data", "flags"),
                "INTERACTION_RESPONSE_FLAGS_INVALID",
                "Only EPHEMERAL is allowed on a deferred response",
            )
        if ctype == 8:
            choices = data.get("choices")
            if not isinstance(choices, list):
                errors.add(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")
                choices = []
            if len(choices) > 25:
                errors.bad_len(("data", "choices"), choices, 0, 25)
            for i, choice in enumerate(choices):
                errors.bad_len(
                    ("data", "choices", i, "name"), str(choice.get("name") or ""), 1, 100
                )
                if isinstance(choice.get("value"), str):
                    errors.max_len(("data", "choices", i, "value"), choice["value"], 100)
        if ctype == 9:
            errors.bad_len(("data", "custom_id"), str(data.get("custom_id") or ""), 1, 100)
            errors.bad_len(("data", "title"), str(data.get("title") or ""), 1, 45)
            errors.bad_len(("data", "components"), data.get("components") or [], 1, 5)
        return _form_error(errors) if errors else None

    def _webhook_interaction(self, call: _Call) -> tuple[FakeInteraction | None, _Reply | None]:
        if int(call.params["app"]) != self.app_id:
            return None, _err(404, "Unknown Webhook", 10015)
        inter = self._interactions_by_token.get(call.params["token"])
        if inter is None:
            return None, _err(401, "Invalid Webhook Token", 50027)
        age = asyncio.get_running_loop().time() - inter.dispatched_at
        if inter.expired or age > self.webhook_token_ttl:
            return None, _err(401, "Invalid Webhook Token", 50027)
        if not inter.acknowledged:
            return None, _err(404, "Unknown Webhook", 10015)
        return inter, None

    def _webhook_message(self, inter: FakeInteraction, mid: str) -> JSON | None:
        if mid == "@original":
            msg = inter.original
        else:
            msg = inter.messages.get(int(mid))
            if msg is None and inter.original is not None and inter.original["id"] == mid:
                msg = inter.original
        if msg is None or int(msg["id"]) in inter.deleted:
            return None
        return msg

    async def _r_followup(self, call: _Call) -> _Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or _err(404, "Unknown Webhook", 10015)
        body = call.body if isinstance(call.body, dict) else {}
        invalid = self._check_upload_sizes(
            call.uploads, inter.attachment_size_limit
        ) or self._validate_message(call.body, call.uploads, require_content=True)
        if invalid is not None:
            return invalid
        inter.followups.append(body)
        original = inter.original
        if (
            original is not None
            and int(original.get("flags") or 0) & LOADING
            and int(original["id"]) not in inter.deleted
        ):
            # The first followup after a type-5 defer edits the "thinking" message, keeping
            # the defer's ephemeral state.
            self._apply_edit(
                original, {k: v for k, v in body.items() if k != "flags"}, call.uploads
            )
            msg = original
            event = "MESSAGE_UPDATE"
        else:
            msg = self._new_message(
                channel_id=inter.channel_id,
                author=self.bot_user,
                body=body,
                uploads=call.uploads,
                msg_type=20,
                flags=int(body.get("flags") or 0) & _SENDABLE_FLAGS,
                guild=inter.guild,
                interaction=inter,
            )
            inter.messages[int(msg["id"])] = msg
            inter.followup_messages.append(msg)
            event = "MESSAGE_CREATE"
        if inter._final is None:
            inter._final = msg
        self._dispatch_message(event, msg, inter.guild)
        inter._signal.fire()
        if str(call.rec.query.get("wait", "")).lower() not in ("1", "true"):
            return _Reply(204)
        return _Reply(200, copy.deepcopy(msg))

    async def _r_webhook_get(self, call: _Call) -> _Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or _err(404, "Unknown Webhook", 10015)
        msg = self._webhook_message(inter, call.params["mid"])
        return _Reply(200, copy.deepcopy(msg)) if msg else _err(404, "Unknown Message", 10008)

    async def _r_webhook_edit(self, call: _Call) -> _Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or _err(404, "Unknown Webhook", 10015)
        msg = self._webhook_message(inter, call.params["mid"])
        if msg is None:
            return _err(404, "Unknown Message", 10008)
        body = call.body if isinstance(call.body, dict) else {}
        invalid = self._check_upload_sizes(
            call.uploads, inter.attachment_size_limit
        ) or self._validate_message(body, call.uploads, require_content=False)
        if invalid is not None:
            return invalid
        inter.edits.append(body)
        self._apply_edit(msg, body, call.uploads)
        if inter._final is None:
            inter._final = msg
        self._dispatch_message("MESSAGE_UPDATE", msg, inter.guild)
        inter._signal.fire()
        return _Reply(200, copy.deepcopy(msg))

    async def _r_webhook_delete(self, call: _Call) -> _Reply:
        inter, error = self._webhook_interaction(call)
        if inter is None:
            return error or _err(404, "Unknown Webhook", 10015)
        msg = self._webhook_message(inter, call.params["mid"])
        if msg is None:
            return _err(404, "Unknown Message", 10008)
        inter.deleted.add(int(msg["id"]))
        self.deleted_messages.add(int(msg["id"]))
        if not int(msg.get("flags") or 0) & EPHEMERAL:
            self._dispatch_delete(msg, inter.guild)
        inter._signal.fire()
        return _Reply(204)

    def _dispatch_delete(self, msg: JSON, guild: FakeGuild | None) -> None:
        data: JSON = {"id": msg["id"], "channel_id": msg["channel_id"]}
        if guild is not None:
            data["guild_id"] = str(guild.id)
        self.dispatch_nowait(
            "MESSAGE_DELETE",
            data,
            intent=INTENT_GUILD_MESSAGES if guild else INTENT_DIRECT_MESSAGES,
        )

    # -- REST handlers: channels, messages, guilds ------------------------------------

    async def _r_channel_history(self, call: _Call) -> _Reply:
        """GET /channels/{id}/messages: newest first, `limit` (1-100), `before` a message id.

        As on Discord, public interaction responses and followups (which carry
        `interaction_metadata` and `webhook_id`) are part of the history; ephemeral ones
        are not."""
        channel_id = int(call.params["channel"])
        if not self._find_channel(channel_id):
            return _err(404, "Unknown Channel", 10003)
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
        return _Reply(200, copy.deepcopy(newest))

    def forget_nonces(self) -> None:
        """As if Discord's nonce de-duplication window ("a few minutes") had passed."""
        self._nonces.clear()

    async def _r_get_channel(self, call: _Call) -> _Reply:
        found = self._find_channel(int(call.params["channel"]))
        return (
            _Reply(200, copy.deepcopy(found[0])) if found else _err(404, "Unknown Channel", 10003)
        )

    async def _r_create_dm(self, call: _Call) -> _Reply:
        body = call.body if isinstance(call.body, dict) else {}
        try:
            recipient = int(body.get("recipient_id") or 0)
        except (TypeError, ValueError):
            recipient = 0
        if recipient not in self.users or recipient == self.app_id:
            return _err(400, "Invalid Recipient(s)", 50033)
        return _Reply(200, copy.deepcopy(self.dm_channel_for(recipient)))

    async def _r_create_message(self, call: _Call) -> _Reply:
        channel_id = int(call.params["channel"])
        found = self._find_channel(channel_id)
        if found is None:
            return _err(404, "Unknown Channel", 10003)
        channel, guild = found
        if guild is None and int(channel["recipients"][0]["id"]) in self.dms_closed:
            return _err(403, "Cannot send messages to this user", 50007)
        invalid = self._check_upload_sizes(
            call.uploads, self.upload_limit
        ) or self._validate_message(call.body, call.uploads, require_content=True)
        if invalid is not None:
            return invalid
        body: JSON = call.body if isinstance(call.body, dict) else {}
        nonce = body.get("nonce")
        if (
            body.get("enforce_nonce")
            and nonce is not None
            and (channel_id, str(nonce)) in self._nonces
        ):
            return _Reply(200, copy.deepcopy(self._nonces[(channel_id, str(nonce))]))
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
        return _Reply(200, copy.deepcopy(msg))

    def _channel_message(self, call: _Call) -> tuple[JSON | None, FakeGuild | None, _Reply | None]:
        channel_id = int(call.params["channel"])
        found = self._find_channel(channel_id)
        if found is None:
            return None, None, _err(404, "Unknown Channel", 10003)
        msg = self.messages.get(int(call.params["mid"]))
        if (
            msg is None
            or int(msg["channel_id"]) != channel_id
            or int(msg["id"]) in self.deleted_messages
        ):
            return None, found[1], _err(404, "Unknown Message", 10008)
        return msg, found[1], None

    async def _r_get_message(self, call: _Call) -> _Reply:
        msg, _, error = self._channel_message(call)
        return (
            _Reply(200, copy.deepcopy(msg))
            if msg
            else (error or _err(404, "Unknown Message", 10008))
        )

    async def _r_edit_message(self, call: _Call) -> _Reply:
        msg, guild, error = self._channel_message(call)
        if msg is None:
            return error or _err(404, "Unknown Message", 10008)
        body = call.body if isinstance(call.body, dict) else {}
        if msg["author"]["id"] != self.bot_user["id"] and set(body) - {"flags"}:
            return _err(403, "Cannot edit a message authored by another user", 50005)
        invalid = self._check_upload_sizes(
            call.uploads, self.upload_limit
        ) or self._validate_message(body, call.uploads, require_content=False)
        if invalid is not None:
            return invalid
        self._apply_edit(msg, body, call.uploads)
        self._dispatch_message("MESSAGE_UPDATE", msg, guild)
        return _Reply(200, copy.deepcopy(msg))

    async def _r_delete_message(self, call: _Call) -> _Reply:
        msg, guild, error = self._channel_message(call)
        if msg is None:
            return error or _err(404, "Unknown Message", 10008)
        self.deleted_messages.add(int(msg["id"]))
        self._dispatch_delete(msg, guild)
        return _Reply(204)

    async def _r_typing(self, call: _Call) -> _Reply:
        if self._find_channel(int(call.params["channel"])) is None:
            return _err(404, "Unknown Channel", 10003)
        return _Reply(204)

    async def _r_get_guild(self, call: _Call) -> _Reply:
        guild = self.guilds.get(int(call.params["guild"]))
        if guild is None:
            return _err(404, "Unknown Guild", 10004)
        payload = guild.to_rest()
        if str(call.rec.query.get("with_counts", "")).lower() in ("1", "true"):
            payload.update(
                approximate_member_count=len(guild.members), approximate_presence_count=0
            )
        return _Reply(200, payload)

    async def _r_guild_channels(self, call: _Call) -> _Reply:
        guild = self.guilds.get(int(call.params["guild"]))
        return (
            _Reply(200, copy.deepcopy(guild.channels))
            if guild
            else _err(404, "Unknown Guild", 10004)
        )

    async def _r_get_member(self, call: _Call) -> _Reply:
        guild = self.guilds.get(int(call.params["guild"]))
        if guild is None:
            return _err(404, "Unknown Guild", 10004)
        member = guild.get_member(int(call.params["user"]))
        return _Reply(200, copy.deepcopy(member)) if member else _err(404, "Unknown Member", 10007)


# --------------------------------------------------------------------------------------
# running a bot against the fake
# --------------------------------------------------------------------------------------


async def _race(awaitable: Awaitable[T], task: asyncio.Task[Any], timeout: float, what: str) -> T:
    """Awaits ``awaitable`` unless the bot task dies first (its exception is re-raised)."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait(
            {waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return waiter.result()
        if task in done:
            task.result()  # raises the bot's exception, if any
            raise RuntimeError(f"the bot stopped before {what}")
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter


async def _shutdown_bot(
    bot: discord.Client, task: asyncio.Task[None], timeout: float
) -> BaseException | None:
    await bot.close()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return TimeoutError(f"bot.start() did not return within {timeout}s of bot.close()")
    if task.cancelled():
        return None
    return task.exception()


@contextlib.asynccontextmanager
async def run_bot(
    bot: discord.Client, fake: FakeDiscord, *, ready_timeout: float = 10, close_timeout: float = 10
) -> AsyncIterator[discord.Client]:
    """Points discord.py at ``fake``, starts ``bot`` and waits for ``on_ready``; on exit closes
    the bot, awaits ``bot.start()`` and re-raises whatever it raised."""
    with fake.patch_client():
        task: asyncio.Task[None] = asyncio.create_task(
            bot.start(fake.token), name="fake-discord-bot"
        )
        try:
            await _race(fake.wait_identified(ready_timeout), task, ready_timeout, "IDENTIFY")
            await _race(bot.wait_until_ready(), task, ready_timeout, "on_ready")
            yield bot
        except BaseException:
            await _shutdown_bot(bot, task, close_timeout)
            raise
        error = await _shutdown_bot(bot, task, close_timeout)
        if error is not None:
            raise error
