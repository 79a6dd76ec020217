"""Interactions from the user's side: dispatching INTERACTION_CREATE and watching the answer.

``send_command``/``send_autocomplete``/``send_component``/``send_modal_submit`` build the
payload discord.py requires (``id``, ``application_id``, ``type``, ``token``, ``version``,
``attachment_size_limit``, a ``channel`` object, ``member`` with permissions or ``user`` in a
DM, ``app_permissions``, ``context``...) and dispatch it. :class:`FakeInteraction` is the
handle a test keeps: it records the callbacks, followups and edits the bot sent (see
responses.py), waits for the message the user ends up seeing, and clicks buttons, picks
options and submits modals on it. FACTS.md §5, §6.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from typing import Any

from .commands import CommandsMixin
from .models import FakeGuild, WorldMixin, message_text, text_of_components, walk_components
from .protocol import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    DEFAULT_APP_PERMISSIONS,
    DEFAULT_UPLOAD_LIMIT,
    EPHEMERAL,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    JSON,
)
from .state import Signal


class FakeInteraction:
    """Handle for one dispatched INTERACTION_CREATE and everything the bot answered."""

    def __init__(
        self,
        fake: InteractionsMixin,
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
        self._signal = Signal()

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
                [str(data.get("title", "")), *text_of_components(data.get("components") or [])]
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
        for comp in walk_components(msg.get("components") or []):
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
            for c in walk_components(msg.get("components") or []):
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
            fill_modal(self.modal.get("components") or [], values),
            message=self.payload.get("message"),
            channel_id=self.channel_id,
            permissions=self.permissions,
            app_permissions=self.app_permissions,
        )


def fill_modal(components: list[Any], values: dict[str, Any]) -> list[JSON]:
    """A modal's rows (or labels) as a MODAL_SUBMIT carries them, ``values`` by custom_id."""
    out: list[JSON] = []
    for comp in components:
        if not isinstance(comp, dict):
            continue
        ctype = comp.get("type")
        if ctype == 1:
            out.append({"type": 1, "components": fill_modal(comp.get("components") or [], values)})
        elif ctype == 18 and isinstance(comp.get("component"), dict):
            inner = fill_modal([comp["component"]], values)
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


class InteractionsMixin(CommandsMixin, WorldMixin):
    """Building and dispatching INTERACTION_CREATE."""

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
        session = self._session_for(None if guild is None else guild.id)
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
        await self.dispatch(
            "INTERACTION_CREATE", payload, guild_id=None if guild is None else guild.id
        )
        return inter
