"""`/sora providers` (Manage Server, private): the configured video services in order,
each one's state (ok, or cooling down until when and why) and its last 24 hours, all
from the store, so it shows the same in every process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.app import SoraBot
from bot.discord.command_tree import send_reply
from bot.discord.interactions import guild_id_of
from bot.discord.provider_rendering import providers_embed
from bot.domain import utc_now


@app_commands.checks.has_permissions(manage_guild=True)
async def providers(interaction: discord.Interaction[SoraBot]) -> None:
    guild_id_of(interaction)
    bot = interaction.client
    now = utc_now()
    health = await bot.providers.health()
    stats = await bot.store.provider_stats(now - timedelta(hours=24))
    await send_reply(interaction, embed=providers_embed(list(bot.providers), health, stats, now))


class ProvidersCog(commands.Cog):
    def __init__(self, bot: SoraBot) -> None:
        self.bot = bot
        self.command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="providers",
            description="The video services this bot uses and how they are doing (Manage Server)",
            callback=providers,
        )

    async def cog_load(self) -> None:
        self.bot.sora.add_command(self.command)

    async def cog_unload(self) -> None:
        self.bot.sora.remove_command(self.command.name)


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, SoraBot)
    await bot.add_cog(ProvidersCog(bot))
