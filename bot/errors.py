"""Typed errors, each carrying the sentence a Discord user should read.

The command tree's error handler is the one place that turns these into answers, so a
cog never formats an error itself and a new error needs only a class here.
"""

from __future__ import annotations

from datetime import datetime


def _when(moment: datetime) -> str:
    """A Discord timestamp: every reader sees it in their own time zone."""
    return f"<t:{int(moment.timestamp())}:R>"


class BotError(Exception):
    """An expected failure with a friendly explanation; never logged as a crash."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class GuildOnlyError(BotError):
    def __init__(self) -> None:
        super().__init__("These commands work in servers only. Try `/sora` in a server channel.")


class MissingPermissionError(BotError):
    def __init__(self, permission: str = "Manage Server") -> None:
        super().__init__(f"Only members with the **{permission}** permission can do that.")


class InvalidInputError(BotError):
    """The user's own input is wrong; the message says how to fix it."""


class QuotaExceededError(BotError):
    def __init__(
        self, *, mine: bool, limit: int, unit: str, period: str, resets_at: datetime
    ) -> None:
        who = "You have used your" if mine else "This server has used its"
        super().__init__(
            f"{who} {limit} {unit} for {period}. It resets {_when(resets_at)}; "
            "nothing was charged for this request."
        )
        self.resets_at = resets_at


class GenerationDisabledError(BotError):
    def __init__(self) -> None:
        super().__init__(
            "Video generation is turned off in this server. "
            "A moderator can turn it on with `/sora quota set`."
        )


class TaskNotFoundError(BotError):
    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"I can't find a task `{task_id}` of yours. `/sora status` lists your tasks."
        )


class IllegalTransitionError(Exception):
    """A state change that would move a task backwards or out of a final state.

    A programming or ordering fault rather than a user error, so it is not a BotError:
    callers that expect late duplicates check `can_transition` first.
    """


class ConfigurationError(Exception):
    """The bot cannot run as configured; the message names each problem."""
