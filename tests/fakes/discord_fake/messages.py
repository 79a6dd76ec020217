"""Messages: what a post or an edit becomes, attachments on the fake CDN, user posts.

Builds message objects the way Discord returns them (id, type 0/19/20, author, embeds typed
"rich", mentions parsed from content, ``interaction_metadata`` on interaction responses,
``nonce`` echoed) and applies edits (fields present replace, ``attachments`` keeps or drops
existing files, LOADING is cleared and an edit of a "thinking" message is not marked
edited). Attachments get signed-looking CDN URLs served by the fake. FACTS.md §4.
"""

from __future__ import annotations

import copy
import mimetypes
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from .models import WorldMixin
from .protocol import (
    EPHEMERAL,
    INTERACTION_COMMAND,
    IS_COMPONENTS_V2,
    JSON,
    LOADING,
    SUPPRESS_EMBEDS,
    iso,
    snowflake_time,
)
from .wire import Upload

if TYPE_CHECKING:
    from .interactions import FakeInteraction
    from .models import FakeGuild

_USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")


class MessagesMixin(WorldMixin):
    """Message building, editing and attachments, shared by REST and interaction routes."""

    def make_attachment(
        self, filename: str, data: bytes, *, content_type: str | None = None
    ) -> JSON:
        """An attachment object served by the fake CDN, e.g. for an ATTACHMENT option."""
        return self._store_attachment(0, filename, data, content_type=content_type)

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
        uploads: list[Upload],
        existing: list[JSON],
        *,
        channel_id: int,
        ephemeral: bool,
        keep_existing_by_default: bool,
    ) -> list[JSON]:
        by_index: dict[str, Upload] = {}
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
        uploads: list[Upload],
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
            "timestamp": iso(snowflake_time(mid)),
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
        self, msg: JSON, body: JSON, uploads: list[Upload], *, mark_edited: bool = True
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
            msg["edited_timestamp"] = iso()

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
