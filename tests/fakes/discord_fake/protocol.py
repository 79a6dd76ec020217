"""Discord's numbers, as the fake uses them.

Message flags, permission bits, gateway intents, interaction and callback types, upload and
token limits, and snowflake ids. They live here so that every other module names a fact
instead of repeating a magic number; FACTS.md says where each one comes from.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import discord

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000

# Message flags
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_COMPONENTS_V2 = 1 << 15
SENDABLE_FLAGS = SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS | IS_COMPONENTS_V2

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
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Interaction types, and the callback types each accepts (FACTS.md §6)
INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5
ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    INTERACTION_COMMAND: frozenset({4, 5, 9}),
    INTERACTION_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    INTERACTION_AUTOCOMPLETE: frozenset({8}),
    INTERACTION_MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # per file, since 2025-01-16 (FACTS.md §8)
WEBHOOK_TOKEN_TTL = 15 * 60.0  # followups and @original edits die after 15 min (§6)


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


def iso(dt: datetime.datetime | None = None) -> str:
    return (dt or datetime.datetime.now(datetime.UTC)).isoformat()
