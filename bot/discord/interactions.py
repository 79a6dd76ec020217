"""Reading an interaction: which server, which bot, what the member and the bot may do.

Small helpers every command and button shares. They only translate Discord's
permissions into plain values (an id, a boolean); the rules that use those values
(who may delete or look at what) live in the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.errors import BotChannelPermissionError, GuildOnlyError

if TYPE_CHECKING:
    from bot.discord.app import SoraBot


def guild_id_of(interaction: discord.Interaction[Any]) -> int:
    """The server the interaction came from; commands and buttons work in servers only."""
    if interaction.guild_id is None:
        raise GuildOnlyError()
    return interaction.guild_id


def bot_of(interaction: discord.Interaction[Any]) -> SoraBot:
    """The bot (and its services) a button or modal was handled by."""
    # Imported here: the bot module imports the notifier, which imports the components,
    # which import this module.
    from bot.discord.app import SoraBot

    client = interaction.client
    assert isinstance(client, SoraBot)
    return client


def role_ids_of(interaction: discord.Interaction[Any]) -> frozenset[int]:
    """The clicking or typing member's roles (role allowances)."""
    return frozenset(role.id for role in getattr(interaction.user, "roles", ()))


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Manage Server: may look at anyone's tasks and history."""
    return bool(interaction.permissions.manage_guild)


def moderates_messages(interaction: discord.Interaction[Any]) -> bool:
    """Manage Messages or Manage Server: may delete anyone's posted video."""
    perms = interaction.permissions
    return bool(perms.manage_messages or perms.manage_guild)


def check_bot_can_deliver(interaction: discord.Interaction[Any]) -> None:
    """Results go out as the bot's own messages, in a server channel: make sure it may
    post them here."""
    guild_id_of(interaction)
    perms = interaction.app_permissions
    needed = {
        "View Channel": perms.view_channel,
        "Send Messages": perms.send_messages_in_threads
        if isinstance(interaction.channel, discord.Thread)
        else perms.send_messages,
        "Embed Links": perms.embed_links,
        "Attach Files": perms.attach_files,
    }
    missing = [name for name, ok in needed.items() if not ok]
    if missing:
        raise BotChannelPermissionError(missing)
