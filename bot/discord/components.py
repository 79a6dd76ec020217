"""The buttons on a posted video, and the Remix form: each builds and parses its own id.

A button's custom id is `sora:<action>:<task id>` (`sora:again:K7M3QX`). Each class
declares its action once; from it come both the id it puts on a button and the template
discord.py matches clicks against (`DynamicItem`), so a click on any post, even one
made before a restart or an upgrade, reaches the class that made it, which rebuilds
itself from the id. The ids are the same strings earlier versions posted.

A click only parses the interaction, asks the service (which decides who may do what)
and renders the answer; errors go to the command tree's `report_error`, the one place
they become words. The notifier attaches `result_view` to each result post.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from typing import Any, ClassVar, Self

import discord

from bot.discord.command_tree import report_error
from bot.discord.interactions import (
    bot_of,
    check_bot_can_deliver,
    guild_id_of,
    moderates_messages,
)
from bot.discord.outcome_rendering import deleted_line
from bot.discord.submission import (
    remix_and_announce,
    repeat_request,
    request_for,
    submit_and_announce,
)
from bot.domain import Mode, Task
from bot.errors import BotError
from bot.service import SubmitRequest

TASK_ID = r"(?P<task>[0-9A-Z]{6})"
REMIX_CHANGE_MAX = 1000


class TaskButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"(?!)",  # the base matches nothing; each subclass declares its own action
):
    """A button about one task. Subclasses say `action=`, `label=`, `emoji=` (and
    `style=`) in their class line and implement `clicked`."""

    ACTION: ClassVar[str]
    LABEL: ClassVar[str]
    EMOJI: ClassVar[str]
    STYLE: ClassVar[discord.ButtonStyle]

    def __init_subclass__(
        cls,
        *,
        action: str,
        label: str,
        emoji: str,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init_subclass__(template=re.escape(f"sora:{action}:") + TASK_ID)
        cls.ACTION, cls.LABEL, cls.EMOJI, cls.STYLE = action, label, emoji, style

    def __init__(self, task_id: str, *, disabled: bool = False) -> None:
        """Raises ValueError for anything that is not a task id."""
        if self.task_id_in(self.custom_id_for(task_id)) != task_id:
            raise ValueError(f"not a task id: {task_id!r}")
        super().__init__(
            discord.ui.Button(
                label=self.LABEL,
                emoji=self.EMOJI,
                style=self.STYLE,
                custom_id=self.custom_id_for(task_id),
                disabled=disabled,
            )
        )
        self.task_id = task_id

    @classmethod
    def custom_id_for(cls, task_id: str) -> str:
        return f"sora:{cls.ACTION}:{task_id}"

    @classmethod
    def task_id_in(cls, custom_id: str) -> str | None:
        """The task a custom id of this class names, or None if it is not one."""
        found = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
        return None if found is None else found["task"]

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(match["task"])

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            await self.clicked(interaction)
        except Exception as exc:
            await report_error(interaction, exc)

    async def clicked(self, interaction: discord.Interaction[discord.Client]) -> None:
        raise NotImplementedError


class AgainButton(
    TaskButton, action="again", label="Again", emoji="🔁", style=discord.ButtonStyle.primary
):
    """Same prompt and options again, charged to whoever clicks. Works after restarts."""

    async def clicked(self, interaction: discord.Interaction[discord.Client]) -> None:
        bot = bot_of(interaction)
        source = await bot.service.task_to_repeat(
            guild_id_of(interaction), interaction.user.id, self.task_id
        )
        check_bot_can_deliver(interaction)
        await submit_and_announce(bot, interaction, repeat_request(interaction, source))


class RemixButton(TaskButton, action="remix", label="Remix", emoji="🎛️"):
    """Asks what should change, then remixes the finished video (charged to the clicker)."""

    async def clicked(self, interaction: discord.Interaction[discord.Client]) -> None:
        await interaction.response.send_modal(RemixModal(self.task_id))


class DeleteButton(TaskButton, action="delete", label="Delete", emoji="🗑️"):
    """Remove a posted result (the service says whose): the message, the video file if
    this bot serves it, and the stored link."""

    async def clicked(self, interaction: discord.Interaction[discord.Client]) -> None:
        bot = bot_of(interaction)
        task = await bot.service.task_for_delete(
            guild_id_of(interaction),
            interaction.user.id,
            self.task_id,
            moderator=moderates_messages(interaction),
        )
        await interaction.response.defer(ephemeral=True, thinking=True)
        if interaction.message is not None:
            # Already deleted (a double click): still remove the video below.
            with contextlib.suppress(discord.NotFound):
                await interaction.message.delete()
        # Deleting means the video is gone, not just the post: a file the bot serves
        # itself and the link `/sora status` shows go too.
        await bot.aftermath.forget_video(task, interaction.message)
        await bot.moderation.deleted_video(task, interaction.user.id)
        await interaction.followup.send(deleted_line(task), ephemeral=True)


class RemixModal(discord.ui.Modal, title="Remix this video"):
    """What should change; sent by RemixButton, answered while the bot runs."""

    change: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
        label="What should change?",
        custom_id="change",
        style=discord.TextStyle.paragraph,
        placeholder="e.g. make it night time, with neon signs",
        min_length=1,
        max_length=REMIX_CHANGE_MAX,
    )

    def __init__(self, task_id: str) -> None:
        super().__init__(custom_id=f"sora:remix-form:{task_id}")
        self.task_id = task_id

    async def on_submit(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            bot = bot_of(interaction)
            check_bot_can_deliver(interaction)
            request = request_for(interaction, mode=Mode.TEXT, prompt=self.change.value)
            await remix_and_announce(bot, interaction, self.task_id, request)
        except Exception as exc:
            await report_error(interaction, exc)


class RetryButton(
    TaskButton, action="retry", label="Try again", emoji="✏️", style=discord.ButtonStyle.primary
):
    """On a failure post: opens the prompt for editing, then submits it with the failed
    task's options (charged to whoever clicks, like Again). A prompt refused for content
    is not shown publicly, so only its requester may open it."""

    async def clicked(self, interaction: discord.Interaction[discord.Client]) -> None:
        bot = bot_of(interaction)
        source = await bot.service.task_to_repeat(
            guild_id_of(interaction), interaction.user.id, self.task_id
        )
        if source.failure_code == "content_policy" and source.user_id != interaction.user.id:
            raise BotError("Only the member who asked for this video can try it again.")
        await interaction.response.send_modal(RetryModal(source))


class RetryModal(discord.ui.Modal, title="Try again"):
    """The failed prompt, ready to be edited; submitted like Again."""

    prompt: discord.ui.TextInput[RetryModal] = discord.ui.TextInput(
        label="Prompt",
        custom_id="prompt",
        style=discord.TextStyle.paragraph,
        min_length=1,
        max_length=4000,
    )

    def __init__(self, source: Task) -> None:
        super().__init__(custom_id=f"sora:retry-form:{source.id}")
        self.source = source
        self.prompt.default = source.prompt[:4000]

    async def on_submit(self, interaction: discord.Interaction[discord.Client]) -> None:
        try:
            bot = bot_of(interaction)
            check_bot_can_deliver(interaction)
            await submit_and_announce(bot, interaction, self.request(interaction))
        except Exception as exc:
            await report_error(interaction, exc)

    def request(self, interaction: discord.Interaction[discord.Client]) -> SubmitRequest:
        return replace(repeat_request(interaction, self.source), prompt=self.prompt.value)


# Registered by the video cog; a click on any of them is answered even after a restart.
DYNAMIC_ITEMS: tuple[type[TaskButton], ...] = (
    AgainButton,
    DeleteButton,
    RemixButton,
    RetryButton,
)


def result_view(task: Task, *, remix: bool = False) -> discord.ui.View:
    """The buttons under a result post: Again, Remix (if the provider can), Delete."""
    view = discord.ui.View(timeout=None)
    view.add_item(AgainButton(task.id))
    if remix:
        view.add_item(RemixButton(task.id))
    view.add_item(DeleteButton(task.id))
    return view


def failure_view(task: Task) -> discord.ui.View | None:
    """Try again under a failure post where a retry makes sense (not when the service
    account ran out of credits, or a moderator rejected the request: only a moderator
    can change either)."""
    if task.failure_code in ("insufficient_credits", "rejected"):
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(task.id))
    return view
