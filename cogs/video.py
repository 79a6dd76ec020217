"""`/sora text`, `/sora image`, `/sora status`, `/sora history`: parse, call the service, render.

Each command is the module-level function of the same name. The text and image
commands' choices (aspect, duration, quality) and prompt length come from the active
provider's capabilities, so the cog makes the functions into commands when it loads
(`provider_command`), not at import; `/sora image` exists only if the provider animates
pictures. The buttons under posted videos are `bot.discord.components`; submitting is
`bot.discord.submission`; what the answers look like is `bot.discord.rendering`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.discord.app import SoraBot
from bot.discord.command_tree import send_reply
from bot.discord.components import DYNAMIC_ITEMS
from bot.discord.interactions import check_bot_can_deliver, guild_id_of, is_moderator
from bot.discord.rendering import history_embed, task_choice_name, task_embed, your_tasks_embed
from bot.discord.submission import attachment_ref, request_for, submit_and_announce
from bot.domain import Aspect, Mode, Quality
from bot.providers.base import Capabilities

HISTORY_PAGE_SIZE = 10
STATUS_PAGE_SIZE = 10
DISCORD_STRING_MAX = 6000  # the longest string option Discord accepts

Interaction = discord.Interaction[SoraBot]
Command = app_commands.Command[Any, ..., None]
Callback = Callable[..., Coroutine[Any, Any, None]]

OPTION_DESCRIPTIONS = {
    "aspect": "Shape of the video",
    "duration": "Length of the video",
    "quality": "standard is faster; high looks better",
}


# /sora text and /sora image


@app_commands.describe(prompt="What the video should show", **OPTION_DESCRIPTIONS)
async def text(
    interaction: Interaction,
    prompt: app_commands.Range[str, 1, DISCORD_STRING_MAX],
    aspect: Choice[str] | None = None,
    duration: Choice[int] | None = None,
    quality: Choice[str] | None = None,
) -> None:
    await _submit(interaction, Mode.TEXT, prompt, aspect, duration, quality)


@app_commands.describe(
    image="A PNG, JPEG or WebP picture to start from",
    prompt="What should happen in the video",
    **OPTION_DESCRIPTIONS,
)
async def image(
    interaction: Interaction,
    image: discord.Attachment,
    prompt: app_commands.Range[str, 1, DISCORD_STRING_MAX],
    aspect: Choice[str] | None = None,
    duration: Choice[int] | None = None,
    quality: Choice[str] | None = None,
) -> None:
    await _submit(interaction, Mode.IMAGE, prompt, aspect, duration, quality, image)


async def _submit(
    interaction: Interaction,
    mode: Mode,
    prompt: str,
    aspect: Choice[str] | None,
    duration: Choice[int] | None,
    quality: Choice[str] | None,
    attachment: discord.Attachment | None = None,
) -> None:
    check_bot_can_deliver(interaction)
    request = request_for(
        interaction,
        mode=mode,
        prompt=prompt,
        aspect=None if aspect is None else Aspect(aspect.value),
        duration=None if duration is None else duration.value,
        quality=None if quality is None else Quality(quality.value),
        attachment=None if attachment is None else attachment_ref(attachment),
    )
    await submit_and_announce(interaction.client, interaction, request)


def option_choices(
    caps: Capabilities,
) -> tuple[list[Choice[str]], list[Choice[int]], list[Choice[str]]]:
    """The provider's aspects, durations and qualities, as Discord choices."""
    aspects = [Choice(name=a.value, value=a.value) for a in caps.aspects]
    if caps.duration_selectable:
        durations = [Choice(name=f"{d} seconds", value=d) for d in caps.durations]
    else:
        durations = [
            Choice(name=f"about {d} seconds (set by the provider)", value=d) for d in caps.durations
        ]
    qualities = [Choice(name=q.value, value=q.value) for q in caps.qualities]
    return aspects, durations, qualities


def provider_command(
    callback: Callback, *, name: str, description: str, caps: Capabilities
) -> Command:
    """`callback` as a command offering the provider's options and prompt length."""
    command: Command = app_commands.Command(name=name, description=description, callback=callback)
    aspects, durations, qualities = option_choices(caps)
    app_commands.choices(aspect=aspects, quality=qualities)(command)
    app_commands.choices(duration=durations)(command)
    # The annotation allows Discord's longest string; the provider may accept less. No
    # public API lowers a built command's limit, and this command is this cog's own.
    command._params["prompt"].max_value = min(caps.max_prompt_length, DISCORD_STRING_MAX)
    return command


# /sora status


async def complete_task(interaction: Interaction, current: str) -> list[Choice[str]]:
    """The member's latest tasks whose id, state or prompt contains what they typed."""
    if interaction.guild_id is None:
        return []
    page = await interaction.client.service.user_tasks(
        interaction.guild_id, interaction.user.id, page=1, page_size=25
    )
    typed = current.strip().lower()
    choices = []
    for task in page.tasks:
        name = task_choice_name(task)
        if typed and typed not in name.lower():
            continue
        choices.append(Choice(name=name, value=task.id))
    return choices[:25]


@app_commands.describe(task="A task id (like K7M3QX); leave empty to list yours")
@app_commands.autocomplete(task=complete_task)
async def status(interaction: Interaction, task: str | None = None) -> None:
    guild_id = guild_id_of(interaction)
    service = interaction.client.service
    if task:
        found = await service.find_task(
            guild_id, interaction.user.id, task, moderator=is_moderator(interaction)
        )
        usual = None if found.state.is_terminal else service.usual_seconds(found)
        await send_reply(
            interaction,
            embed=task_embed(found, viewer_id=interaction.user.id, usual_seconds=usual),
        )
        return
    page = await service.user_tasks(
        guild_id, interaction.user.id, page=1, page_size=STATUS_PAGE_SIZE
    )
    await send_reply(interaction, embed=your_tasks_embed(page, service.usual_seconds))


# /sora history


@app_commands.describe(
    user="Whose history (moderators may pick anyone; default: yours)",
    page="Page number (10 videos a page)",
)
async def history(
    interaction: Interaction,
    user: discord.Member | discord.User | None = None,
    page: app_commands.Range[int, 1, 10_000] = 1,
) -> None:
    owner = user or interaction.user
    result = await interaction.client.service.history(
        guild_id_of(interaction),
        interaction.user.id,
        owner.id,
        moderator=is_moderator(interaction),
        page=page,
        page_size=HISTORY_PAGE_SIZE,
    )
    other = None if owner.id == interaction.user.id else owner.display_name
    await send_reply(interaction, embed=history_embed(result, page, other=other))


class VideoCog(commands.Cog):
    def __init__(self, bot: SoraBot) -> None:
        self.bot = bot
        self._names: list[str] = []

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)
        caps = self.bot.providers.capabilities  # every configured provider's options
        built: list[Command] = [
            provider_command(
                text, name="text", description="Make a video from a text prompt", caps=caps
            )
        ]
        if Mode.IMAGE in caps.modes:
            built.append(
                provider_command(
                    image, name="image", description="Bring a picture to life", caps=caps
                )
            )
        built += [
            app_commands.Command(
                name="status", description="Your videos in progress, or one task", callback=status
            ),
            app_commands.Command(
                name="history",
                description="Videos made in this server, page by page",
                callback=history,
            ),
        ]
        for command in built:
            self.bot.sora.add_command(command)
            self._names.append(command.name)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)
        for name in self._names:
            self.bot.sora.remove_command(name)


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, SoraBot)
    await bot.add_cog(VideoCog(bot))
