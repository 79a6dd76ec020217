"""Everything the fake remembers, in one place.

:class:`FakeState` holds the world (users, guilds, DM channels), what the bot did (requests,
messages, command syncs, interactions, gateway traffic), the knobs tests turn, and the
addresses the server listens on. The behaviour lives in the mixins (gateway.py, models.py,
messages.py, commands.py, interactions.py, responses.py, rest.py, faults.py) that
server.py composes into :class:`FakeDiscord`; they all read and write this state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from .protocol import DEFAULT_UPLOAD_LIMIT, JSON, WEBHOOK_TOKEN_TTL, SnowflakeFactory

if TYPE_CHECKING:
    from .faults import FaultRule
    from .gateway import GatewayConn, Session
    from .interactions import FakeInteraction
    from .models import FakeGuild
    from .wire import RecordedRequest, RouteDef

T = TypeVar("T")


class Signal:
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


class FakeState:
    """The fake's state; see the module docstring."""

    _routes: list[RouteDef]  # built by FakeDiscord (server.py)

    def __init__(self, *, token: str, app_id: int | None, bot_name: str) -> None:
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

        # recorded state (rest.py, commands.py, messages.py, interactions.py)
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

        # gateway state (gateway.py)
        self.identify_payloads: list[JSON] = []
        self.gateway_received: list[JSON] = []
        self.gateway_sent: list[JSON] = []
        self.presence_updates: list[JSON] = []
        self.heartbeats = 0
        self.identify_count = 0
        self.resume_count = 0

        # knobs tests turn
        self.interaction_timeout: float | None = 3.0  # callback deadline; None disables
        self.webhook_token_ttl: float = WEBHOOK_TOKEN_TTL
        self.upload_limit: int = DEFAULT_UPLOAD_LIMIT  # per file, bot-token uploads
        self.privileged_intents_enabled = True  # False: IDENTIFY with them -> close 4014
        self.application_flags = (1 << 13) | (1 << 15) | (1 << 19)

        # internal bookkeeping
        self._faults: list[FaultRule] = []
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self._interactions_by_id: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._nonces: dict[tuple[int, str], JSON] = {}
        self._sessions: dict[str, Session] = {}
        self._active_session: Session | None = None
        self._conns: set[GatewayConn] = set()
        self._signal = Signal()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = False

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

    def _recent(self) -> str:
        tail = self.requests[-8:]
        return "; recent requests: " + ", ".join(f"{r.method} {r.path} -> {r.status}" for r in tail)
