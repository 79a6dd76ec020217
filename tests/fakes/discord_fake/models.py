"""The world the bot lives in: guilds, their channels, roles and members, users, DMs.

:class:`FakeGuild` builds the guild payloads discord.py needs (REST and GUILD_CREATE) and
dispatches CHANNEL_CREATE / GUILD_ROLE_CREATE / GUILD_MEMBER_ADD when the world changes after
IDENTIFY. :class:`WorldMixin` adds users and guilds to the fake and finds channels. The
message text helpers read what a user would see in a message (content, embeds, v2 text).
FACTS.md §2 (GUILD_CREATE) and §4 (messages) give the shapes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from .gateway import GatewayMixin
from .protocol import (
    DEFAULT_EVERYONE_PERMISSIONS,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILDS,
    JSON,
    iso,
)


def text_of_components(components: list[Any]) -> list[str]:
    """The text displays (type 10) in a component tree, depth first."""
    out: list[str] = []
    for comp in components:
        if not isinstance(comp, dict):
            continue
        if comp.get("type") == 10 and comp.get("content"):
            out.append(str(comp["content"]))
        for key in ("components", "accessory", "component"):
            inner = comp.get(key)
            if isinstance(inner, list):
                out.extend(text_of_components(inner))
            elif isinstance(inner, dict):
                out.extend(text_of_components([inner]))
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
    parts.extend(text_of_components(message.get("components") or []))
    return "\n".join(parts)


def walk_components(components: list[Any]) -> Iterator[JSON]:
    """Every component in a tree (rows, sections, labels), depth first."""
    for comp in components:
        if not isinstance(comp, dict):
            continue
        yield comp
        for key in ("components", "accessory", "component"):
            inner = comp.get(key)
            if isinstance(inner, list):
                yield from walk_components(inner)
            elif isinstance(inner, dict):
                yield from walk_components([inner])


class FakeGuild:
    """A guild the fake bot is a member of. Mutations after IDENTIFY are dispatched."""

    def __init__(self, fake: WorldMixin, *, guild_id: int, name: str, owner_id: int) -> None:
        self._fake = fake
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        self.premium_tier = 0
        self.joined_at = iso()
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
            "joined_at": iso(),
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


class WorldMixin(GatewayMixin):
    """Adding users and guilds; looking up channels."""

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
        session = self._session_for(gid)
        if session is not None and session.ready and session.has_guild(gid):
            self._dispatch_to(session, "GUILD_CREATE", self._guild_create_payload(guild, session))
        return guild

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
