"""A loopback fake of Discord's REST API and gateway for tests.

The real, unmodified discord.py client talks to it: point ``discord.http.Route.BASE`` at
:attr:`FakeDiscord.api_base` and ``DiscordWebSocket.DEFAULT_GATEWAY`` at
:attr:`FakeDiscord.gateway_url` (or use :meth:`FakeDiscord.patch_client` / :func:`run_bot`).

Payload shapes and rules follow the Discord and discord.py facts in FACTS.md, next to this
file. Everything runs on 127.0.0.1; every REST request is recorded in
:attr:`FakeDiscord.requests`.

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

Layout (each module's docstring says what it models):

- ``server.py``: :class:`FakeDiscord` (state + one mixin per concern), lifecycle, the REST
  route table, :func:`run_bot`.
- ``state.py``: everything the fake remembers.
- ``gateway.py``: the websocket (handshake, heartbeats, resume) and event dispatch.
- ``models.py``: guilds, channels, roles, members, users, DMs; message text helpers.
- ``messages.py``: message objects, edits, attachments and the fake CDN's files.
- ``commands.py``: command sync routes and command interaction data.
- ``interactions.py``: INTERACTION_CREATE payloads and :class:`FakeInteraction`.
- ``responses.py``: callbacks, followups and ``@original`` (the bot's answers).
- ``rest.py``: the HTTP front door and the identity/channel/message/guild routes.
- ``validation.py``: Discord's request checks (limits, Invalid Form Body).
- ``faults.py``: :class:`FaultRule`, ``fail_next``/``delay_next``/``drop_next``.
- ``wire.py``: recorded requests and replies; ``protocol.py``: Discord's numbers.
"""

from __future__ import annotations

from .faults import FaultRule
from .interactions import FakeInteraction
from .models import FakeGuild, message_text
from .protocol import (
    ALL_PERMISSIONS,
    DEFAULT_APP_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    EPHEMERAL,
    LOADING,
    snowflake_time,
)
from .server import FakeDiscord, run_bot
from .wire import RecordedRequest

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
