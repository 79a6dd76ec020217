"""`/sora text`, `/sora image`, `/sora status`, `/sora history`: parse, call the service, render.

The option choices come from the active provider's capabilities, so the commands are
built when the cog loads (not at import), from the provider the bot was given.
"""

# No `from __future__ import annotations`: discord.py reads these commands' annotations
# at definition time, and some (the prompt's length limit) are built from the provider.

import contextlib
import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.app import SoraBot
from bot.command_tree import (
    PRIVATE_DEFER,
    PUBLIC_DEFER,
    defer_privately,
    defer_publicly,
    report_error,
    send_reply,
)
from bot.domain import Aspect, Mode, Quality, Task, TaskState
from bot.errors import (
    BotChannelPermissionError,
    BotError,
    GuildOnlyError,
    MissingPermissionError,
)
from bot.notifier import AGAIN_PREFIX, DELETE_PREFIX, REMIX_PREFIX
from bot.providers.base import Capabilities
from bot.service import AttachmentRef, SubmitRequest, SubmitResult
from bot.wording import (
    PICTURE_ACCEPTED,
    describe_options,
    failure_sentence,
    next_step,
    one_line,
    relative,
    short_prompt,
    state_label,
    wait_phrase,
)

log = logging.getLogger(__name__)
COLOUR = discord.Colour.from_rgb(88, 101, 242)
HISTORY_PAGE_SIZE = 10
DISCORD_STRING_MAX = 6000


def _guild_id(interaction: discord.Interaction[SoraBot]) -> int:
    if interaction.guild_id is None:
        raise GuildOnlyError()
    return interaction.guild_id


def _is_moderator(interaction: discord.Interaction[SoraBot]) -> bool:
    return interaction.permissions.manage_guild


def _check_bot_can_deliver(interaction: discord.Interaction[SoraBot]) -> None:
    """Results go out as the bot's own messages: make sure it may post them here."""
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


def submission_embed(
    result: SubmitResult, user: discord.abc.User, provider_name: str, expected: float
) -> discord.Embed:
    task = result.task
    embed = discord.Embed(
        title="🎬 Your video is on its way",
        description=f"> {short_prompt(task.prompt, 1000)}",
        colour=COLOUR,
    )
    embed.add_field(name="Options", value=describe_options(task.options), inline=True)
    embed.add_field(name="Task", value=f"`{task.id}`", inline=True)
    embed.add_field(
        name="Expected",
        value=f"{relative(result.expected_ready_at)} ({wait_phrase(expected)})",
        inline=True,
    )
    quota = result.quota
    unit = quota.limits.unit.value
    mine = quota.user_left_today
    embed.add_field(
        name="Quota left today",
        value=(
            (f"you: **{mine}** {unit} · " if mine is not None else "")
            + f"server: **{quota.guild_left_today}** {unit}"
            + f" · resets {relative(quota.day_resets_at)}"
        ),
        inline=False,
    )
    for note in result.notes:
        embed.add_field(name="Note", value=note, inline=False)
    embed.set_author(name=user.display_name, icon_url=user.display_avatar.url)
    embed.set_footer(text=f"{provider_name} · I'll post it here when it's ready.")
    return embed


async def submit_and_announce(
    bot: SoraBot, interaction: discord.Interaction[Any], request: SubmitRequest
) -> None:
    """Submit, deferring as the service reaches its slow steps: privately before it reads
    a picture (so every refusal about it stays private), else publicly once quota is held."""
    result = await bot.service.submit(
        request,
        on_reading_image=lambda: defer_privately(interaction),
        on_reserved=lambda: defer_publicly(interaction),
    )
    await announce(bot, interaction, result)


async def announce(
    bot: SoraBot, interaction: discord.Interaction[Any], result: SubmitResult
) -> None:
    """Show the channel the submission, and keep the interaction so the notifier can
    show progress on its original response while its token lives.

    After a public defer, the first followup replaces the public "thinking...". After a
    private one (a picture was read), the private "thinking..." is first resolved with a
    private line, since a first followup would replace it and stay private; the public
    announcement is then a new message, and progress shows on the private line."""
    bot.notifier.remember(result.task.id, interaction)
    if interaction.extras.pop(PRIVATE_DEFER, False):
        await interaction.edit_original_response(content=PICTURE_ACCEPTED)
    provider = bot.provider
    await interaction.followup.send(
        content=interaction.user.mention,
        embed=submission_embed(
            result, interaction.user, provider.display_name, provider.capabilities.expected_seconds
        ),
        allowed_mentions=discord.AllowedMentions(users=[interaction.user]),
    )
    interaction.extras.pop(PUBLIC_DEFER, None)


