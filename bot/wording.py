"""The words users read about tasks, shared by the commands and the notifier."""

from __future__ import annotations

import re
from datetime import datetime

import discord

from bot.domain import GenerationOptions, Task, TaskState

# Inline formatting (* _ ~ | `), masked links ([ ]), mentions, timestamps and custom
# emoji (<), quotes (>), headings and subtext (#), and the escape character itself.
_MARKDOWN = re.compile(r"[\\*_~|`\[\]<>#]")
_BULLET = re.compile(r"^([-+])(?=\s)")
_NUMBERED = re.compile(r"^(\d+)\.(?=\s)")
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
PICTURE_ACCEPTED = (
    "✅ Your picture is fine and your video is on its way (announced in the channel). "
    "Only you can see this message; I'll show progress here."
)

FAILURE_SENTENCES = {
    "content_policy": "The video service refused this prompt under its content policy.",
    "invalid_image": "The video service couldn't use the picture.",
    "insufficient_credits": "The video service account ran out of credits.",
    "provider_error": "The video service had a problem making this video.",
    "expired": "It took far too long, so I stopped waiting for it.",
}
NEXT_STEPS = {
    "content_policy": "Try rephrasing the prompt (no real people, brands or violence).",
    "invalid_image": "Try another PNG, JPEG or WebP picture.",
    "insufficient_credits": "Let a moderator know; try again later.",
    "provider_error": "Try again in a few minutes.",
    "expired": "Try again in a few minutes.",
}


def state_label(task: Task) -> str:
    match task.state:
        case TaskState.QUEUED:
            return "⏳ Queued"
        case TaskState.SUBMITTED:
            return "📨 Waiting for the video service"
        case TaskState.RUNNING:
            progress = f" {task.progress}%" if task.progress is not None else ""
            return f"🎬 Generating{progress}"
        case TaskState.SUCCEEDED:
            return "✅ Done"
        case TaskState.FAILED:
            return "❌ Failed"
        case TaskState.EXPIRED:
            return "⌛ Timed out"


def failure_sentence(task: Task) -> str:
    return FAILURE_SENTENCES.get(task.failure_code or "", FAILURE_SENTENCES["provider_error"])


def next_step(task: Task) -> str:
    return NEXT_STEPS.get(task.failure_code or "", NEXT_STEPS["provider_error"])


def describe_options(options: GenerationOptions) -> str:
    return f"{options.aspect.value} · {options.duration_seconds} s · {options.quality.value}"


def one_line(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters with "…", for places Discord shows
    verbatim (autocomplete choices), where Markdown escapes would show as backslashes.
    Direction overrides are dropped so the text cannot pretend to read otherwise."""
    flat = " ".join(text.translate(_BIDI_CONTROLS).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def plain_text(text: str) -> str:
    """`text` (one line) escaped so Discord's Markdown shows it literally.

    Not `discord.utils.escape_markdown` alone: it escapes a masked link by matching
    `[...](...)` greedily, so in "[a](x) and [b](https://evil)" only the first `[` is
    escaped and the second link stays live. Here every character that can start or end
    formatting, a masked link, a mention, a timestamp or an emoji (`<`) is escaped, and
    so is a list marker at the start (the only line start: the text is one line).
    `escape_mentions` then breaks @everyone and @here with a zero-width space."""
    escaped = _MARKDOWN.sub(r"\\\g<0>", text)
    escaped = _NUMBERED.sub(r"\1\\.", _BULLET.sub(r"\\\1", escaped))
    return discord.utils.escape_mentions(escaped)


def short_prompt(prompt: str, limit: int = 60) -> str:
    """A prompt echoed in an embed or message: the member's words as plain text (no
    masked links, fake headings or pings), on one line, at most `limit` characters.

    It is cut before escaping, so an escape is never split, and measured after, so the
    escapes still fit the embed limit: the longest cut that fits is found by bisection."""
    flat = one_line(prompt, len(prompt) + 1)
    shown = plain_text(flat)
    if len(shown) <= limit:
        return shown
    best = "…"
    low, high = 0, min(len(flat), limit) - 1
    while low <= high:
        keep = (low + high) // 2
        candidate = plain_text(flat[:keep].rstrip() + "…")
        if len(candidate) <= limit:
            best, low = candidate, keep + 1
        else:
            high = keep - 1
    return best


def relative(moment: datetime) -> str:
    return f"<t:{int(moment.timestamp())}:R>"


def wait_phrase(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes <= 1:
        return "about a minute" if seconds >= 45 else f"about {max(1, round(seconds))} seconds"
    return f"about {minutes} minutes"
