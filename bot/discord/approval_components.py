"""Approve and Reject under a held request in the moderation log.

Each button's custom id is `sora:approve:<task id>` or `sora:reject:<task id>` and is
parsed by its own class (`DynamicItem`), so the buttons work after a restart and in any
process. A custom id can be forged, so a click proves nothing: Manage Server is checked
on the clicking member, the task must be a held request of the server the click came
from (anything else reads as "not found", whether or not it exists), and the store
decides each request once. The decision is shown on the log message, its buttons
disabled; a second click (two moderators at once) is told who decided.
"""

from __future__ import annotations

import contextlib
from typing import Any

import discord

from bot.approvals import AlreadyDecidedError, Decision, decision_words
from bot.discord.components import TaskButton
from bot.discord.interactions import bot_of, guild_id_of, is_moderator
from bot.discord.modlog_rendering import decided_line
from bot.discord.submission import announce_approved
from bot.errors import MissingPermissionError


class _DecisionButton(TaskButton, action="decide", label="", emoji=""):
    """Approve or Reject: the same steps, the decision differs."""

    APPROVE: bool = True

    async def clicked(self, interaction: discord.Interaction[discord.Client]) -> None:
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
        bot.tracker.deliveries.deliver_soon(task)
        return f"Rejected `{task.id}`. <@{task.user_id}> is told in the channel, and refunded."
    if decision.error is not None:
        bot.tracker.deliveries.deliver_soon(task)
        return (
            f"Approved `{task.id}`, but the video service didn't take it: {decision.error} "
            f"<@{task.user_id}> is told in the channel; nothing was charged."
        )
    assert decision.result is not None
    await announce_approved(bot, decision.result)
    return f"Approved `{task.id}`: it is on its way to <#{task.channel_id}>."


class ApproveButton(
    _DecisionButton,
    action="approve",
    label="Approve",
    emoji="✅",
    style=discord.ButtonStyle.success,
):
    """Send a held request to the video service (Manage Server)."""


class RejectButton(
    _DecisionButton,
    action="reject",
    label="Reject",
    emoji="🛑",
    style=discord.ButtonStyle.danger,
):
    """Refuse a held request and refund it (Manage Server)."""

    APPROVE = False


APPROVAL_ITEMS: tuple[type[_DecisionButton], ...] = (ApproveButton, RejectButton)


def approval_view(task_id: str, *, disabled: bool = False) -> discord.ui.View:
    """The buttons under a held request; `disabled` once it is decided."""
    view = discord.ui.View(timeout=None)
    view.add_item(ApproveButton(task_id, disabled=disabled))
    view.add_item(RejectButton(task_id, disabled=disabled))
    return view
