"""The one error surface for every slash command.

Every command error, from any cog, lands in `SoraCommandTree.on_error`: expected
failures (`BotError`, discord.py's check failures) become their friendly sentence,
anything else becomes an apology with a short reference that is also in the log, so a
moderator can find the traceback from a user's screenshot. Cogs never catch to format;
buttons and modals, which have no tree, call `report_error` themselves.

Also the answering helpers every command shares: `defer_publicly`, `defer_privately`
and `send_reply`, which answers whether or not the interaction was deferred.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands

from bot.errors import BotError, GuildOnlyError, permission_phrase

log = logging.getLogger(__name__)

PERMISSION_NAMES = {
    "manage_guild": "Manage Server",
    "send_messages": "Send Messages",
    "attach_files": "Attach Files",
    "embed_links": "Embed Links",
}


PUBLIC_DEFER = "sora.public_defer"
PRIVATE_DEFER = "sora.private_defer"


async def defer_publicly(interaction: discord.Interaction[Any]) -> None:
    """Show "thinking..." to the channel; `send_reply` remembers that for private errors.
    Does nothing if the interaction was already deferred (privately, to read a picture)."""
    if interaction.response.is_done():
        return
    await interaction.response.defer(thinking=True)
    interaction.extras[PUBLIC_DEFER] = True


async def defer_privately(interaction: discord.Interaction[Any]) -> None:
    """Show "thinking..." to the member only, while something of theirs that may be
    refused (their picture) is checked: an error then simply replaces it, privately, and
    nothing is left in the channel. Whoever succeeds must resolve it before posting in
    public, since the first followup would edit it and stay private (see `announce`)."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    interaction.extras[PRIVATE_DEFER] = True


async def send_reply(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer an interaction whether or not it was already acknowledged (deferred)."""
    mentions = discord.AllowedMentions(users=[interaction.user], roles=False, everyone=False)
    if ephemeral and interaction.extras.pop(PUBLIC_DEFER, False):
        # The public "thinking" message can't turn private: the first followup would edit it
        # in place. Remove it, so no public trace of the refusal remains, then tell the
        # user privately why (a followup after the deletion is a new, private message).
        await interaction.delete_original_response()
    if interaction.response.is_done():
        if embed is None:
            await interaction.followup.send(
                content or "", ephemeral=ephemeral, allowed_mentions=mentions
            )
        else:
            await interaction.followup.send(
                content or "", embed=embed, ephemeral=ephemeral, allowed_mentions=mentions
            )
    elif embed is None:
        await interaction.response.send_message(
            content, ephemeral=ephemeral, allowed_mentions=mentions
        )
    else:
        await interaction.response.send_message(
            content, embed=embed, ephemeral=ephemeral, allowed_mentions=mentions
        )


def describe_error(error: BaseException) -> str | None:
    """The user-facing sentence for an expected error, or None for a real fault."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    match original:
        case BotError():
            return original.user_message
        case app_commands.NoPrivateMessage():
            return GuildOnlyError().user_message
        case app_commands.MissingPermissions():
            names = permission_phrase(_permission_names(original.missing_permissions))
            return f"Only members with the {names} can do that."
        case app_commands.BotMissingPermissions():
            names = permission_phrase(_permission_names(original.missing_permissions))
            return f"I need the {names} in this channel."
        case app_commands.CommandOnCooldown():
            return f"Slow down a little: try again in {original.retry_after:.0f} seconds."
        case app_commands.TransformerError():
            return f"I couldn't understand `{original.value}`. Please pick a value from the list."
        case app_commands.CommandNotFound() | app_commands.CommandSignatureMismatch():
            return (
                "This command was just updated. Please wait a minute and try again "
                "(Discord is still catching up)."
            )
        case _:
            return None


def _permission_names(missing: list[str]) -> list[str]:
    """Discord's names for permissions ("send_messages" reads "Send Messages")."""
    return [PERMISSION_NAMES.get(p, p.replace("_", " ").title()) for p in missing]


class SoraCommandTree(app_commands.CommandTree[discord.Client]):
    async def interaction_check(self, interaction: discord.Interaction[discord.Client], /) -> bool:
        """Refuse every command in DMs, whatever Discord's contexts let through."""
        if interaction.guild_id is not None:
            return True
        if interaction.type is discord.InteractionType.application_command:
            await send_reply(interaction, GuildOnlyError().user_message)
        elif interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        return False

    async def on_error(
        self,
        interaction: discord.Interaction[discord.Client],
        error: app_commands.AppCommandError,
        /,
    ) -> None:
        await report_error(interaction, error)


async def report_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Answer any failure of a command or a button: the one place errors become words."""
    message = describe_error(error)
    command = interaction.command.qualified_name if interaction.command else "component"
    if message is None:
        reference = secrets.token_hex(3)
        original = getattr(error, "original", error)
        log.error(
            "error %s in /%s (guild %s, user %s)",
            reference,
            command,
            interaction.guild_id,
            interaction.user.id,
            exc_info=original,
        )
        message = (
            f"Something went wrong on my side (reference `{reference}`). "
            "Please try again; if it keeps happening, show this reference to a moderator."
        )
    else:
        log.info("/%s refused for user %s: %s", command, interaction.user.id, message)
    try:
        await send_reply(interaction, message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell user %s about an error in /%s", interaction.user.id, command)
