"""Plain words about tasks: state labels, why a video failed, what to try next.

No Discord here (no Markdown, mentions or timestamps): `bot/discord/rendering.py` puts
these words into the embeds and messages members see.
"""

from __future__ import annotations

from bot.domain import Approval, GenerationOptions, Quality, Task, TaskState

_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))

FAILURE_SENTENCES = {
    "content_policy": "The video service refused this prompt under its content policy.",
    "invalid_image": "The video service couldn't use the picture.",
    "insufficient_credits": "The video service account ran out of credits.",
    "provider_error": "The video service had a problem making this video.",
    "expired": "It took far too long, so I stopped waiting for it.",
    "rejected": "A moderator of this server didn't approve this request.",
    "approval_expired": "No moderator approved this request in time.",
}
NEXT_STEPS = {
    "content_policy": "Try rephrasing the prompt (no real people, brands or violence).",
    "invalid_image": "Try another PNG, JPEG or WebP picture.",
    "insufficient_credits": "Let a moderator know; try again later.",
    "provider_error": "Try again in a few minutes.",
    "expired": "Try again in a few minutes.",
    "rejected": "Ask a moderator if you're not sure why.",
    "approval_expired": "Try again later, or ask a moderator to look at the waiting requests.",
}


def state_label(task: Task) -> str:
    match task.state:
        case TaskState.QUEUED if task.approval is Approval.PENDING:
            return "⏸️ Waiting for a moderator's approval"
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


MODEL_NAMES = {Quality.STANDARD: "Sora 2", Quality.HIGH: "Sora 2 Pro"}


def plural(count: int, word: str, words: str | None = None) -> str:
    """ "1 video", "2 videos", "0 videos" (`words` for an irregular plural)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def model_name(quality: Quality) -> str:
    """What members call the model: "Sora 2" (standard) or "Sora 2 Pro" (high quality)."""
    return MODEL_NAMES.get(quality, "Sora 2")


def and_list(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe_options(options: GenerationOptions) -> str:
    return f"{options.aspect.value} · {options.duration_seconds} s · {options.quality.value}"


def one_line(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters with "…", for places Discord shows
    verbatim (autocomplete choices), where Markdown escapes would show as backslashes.
    Direction overrides are dropped so the text cannot pretend to read otherwise."""
    flat = " ".join(text.translate(_BIDI_CONTROLS).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def wait_phrase(seconds: float) -> str:
    """How long, in words: about 2 minutes, a minute, 20 seconds, a second."""
    minutes = round(seconds / 60)
    if minutes <= 1:
        if seconds >= 45:
            return "about a minute"
        whole = max(1, round(seconds))
        return "about a second" if whole == 1 else f"about {whole} seconds"
    return f"about {minutes} minutes"
