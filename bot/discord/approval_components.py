"""Approve and Reject under a held request in the moderation log.

Each button's custom id is `sora:approve:<task id>` or `sora:reject:<task id>` and is
parsed by its own class (`DynamicItem`), so the buttons work after a restart and in any
process. A custom id can be forged, so a click proves nothing: Manage Server is checked
on the clicking member, the task must be a held request of the server the click came
from (anything else reads as "not found", whether or not it exists), and the store
decides each request once. The decision is shown on the log message, its buttons
removed; a second click is told who decided.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Self

import discord

from bot.approvals import AlreadyDecidedError, Decision, decision_words
from bot.discord.command_tree import report_error
from bot.discord.interactions import bot_of, guild_id_of, is_moderator
from bot.discord.modlog_rendering import decided_line
from bot.discord.submission import announce_approved
from bot.errors import MissingPermissionError

TASK_ID = r"(?P<task>[0-9A-Z]{6})"


class _DecisionButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"(?!)",
):
    APPROVE: bool = True
    ACTION = ""

    def __init_subclass__(cls, *, action: str, approve: bool) -> None:
        super().__init_subclass__(template=re.escape(f"sora:{action}:") + TASK_ID)
        cls.ACTION, cls.APPROVE = action, approve

    def __init__(self, task_id: str, *, disabled: bool = False) -> None:
        if not re.fullmatch(TASK_ID, task_id):
            raise ValueError(f"not a task id: {task_id!r}")
        super().__init__(
            discord.ui.Button(
                label="Approve" if self.APPROVE else "Reject",
                emoji="✅" if self.APPROVE else "🛑",
                style=discord.ButtonStyle.success if self.APPROVE else discord.ButtonStyle.danger,
                custom_id=f"sora:{self.ACTION}:{task_id}",
                disabled=disabled,
            )
        )
        self.task_id = task_id

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
            await self._decide(interaction)
        except Exception as exc:
            await report_error(interaction, exc)

    async def _decide(self, interaction: discord.Interaction[discord.Client]) -> None:
        guild_id = guild_id_of(interaction)
        if not is_moderator(interaction):
            raise MissingPermissionError()
        bot = bot_of(interaction)
        # Sending an approved request may take a few seconds: answer Discord first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            decision = await bot.approvals.decide(
                guild_id, self.task_id, interaction.user.id, approve=self.APPROVE
            )
        except AlreadyDecidedError as exc:
            await _close_message(interaction, self.task_id, decision_words(exc.task))
            raise
        await _close_message(interaction, self.task_id, decision_words(decision.task))
        await interaction.followup.send(await _outcome(bot, decision), ephemeral=True)


async def _close_message(
    interaction: discord.Interaction[discord.Client], task_id: str, decision: str
) -> None:
    """Show the decision on the clicked log message and disable its buttons."""
    message = interaction.message
    if message is None or decision in message.content:
        return
    # If this fails, the decision still stands: the buttons say "already decided".
    with contextlib.suppress(discord.HTTPException):
        await message.edit(
            content=decided_line(message.content, decision),
            view=approval_view(task_id, disabled=True),
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def _outcome(bot: Any, decision: Decision) -> str:
    task = decision.task
    if not decision.approved:
        bot.tracker.deliver_soon(task)
        return f"Rejected `{task.id}`. <@{task.user_id}> is told in the channel, and refunded."
    if decision.error is not None:
        bot.tracker.deliver_soon(task)
        return (
            f"Approved `{task.id}`, but the video service didn't take it: {decision.error} "
            f"<@{task.user_id}> is told in the channel; nothing was charged."
        )
    assert decision.result is not None
    await announce_approved(bot, decision.result)
    return f"Approved `{task.id}`: it is on its way to <#{task.channel_id}>."


class ApproveButton(_DecisionButton, action="approve", approve=True):
    """Send a held request to the video service (Manage Server)."""


class RejectButton(_DecisionButton, action="reject", approve=False):
    """Refuse a held request and refund it (Manage Server)."""


APPROVAL_ITEMS: tuple[type[_DecisionButton], ...] = (ApproveButton, RejectButton)


def approval_view(task_id: str, *, disabled: bool = False) -> discord.ui.View:
    """The buttons under a held request; `disabled` once it is decided."""
    view = discord.ui.View(timeout=None)
    view.add_item(ApproveButton(task_id, disabled=disabled))
    view.add_item(RejectButton(task_id, disabled=disabled))
    return view
