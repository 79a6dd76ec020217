"""What a moderation log entry looks like: one compact message, nobody pinged.

Members appear as mentions (which show their names) but the poster sends every entry
with no allowed mentions, so nobody is notified. A member's prompt is quoted as plain
text (no masked links, fake headings or @everyone) and cut short.
"""

from __future__ import annotations

from bot.discord.rendering import short_prompt
from bot.modlog import LogEntry, LogKind

PROMPT_IN_LOG = 300  # characters of a prompt a log entry quotes
REASON_IN_LOG = 300
MESSAGE_MAX = 2000  # Discord's limit on a message's content

_ICONS = {
    LogKind.SUBMITTED: "📨",
    LogKind.HELD: "⏸️",
    LogKind.DONE: "✅",
    LogKind.FAILED: "❌",
    LogKind.REFUSED: "🚫",
    LogKind.ACTION: "🛠️",
    LogKind.APPROVED: "👍",
    LogKind.REJECTED: "👎",
    LogKind.EXPIRED: "⌛",
}


def _who(user_id: int | None) -> str:
    return "someone" if user_id is None else f"<@{user_id}>"


def _reason(text: str) -> str:
    return short_prompt(text, REASON_IN_LOG)


def log_line(entry: LogEntry) -> str:
    """The whole message for `entry` (at most 2,000 characters)."""
    d = entry.detail
    task = f"`{entry.task_id}` " if entry.task_id else ""
    about = " · ".join(x for x in (d.get("options"), d.get("provider")) if x)
    about = f" ({about})" if about else ""
    picture = " from a picture" if d.get("mode") == "image" else ""
    match entry.kind:
        case LogKind.SUBMITTED:
            head = f"{task}{_who(entry.actor_id)} asked for a video{picture}{about}"
        case LogKind.HELD:
            head = (
                f"{task}{_who(entry.actor_id)} asks for a video{picture}{about}; "
                "it waits for a moderator's approval"
            )
        case LogKind.DONE:
            link = d.get("link")
            where = f": {link}" if link else ""
            head = f"{task}{_who(entry.actor_id)}'s video is done{where}"
        case LogKind.FAILED:
            head = f"{task}{_who(entry.actor_id)}'s video failed: {_reason(d.get('reason', ''))}"
        case LogKind.REFUSED:
            head = (
                f"{_who(entry.actor_id)}'s request was refused before anything was charged: "
                f"{_reason(d.get('reason', ''))}"
            )
        case LogKind.ACTION:
            # Written by this bot from ids and numbers (channel, role and member
            # mentions are meant to render), never from a member's words.
            head = f"{_who(entry.actor_id)} {d.get('action', 'changed a setting')}"
        case LogKind.APPROVED:
            head = f"{task}approved by {_who(entry.actor_id)} (asked by {_who(entry.member_id)})"
        case LogKind.REJECTED:
            head = (
                f"{task}rejected by {_who(entry.actor_id)} (asked by {_who(entry.member_id)}); "
                "refunded"
            )
        case LogKind.EXPIRED:
            head = (
                f"{task}expired: no moderator decided in time (asked by "
                f"{_who(entry.actor_id)}); refunded"
            )
    line = f"{_ICONS[entry.kind]} {head}"
    prompt = d.get("prompt")
    if prompt and entry.kind in (
        LogKind.SUBMITTED,
        LogKind.HELD,
        LogKind.REFUSED,
    ):
        line += f"\n> {short_prompt(prompt, PROMPT_IN_LOG)}"
    return line[:MESSAGE_MAX]


def decided_line(original: str, decision: str) -> str:
    """A held request's log message once decided: what it said, and the decision."""
    return f"{original}\n**{decision}**"[:MESSAGE_MAX]