def task_embed(task: Task) -> discord.Embed:
    embed = discord.Embed(
        title=f"Task {task.id} · {state_label(task)}",
        description=f"> {short_prompt(task.prompt, 1000)}",
        colour=COLOUR,
    )
    embed.add_field(name="Mode", value=task.mode.value, inline=True)
    embed.add_field(name="Options", value=describe_options(task.options), inline=True)
    embed.add_field(name="Requested by", value=f"<@{task.user_id}>", inline=True)
    embed.add_field(name="Started", value=relative(task.created_at), inline=True)
    if task.completed_at is not None:
        embed.add_field(name="Finished", value=relative(task.completed_at), inline=True)
    if task.state is TaskState.SUCCEEDED and task.result_url:
        embed.add_field(name="Video", value=f"[Open the video]({task.result_url})", inline=False)
    if task.state in (TaskState.FAILED, TaskState.EXPIRED):
        embed.add_field(
            name="What happened",
            value=f"{failure_sentence(task)} Your quota was refunded. {next_step(task)}",
            inline=False,
        )
    return embed


def task_line(task: Task) -> str:
    return (
        f"`{task.id}` {state_label(task)} · {short_prompt(task.prompt, 50)} · "
        f"{relative(task.created_at)}"
    )


def _bot(interaction: discord.Interaction[discord.Client]) -> SoraBot:
    client = interaction.client
    assert isinstance(client, SoraBot)
    return client


class AgainButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.escape(AGAIN_PREFIX) + r"(?P<task>[0-9A-Z]{6})",
):
    """Same prompt and options again, charged to whoever clicks. Works after restarts."""

    def __init__(self, task_id: str) -> None:
        super().__init__(discord.ui.Button(label="Again", custom_id=f"{AGAIN_PREFIX}{task_id}"))
        self.task_id = task_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> "AgainButton":
        return cls(match["task"])

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            bot = _bot(interaction)
            guild_id = _guild_id(interaction)  # type: ignore[arg-type]
            # The result was posted publicly, so anyone who can see it may run it again.
            source = await bot.service.find_task(
                guild_id, interaction.user.id, self.task_id, moderator=True
            )
            _check_bot_can_deliver(interaction)  # type: ignore[arg-type]
            request = SubmitRequest(
                guild_id=guild_id,
                channel_id=interaction.channel_id or source.channel_id,
                user_id=interaction.user.id,
                mode=source.mode,
                prompt=source.prompt,
                aspect=source.options.aspect,
                duration=source.options.duration_seconds,
                quality=source.options.quality,
                attachment=None
                if source.image_url is None
                else AttachmentRef(url=source.image_url, filename="the original picture", size=0),
                interaction_id=interaction.id,
                interaction_token=interaction.token,
                upload_limit=interaction.filesize_limit,
            )
            await submit_and_announce(bot, interaction, request)
        except Exception as exc:
            await report_error(interaction, exc)


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.escape(DELETE_PREFIX) + r"(?P<task>[0-9A-Z]{6})",
):
    """Remove a posted result (the requester's own, or any for a moderator): the
    message, the video file if this bot serves it, and the stored link."""

    def __init__(self, task_id: str) -> None:
        super().__init__(discord.ui.Button(label="Delete", custom_id=f"{DELETE_PREFIX}{task_id}"))
        self.task_id = task_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> "DeleteButton":
        return cls(match["task"])

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            bot = _bot(interaction)
            guild_id = _guild_id(interaction)  # type: ignore[arg-type]
            moderator = (
                interaction.permissions.manage_messages or interaction.permissions.manage_guild
            )
            task = await bot.service.find_task(
                guild_id, interaction.user.id, self.task_id, moderator=True
            )
            if task.user_id != interaction.user.id and not moderator:
                raise BotError(
                    "Only the member who asked for this video, or a moderator, can delete it."
                )
            await interaction.response.defer(ephemeral=True, thinking=True)
            if interaction.message is not None:
                # Already deleted (a double click): still remove the video below.
                with contextlib.suppress(discord.NotFound):
                    await interaction.message.delete()
            # Deleting means the video is gone, not just the post: a file the bot serves
            # itself and the link `/sora status` shows go too.
            await bot.notifier.forget_video(task, interaction.message)
            await interaction.followup.send(
                f"Deleted the video for task `{task.id}`.", ephemeral=True
            )
        except Exception as exc:
            await report_error(interaction, exc)


