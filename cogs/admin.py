"""`/sora settings ...` for moderators: where the bot may be used, and default options.

The rest of `/sora settings` (the log, approval mode, limits, the blocklist, `show`) is
`cogs/governance.py`, which adds its commands to this group.

Discord lets only a top-level command carry `default_member_permissions`, and `/sora`
is for everyone, so every command here checks Manage Server when it runs.
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.app import SoraBot
from bot.discord.command_tree import send_reply
from bot.discord.interactions import guild_id_of
from bot.discord.quota_rendering import channel_list
from bot.domain import Aspect, Quality
from bot.wording import describe_options

Channel = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.ForumChannel


class SettingsCommands(app_commands.Group):
    def __init__(self, bot: SoraBot) -> None:
        super().__init__(name="settings", description="Server settings for the video bot")
        self.bot = bot

    @app_commands.command(name="channels", description="Where videos may be made (Manage Server)")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def channels(self, interaction: discord.Interaction[SoraBot]) -> None:
        allowed = await self.bot.moderation.allowed_channels(guild_id_of(interaction))
        if not allowed:
            text = "Videos may be made in **every channel** I can post in."
        else:
            text = f"Videos may be made only in: {channel_list(allowed)}."
        await send_reply(interaction, text)

    @app_commands.command(
        name="channel-add", description="Allow video commands in a channel (Manage Server)"
    )
    @app_commands.describe(channel="A channel where members may make videos")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def channel_add(
        self, interaction: discord.Interaction[SoraBot], channel: Channel
    ) -> None:
        guild_id = guild_id_of(interaction)
        added = await self.bot.moderation.allow_channel(guild_id, channel.id, interaction.user.id)
        allowed = await self.bot.moderation.allowed_channels(guild_id)
        listed = channel_list(allowed)
        prefix = f"Added {channel.mention}." if added else f"{channel.mention} was already allowed."
        await send_reply(interaction, f"{prefix} Videos may now be made only in: {listed}.")

    @app_commands.command(
        name="channel-remove", description="Stop video commands in a channel (Manage Server)"
    )
    @app_commands.describe(channel="A channel to remove from the allowed list")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def channel_remove(
        self, interaction: discord.Interaction[SoraBot], channel: Channel
    ) -> None:
        guild_id = guild_id_of(interaction)
        removed = await self.bot.moderation.disallow_channel(
            guild_id, channel.id, interaction.user.id
        )
        allowed = await self.bot.moderation.allowed_channels(guild_id)
        if not removed:
            text = f"{channel.mention} wasn't on the allowed list."
        elif allowed:
            text = (
                f"Removed {channel.mention}. Videos may be made only in: {channel_list(allowed)}."
            )
        else:
            text = f"Removed {channel.mention}. The list is empty: every channel is allowed again."
        await send_reply(interaction, text)

    @app_commands.command(
        name="defaults", description="Default options for new videos (Manage Server)"
    )
    @app_commands.describe(
        aspect="Default shape",
        duration="Default length in seconds",
        quality="Default quality",
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def defaults(
        self,
        interaction: discord.Interaction[SoraBot],
        aspect: Literal["landscape", "portrait", "square"] | None = None,
        duration: app_commands.Range[int, 1, 60] | None = None,
        quality: Literal["standard", "high"] | None = None,
    ) -> None:
        options = await self.bot.moderation.set_default_options(
            guild_id_of(interaction),
            interaction.user.id,
            aspect=None if aspect is None else Aspect(aspect),
            duration=duration,
            quality=None if quality is None else Quality(quality),
        )
        await send_reply(
            interaction, f"New videos in this server default to **{describe_options(options)}**."
        )


class AdminCog(commands.Cog):
    def __init__(self, bot: SoraBot) -> None:
        self.bot = bot
        self.group = SettingsCommands(bot)

    async def cog_load(self) -> None:
        self.bot.sora.add_command(self.group)

    async def cog_unload(self) -> None:
        self.bot.sora.remove_command(self.group.name)


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, SoraBot)
    await bot.add_cog(AdminCog(bot))
