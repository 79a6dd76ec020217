"""`/sora settings log-channel|approval|limits|show|blocklist-add|blocklist-remove|blocklist`.

Added to the `/sora settings` group that `cogs/admin.py` makes. Every command but
`show` checks Manage Server when it runs (Discord cannot put a permission on a
subcommand). The rules are `bot.moderation`; what the answers look like is
`bot.discord.governance_rendering`. The Approve and Reject buttons the log shows are
registered here (`bot.discord.approval_components`).
"""

from __future__ import annotations

from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.app import SoraBot
from bot.discord.approval_components import APPROVAL_ITEMS
from bot.discord.command_tree import send_reply
from bot.discord.governance_rendering import (
    blocklist_embed,
    limits_line,
    settings_embed,
)
from bot.discord.interactions import guild_id_of
from bot.discord.rendering import plain_text

Interaction = discord.Interaction[SoraBot]
Command = app_commands.Command[Any, ..., None]
LogChannel = discord.TextChannel | discord.Thread | discord.VoiceChannel
PHRASE = app_commands.Range[str, 1, 200]
manage_server = app_commands.checks.has_permissions(manage_guild=True)


@app_commands.describe(channel="Where the log goes; leave empty to turn the log off")
@manage_server
async def log_channel(interaction: Interaction, channel: LogChannel | None = None) -> None:
    bot, guild_id = interaction.client, guild_id_of(interaction)
    await bot.moderation.set_log_channel(
        guild_id, None if channel is None else channel.id, interaction.user.id
    )
    if channel is None:
        await send_reply(interaction, "The moderation log is off.")
        return
    problem = await bot.modlog_poster.first_line(channel, interaction.user)
    if problem is not None:
        await send_reply(
            interaction,
            f"The log channel is now {channel.mention}, but {problem}. Give me "
            "**View Channel** and **Send Messages** there; until then, log entries are "
            "dropped (videos are made as usual).",
        )
        return
    await send_reply(interaction, f"The moderation log now goes to {channel.mention}.")


@app_commands.describe(mode="on: members' requests wait for a moderator's approval")
@manage_server
async def approval(interaction: Interaction, mode: Literal["on", "off"]) -> None:
    on = mode == "on"
    await interaction.client.moderation.set_approval(
        guild_id_of(interaction), on, interaction.user.id
    )
    if on:
        text = (
            "Approval mode is **on**: a request from a member without Manage Server waits "
            "in the log channel for **Approve** or **Reject** (its quota held; refunded "
            "if rejected or not decided in time)."
        )
    else:
        text = "Approval mode is **off**: requests go straight to the video service."
    await send_reply(interaction, text)


@app_commands.describe(
    max_duration="The longest video members may ask for, in seconds (0: no limit)",
    high_quality="Whether members may ask for quality:high",
)
@manage_server
async def limits(
    interaction: Interaction,
    max_duration: app_commands.Range[int, 0, 600] | None = None,
    high_quality: bool | None = None,
) -> None:
    change = await interaction.client.moderation.set_server_limits(
        guild_id_of(interaction),
        interaction.user.id,
        max_duration=max_duration,
        high_quality=high_quality,
    )
    before, after = limits_line(change.before), limits_line(change.after)
    if before == after:
        await send_reply(interaction, f"Limits: {after} (unchanged).")
    else:
        await send_reply(interaction, f"Limits: {before} → **{after}**.")


async def show(interaction: Interaction) -> None:
    """Everyone may see the settings, except the blocklist's phrases (only how many)."""
    guild_id = guild_id_of(interaction)
    moderation = interaction.client.moderation
    settings = await moderation.settings(guild_id)
    quota = await moderation.quota_status(guild_id, interaction.user.id)
    await send_reply(interaction, embed=settings_embed(settings, quota))


@app_commands.describe(phrase="A word or phrase to refuse in prompts")
@manage_server
async def blocklist_add(interaction: Interaction, phrase: PHRASE) -> None:
    added = await interaction.client.moderation.block_phrase(
        guild_id_of(interaction), phrase, interaction.user.id
    )
    shown = plain_text(phrase)
    await send_reply(
        interaction,
        f"Prompts containing “{shown}” are now refused."
        if added
        else f"“{shown}” was already on the blocklist.",
    )


@app_commands.describe(phrase="A phrase on the blocklist")
@manage_server
async def blocklist_remove(interaction: Interaction, phrase: PHRASE) -> None:
    removed = await interaction.client.moderation.unblock_phrase(
        guild_id_of(interaction), phrase, interaction.user.id
    )
    shown = plain_text(phrase)
    await send_reply(
        interaction,
        f"Removed “{shown}” from the blocklist."
        if removed
        else f"“{shown}” isn't on the blocklist (`/sora settings blocklist` lists it).",
    )


@manage_server
async def blocklist(interaction: Interaction) -> None:
    phrases = await interaction.client.moderation.blocked_phrases(guild_id_of(interaction))
    await send_reply(interaction, embed=blocklist_embed(phrases))


COMMANDS: tuple[tuple[str, str, Any], ...] = (
    ("log-channel", "Where the moderation log goes (Manage Server)", log_channel),
    ("approval", "Hold members' requests for a moderator's approval (Manage Server)", approval),
    ("limits", "Longest video and whether high quality is allowed (Manage Server)", limits),
    ("show", "Every setting of the video bot in this server", show),
    ("blocklist-add", "Refuse prompts containing a phrase (Manage Server)", blocklist_add),
    ("blocklist-remove", "Take a phrase off the blocklist (Manage Server)", blocklist_remove),
    ("blocklist", "The blocked phrases (Manage Server)", blocklist),
)


class GovernanceCog(commands.Cog):
    def __init__(self, bot: SoraBot) -> None:
        self.bot = bot

    def _group(self) -> app_commands.Group | None:
        group = self.bot.sora.get_command("settings")
        return group if isinstance(group, app_commands.Group) else None

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*APPROVAL_ITEMS)
        group = self._group()
        if group is None:
            raise RuntimeError("cogs.admin makes /sora settings: load it first")
        for name, description, callback in COMMANDS:
            group.add_command(
                app_commands.Command(name=name, description=description, callback=callback)
            )

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*APPROVAL_ITEMS)
        group = self._group()  # gone already if cogs.admin was unloaded first
        if group is not None:
            for name, _, _ in COMMANDS:
                group.remove_command(name)


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, SoraBot)
    await bot.add_cog(GovernanceCog(bot))