class RemixModal(discord.ui.Modal, title="Remix this video"):
    change: discord.ui.TextInput["RemixModal"] = discord.ui.TextInput(
        label="What should change?",
        style=discord.TextStyle.paragraph,
        placeholder="e.g. make it night time, with neon signs",
        min_length=1,
        max_length=1000,
    )

    def __init__(self, task_id: str) -> None:
        super().__init__(custom_id=f"sora:remix-form:{task_id}")
        self.task_id = task_id

    async def on_submit(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            bot = _bot(interaction)
            guild_id = _guild_id(interaction)  # type: ignore[arg-type]
            _check_bot_can_deliver(interaction)  # type: ignore[arg-type]
            request = SubmitRequest(
                guild_id=guild_id,
                channel_id=interaction.channel_id or 0,
                user_id=interaction.user.id,
                mode=Mode.TEXT,
                prompt=self.change.value,
                interaction_id=interaction.id,
                interaction_token=interaction.token,
                upload_limit=interaction.filesize_limit,
            )
            result = await bot.service.remix(
                self.task_id, request, on_reserved=lambda: defer_publicly(interaction)
            )
            await announce(bot, interaction, result)
        except Exception as exc:
            await report_error(interaction, exc)


class RemixButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.escape(REMIX_PREFIX) + r"(?P<task>[0-9A-Z]{6})",
):
    """Asks what should change, then remixes the finished video (charged to the clicker)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(discord.ui.Button(label="Remix", custom_id=f"{REMIX_PREFIX}{task_id}"))
        self.task_id = task_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> "RemixButton":
        return cls(match["task"])

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            await interaction.response.send_modal(RemixModal(self.task_id))
        except Exception as exc:
            await report_error(interaction, exc)


class VideoCog(commands.Cog):
    def __init__(self, bot: SoraBot) -> None:
        self.bot = bot
        self._names: list[str] = []

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AgainButton, DeleteButton, RemixButton)
        caps = self.bot.provider.capabilities
        built = [self._text(caps), self._status(), self._history()]
        if Mode.IMAGE in caps.modes:
            built.insert(1, self._image(caps))
        for command in built:
            self.bot.sora.add_command(command)
            self._names.append(command.name)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(AgainButton, DeleteButton, RemixButton)
        for name in self._names:
            self.bot.sora.remove_command(name)

    # /sora text and /sora image

    async def _submit(
        self,
        interaction: discord.Interaction[SoraBot],
        mode: Mode,
        prompt: str,
        aspect: Choice[str] | None,
        duration: Choice[int] | None,
        quality: Choice[str] | None,
        attachment: discord.Attachment | None = None,
    ) -> None:
        guild_id = _guild_id(interaction)
        _check_bot_can_deliver(interaction)
        request = SubmitRequest(
            guild_id=guild_id,
            channel_id=interaction.channel_id or 0,
            user_id=interaction.user.id,
            mode=mode,
            prompt=prompt,
            aspect=None if aspect is None else Aspect(aspect.value),
            duration=None if duration is None else duration.value,
            quality=None if quality is None else Quality(quality.value),
            attachment=None
            if attachment is None
            else AttachmentRef(
                url=attachment.url,
                filename=attachment.filename,
                size=attachment.size,
                content_type=attachment.content_type,
            ),
            interaction_id=interaction.id,
            interaction_token=interaction.token,
            upload_limit=interaction.filesize_limit,
        )
        await submit_and_announce(self.bot, interaction, request)

    def _option_choices(
        self, caps: Capabilities
    ) -> tuple[list[Choice[str]], list[Choice[int]], list[Choice[str]]]:
        aspects = [Choice(name=a.value, value=a.value) for a in caps.aspects]
        if caps.duration_selectable:
            durations = [Choice(name=f"{d} seconds", value=d) for d in caps.durations]
        else:
            durations = [
                Choice(name=f"about {d} seconds (set by the provider)", value=d)
                for d in caps.durations
            ]
        qualities = [Choice(name=q.value, value=q.value) for q in caps.qualities]
        return aspects, durations, qualities

    def _text(self, caps: Capabilities) -> app_commands.Command:  # type: ignore[type-arg]
        aspects, durations, qualities = self._option_choices(caps)
        limit = min(caps.max_prompt_length, DISCORD_STRING_MAX)
        cog = self

        @app_commands.command(name="text", description="Make a video from a text prompt")
        @app_commands.describe(
            prompt="What the video should show",
            aspect="Shape of the video",
            duration="Length of the video",
            quality="standard is faster; high looks better",
        )
        @app_commands.choices(aspect=aspects, quality=qualities)
        @app_commands.choices(duration=durations)
        async def text(
            interaction: discord.Interaction[SoraBot],
            prompt: app_commands.Range[str, 1, limit],
            aspect: Choice[str] | None = None,
            duration: Choice[int] | None = None,
            quality: Choice[str] | None = None,
        ) -> None:
            await cog._submit(interaction, Mode.TEXT, prompt, aspect, duration, quality)

        return text

    def _image(self, caps: Capabilities) -> app_commands.Command:  # type: ignore[type-arg]
        aspects, durations, qualities = self._option_choices(caps)
        limit = min(caps.max_prompt_length, DISCORD_STRING_MAX)
        cog = self

        @app_commands.command(name="image", description="Bring a picture to life")
        @app_commands.describe(
            image="A PNG, JPEG or WebP picture to start from",
            prompt="What should happen in the video",
            aspect="Shape of the video",
            duration="Length of the video",
            quality="standard is faster; high looks better",
        )
        @app_commands.choices(aspect=aspects, quality=qualities)
        @app_commands.choices(duration=durations)
        async def image(
            interaction: discord.Interaction[SoraBot],
            image: discord.Attachment,
            prompt: app_commands.Range[str, 1, limit],
            aspect: Choice[str] | None = None,
            duration: Choice[int] | None = None,
            quality: Choice[str] | None = None,
        ) -> None:
            await cog._submit(interaction, Mode.IMAGE, prompt, aspect, duration, quality, image)

        return image

    # /sora status

    def _status(self) -> app_commands.Command:  # type: ignore[type-arg]
        cog = self

        async def complete_task(
            interaction: discord.Interaction[SoraBot], current: str
        ) -> list[Choice[str]]:
            if interaction.guild_id is None:
                return []
            page = await cog.bot.service.user_tasks(
                interaction.guild_id, interaction.user.id, page=1, page_size=25
            )
            typed = current.strip().lower()
            choices = []
            for task in page.tasks:
                # Choice names are shown verbatim: no Markdown escapes here.
                name = f"{task.id} · {state_label(task)} · {one_line(task.prompt, 50)}"
                if typed and typed not in name.lower():
                    continue
                choices.append(Choice(name=name[:100], value=task.id))
            return choices[:25]

        @app_commands.command(name="status", description="Your videos in progress, or one task")
        @app_commands.describe(task="A task id (like K7M3QX); leave empty to list yours")
        @app_commands.autocomplete(task=complete_task)
        async def status(
            interaction: discord.Interaction[SoraBot], task: str | None = None
        ) -> None:
            guild_id = _guild_id(interaction)
            service = cog.bot.service
            if task:
                found = await service.find_task(
                    guild_id, interaction.user.id, task, moderator=_is_moderator(interaction)
                )
                await send_reply(interaction, embed=task_embed(found))
                return
            page = await service.user_tasks(guild_id, interaction.user.id, page=1, page_size=10)
            embed = discord.Embed(title="Your videos", colour=COLOUR)
            active = [t for t in page.tasks if not t.state.is_terminal]
            recent = [t for t in page.tasks if t.state.is_terminal]
            if not page.tasks:
                embed.description = "You haven't made any videos here yet. Try `/sora text`."
            else:
                embed.add_field(
                    name="In progress",
                    value="\n".join(task_line(t) for t in active) or "nothing right now",
                    inline=False,
                )
                if recent:
                    embed.add_field(
                        name="Recent",
                        value="\n".join(task_line(t) for t in recent[:5]),
                        inline=False,
                    )
                embed.set_footer(text="/sora status <task> for details · /sora history for all")
            await send_reply(interaction, embed=embed)

        return status

    # /sora history

    def _history(self) -> app_commands.Command:  # type: ignore[type-arg]
        cog = self

        @app_commands.command(
            name="history", description="Videos made in this server, page by page"
        )
        @app_commands.describe(
            user="Whose history (moderators may pick anyone; default: yours)",
            page="Page number (10 videos a page)",
        )
        async def history(
            interaction: discord.Interaction[SoraBot],
            user: discord.Member | discord.User | None = None,
            page: app_commands.Range[int, 1, 10_000] = 1,
        ) -> None:
            guild_id = _guild_id(interaction)
            target = user or interaction.user
            if target.id != interaction.user.id and not _is_moderator(interaction):
                raise MissingPermissionError()
            result = await cog.bot.service.user_tasks(
                guild_id, target.id, page=page, page_size=HISTORY_PAGE_SIZE
            )
            whose = "Your" if target.id == interaction.user.id else f"{target.display_name}'s"
            embed = discord.Embed(title=f"{whose} videos", colour=COLOUR)
            if result.total == 0:
                embed.description = "No videos yet."
            elif not result.tasks:
                embed.description = f"There are only {result.pages} page(s)."
            else:
                embed.description = "\n".join(task_line(t) for t in result.tasks)
            embed.set_footer(
                text=f"Page {min(page, result.pages)} of {result.pages} · {result.total} video(s)"
            )
            await send_reply(interaction, embed=embed)

        return history


async def setup(bot: commands.Bot) -> None:
    assert isinstance(bot, SoraBot)
    await bot.add_cog(VideoCog(bot))
