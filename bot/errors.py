"""Typed errors, each carrying the sentence a Discord user should read.

The command tree's error handler is the one place that turns these into answers, so a
cog never formats an error itself and a new error needs only a class here.
"""

from __future__ import annotations

from datetime import datetime


def relative_time(moment: datetime) -> str:
    """A Discord timestamp ("in 5 minutes"): every reader sees it in their own time zone.

    The one copy: error sentences carry it (a quota's reset), and `bot.discord.rendering`
    uses it for everything else. It lives here, at the bottom of the imports, because an
    error is worded where it is raised."""
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
    """A request that does not fit a quota. `cost` (what was asked) and `remaining` (what
    is left of `limit`) are optional, so older callers still work; in seconds they let the
    sentence say what was asked and suggest a shorter video."""

    def __init__(
        self,
        *,
        mine: bool,
        limit: int,
        unit: str,
        period: str,
        resets_at: datetime,
        cost: int | None = None,
        remaining: int | None = None,
    ) -> None:
        when = f"It resets {relative_time(resets_at)}; nothing was charged for this request."
        span = "today's" if period == "today" else f"{period}'s"
        whose = f"{span} {limit} s" if mine else f"the server's {limit} s for {period}"
        if unit == "seconds" and cost is not None and remaining is not None and remaining > 0:
            are = "is" if remaining == 1 else "are"
            message = (
                f"You asked for {cost} s; {remaining} s of {whose} {are} left. "
                f"Try a shorter video. {when}"
            )
        else:
            who = "You have used your" if mine else "This server has used its"
            message = f"{who} {_count(limit, unit)} for {period}. {when}"
        super().__init__(message)
        self.resets_at = resets_at
        self.cost = cost
        self.remaining = remaining


def _count(amount: int, unit: str) -> str:
    """ "1 video", "2 videos", "1 second", "10 seconds"."""
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{amount} {singular if amount == 1 else unit}"


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


class ProviderError(BotError):
    """A video provider could not do what was asked.

    `user_message` is what a member reads; `detail` is the provider's own words, for the
    log and for moderators, never containing a key.
    """

    retryable = False

    def __init__(self, provider: str, user_message: str, detail: str = "") -> None:
        super().__init__(user_message)
        self.provider = provider
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.provider}: {self.detail or self.user_message}"


class ProviderRefusedError(ProviderError):
    """The provider refused this request (content policy, invalid input)."""

    def __init__(
        self, provider: str, detail: str, *, content_policy: bool = False, user_message: str = ""
    ) -> None:
        if not user_message:
            user_message = (
                "The video service refused this prompt under its content policy. "
                "Please rephrase it and try again."
                if content_policy
                else f"The video service refused the request: {detail[:300]}"
            )
        super().__init__(provider, user_message, detail)
        self.content_policy = content_policy


class ProviderAuthError(ProviderError):
    """The key is missing, wrong or revoked: a problem for the owner, not the user."""

    def __init__(self, provider: str, detail: str = "") -> None:
        super().__init__(
            provider,
            "The video service isn't set up correctly right now, so I can't make videos. "
            "The server owner has been told in the bot's log.",
            detail,
        )


class InsufficientCreditsError(ProviderError):
    def __init__(self, provider: str, detail: str = "") -> None:
        super().__init__(
            provider,
            "The video service account is out of credits. "
            "Please let the server owner know; nothing was charged to your quota.",
            detail,
        )


class RateLimitedError(ProviderError):
    retryable = True

    def __init__(self, provider: str, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(
            provider,
            "The video service is busy right now. Please try again in a minute.",
            detail,
        )
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    """5xx, gateway HTML pages, timeouts, connection errors, malformed answers."""

    retryable = True

    def __init__(self, provider: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(
            provider,
            "The video service is having trouble right now. Please try again in a few minutes.",
            detail,
        )
        self.retry_after = retry_after


class ProviderBusyError(ProviderError):
    """Our own client-side cap on the provider's concurrent tasks is reached."""

    def __init__(self, provider: str, limit: int) -> None:
        super().__init__(
            provider,
            f"The video service is already making {limit} videos for this bot, its maximum. "
            "Please try again in a few minutes; nothing was charged.",
            f"client-side cap of {limit} concurrent tasks reached",
        )


class UnknownProviderTaskError(ProviderError):
    def __init__(self, provider: str, task_id: str, detail: str = "") -> None:
        super().__init__(
            provider,
            "The video service no longer knows this task.",
            detail or f"unknown task {task_id}",
        )


class CallbackRejectedError(Exception):
    """A callback that is unsigned, wrongly signed, stale or malformed: it changes nothing."""


class ChannelNotAllowedError(BotError):
    def __init__(self, allowed_channel_ids: frozenset[int]) -> None:
        channels = ", ".join(f"<#{c}>" for c in sorted(allowed_channel_ids))
        super().__init__(f"Videos can be made in {channels} only in this server.")


class BotChannelPermissionError(BotError):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"I need the {permission_phrase(missing)} in this channel to deliver videos. "
            "Ask a moderator to give me "
            + ("it" if len(missing) == 1 else "them")
            + ", or use another channel."
        )
        self.missing = list(missing)


def permission_phrase(names: list[str]) -> str:
    """ "**Send Messages** permission", "**Send Messages** and **Attach Files** permissions"."""
    bold = [f"**{n}**" for n in names]
    joined = bold[0] if len(bold) == 1 else ", ".join(bold[:-1]) + " and " + bold[-1]
    return f"{joined} permission" + ("" if len(bold) == 1 else "s")


class DuplicateCallbackError(CallbackRejectedError):
    """A report already processed (a signed webhook delivered twice): the listener
    acknowledges it and changes nothing."""
