"""What a task looks like in Discord while it is asked for and looked at: the public
card, progress, `/sora status` and `/sora history`, and the text helpers every card uses
(embed limits, members' words shown safely). What a finished video posts is in
`outcome_rendering`, what the quota commands show in `quota_rendering`.

Pure functions from domain objects to `discord.Embed`s and strings: no I/O, no state,
so each can be tested on its own (tests/discord/test_rendering.py). The words themselves
(state labels, failure sentences) come from `bot.wording`; this module adds Discord's
side: Markdown escaping of members' prompts, mentions, timestamps and embed limits.
The notifier, the components and the cogs call these; none builds an embed itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

import discord

from bot.domain import (
    NotifyState,
    QuotaUnit,
    Task,
    TaskState,
    utc_now,
)
from bot.errors import relative_time
from bot.service import SubmitResult
from bot.store import Page
from bot.wording import (
    describe_options,
    failure_sentence,
    model_name,
    next_step,
    one_line,
    plural,
    state_label,
    wait_phrase,
)

INFO = discord.Colour.blurple()
SUCCESS = discord.Colour.green()
FAILURE = discord.Colour.red()
PROMPT_SHOWN = 1000  # characters of a prompt an embed quotes
PROMPT_IN_LINE = 50  # ... and a one-line task listing
FIELD_MAX = 1024  # Discord's limit on an embed field's value
# Discord's other embed limits (https://discord.com/developers/docs/resources/message)
TITLE_MAX, DESCRIPTION_MAX, FOOTER_MAX, AUTHOR_MAX, FIELD_NAME_MAX = 256, 4096, 2048, 256, 256
FIELDS_MAX, EMBED_MAX = 25, 6000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """`embed` within every Discord limit, whatever went into it: the last word of every
    builder here. Texts too long are shortened with "…", fields past the 25th dropped,
    and if the whole is still over 6,000 the description, then the longest fields, give way."""
    if embed.title:
        embed.title = _cut(embed.title, TITLE_MAX)
    if embed.description:
        embed.description = _cut(embed.description, DESCRIPTION_MAX)
    items = [(i.name or "-", i.value or "-", bool(i.inline)) for i in embed.fields]
    embed.clear_fields()
    for name, value, inline in items[:FIELDS_MAX]:
        embed.add_field(
            name=_cut(name, FIELD_NAME_MAX), value=_cut(value, FIELD_MAX), inline=inline
        )
    if embed.footer.text:
        embed.set_footer(text=_cut(embed.footer.text, FOOTER_MAX), icon_url=embed.footer.icon_url)
    if embed.author.name:
        embed.set_author(
            name=_cut(embed.author.name, AUTHOR_MAX),
            url=embed.author.url,
            icon_url=embed.author.icon_url,
        )
    excess = len(embed) - EMBED_MAX
    if excess > 0 and embed.description:
        embed.description = _cut(embed.description, max(1, len(embed.description) - excess))
        excess = len(embed) - EMBED_MAX
    while excess > 0 and embed.fields:
        index = max(range(len(embed.fields)), key=lambda i: len(embed.fields[i].value or ""))
        item = embed.fields[index]
        value = item.value or ""
        embed.set_field_at(
            index,
            name=item.name,
            value=_cut(value, max(1, len(value) - excess)),
            inline=bool(item.inline),
        )
        if len(value) <= 1:
            embed.remove_field(len(embed.fields) - 1)  # names alone are too long: drop
        excess = len(embed) - EMBED_MAX
    return embed


# Members' words, shown safely

# Inline formatting (* _ ~ | `), masked links ([ ]), mentions, timestamps and custom
# emoji (<), quotes (>), headings and subtext (#), and the escape character itself.
_MARKDOWN = re.compile(r"[\\*_~|`\[\]<>#]")
_BULLET = re.compile(r"^([-+])(?=\s)")
_NUMBERED = re.compile(r"^(\d+)\.(?=\s)")


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


relative = relative_time  # a Discord timestamp ("in 5 minutes"), in each reader's time zone


def quoted_prompt(task: Task) -> str:
    return f"> {short_prompt(task.prompt, PROMPT_SHOWN)}"


def footer_for(task: Task) -> str:
    """A result post's whole footer: the notifier finds earlier posts by it."""
    return f"Task {task.id}"


def took(task: Task) -> str:
    if task.completed_at is None:
        return "?"
    seconds = int((task.completed_at - task.started_at).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


# Submitting


def submission_embed(
    result: SubmitResult, user: discord.abc.User | None, provider_name: str, expected: float
) -> discord.Embed:
    """The public "on its way" card: task, options, expected time, quota left."""
    task = result.task
    embed = discord.Embed(
        title="🎬 Your video is on its way", description=quoted_prompt(task), colour=INFO
    )
    embed.add_field(name="Options", value=describe_options(task.options), inline=True)
    embed.add_field(name="Model", value=model_name(task.options.quality), inline=True)
    embed.add_field(name="Video service", value=result.provider_name or provider_name)
    embed.add_field(
        name="Expected",
        value=f"{relative(result.expected_ready_at)} ({wait_phrase(expected)})",
        inline=True,
    )
    quota = result.quota
    # Public: only the server's quota; a member's own is theirs (`/sora quota show`).
    embed.add_field(
        name="Server quota left today",
        value=(
            f"**{_amount(quota.guild_left_today, quota.limits.unit)}**"
            f" · resets {relative(quota.day_resets_at)}"
        ),
        inline=False,
    )
    for note in result.notes:
        embed.add_field(name="Note", value=note, inline=False)
    if user is not None:
        embed.set_author(name=user.display_name, icon_url=user.display_avatar.url)
    embed.set_footer(text=f"{footer_for(task)} · I'll post it here when it's ready.")
    return fit_embed(embed)


def _amount(amount: int, unit: QuotaUnit) -> str:
    return plural(amount, "video") if unit is QuotaUnit.VIDEOS else f"{amount:,} s"


def progress_embed(task: Task, card: discord.Embed | None = None) -> discord.Embed:
    """The interaction's response while the video is made (edited as it progresses).

    Given the `card` shown so far (the submission card), it keeps that card's shape,
    fields, author and footer, and only the title follows the state: nothing is dropped
    on the first edit. The state label brings its own emoji."""
    if card is not None:
        embed = card.copy()
        embed.title = state_label(task)
        return fit_embed(embed)
    embed = discord.Embed(title=state_label(task), description=quoted_prompt(task), colour=INFO)
    embed.add_field(name="Options", value=describe_options(task.options), inline=True)
    embed.add_field(name="Model", value=model_name(task.options.quality), inline=True)
    embed.set_footer(text=f"{footer_for(task)} · I'll post it here when it's ready.")
    return fit_embed(embed)


# Looking at tasks


def result_message_url(task: Task) -> str | None:
    """The posted result message, which lasts (the provider's file link expires)."""
    if task.result_message_id is None or task.notify_state is not NotifyState.POSTED:
        return None
    return (
        f"https://discord.com/channels/{task.guild_id}/{task.channel_id}/{task.result_message_id}"
    )


def usually_ready(task: Task, usual_seconds: float, now: datetime | None = None) -> str:
    """When an unfinished video is usually ready, from how long such videos took lately
    (`SoraService.usual_seconds`): "usually ready in about 2 minutes"."""
    due = task.started_at + timedelta(seconds=usual_seconds)
    left = (due - (now or utc_now())).total_seconds()
    if left >= 45:
        return f"usually ready in {wait_phrase(left)}"
    if left > 0:
        return "usually ready within a minute"
    return "taking longer than usual; it will be posted as soon as it's done"


def task_embed(
    task: Task, *, viewer_id: int | None = None, usual_seconds: float | None = None
) -> discord.Embed:
    """`/sora status <task>`: one task in detail, as `viewer_id` (default: its owner) reads
    it; `usual_seconds` (how long such videos take lately) says when it is likely ready."""
    embed = discord.Embed(title=state_label(task), description=quoted_prompt(task), colour=INFO)
    embed.add_field(name="Options", value=describe_options(task.options), inline=True)
    embed.add_field(name="Model", value=model_name(task.options.quality), inline=True)
    embed.add_field(name="Requested by", value=f"<@{task.user_id}>", inline=True)
    embed.add_field(name="Started", value=relative(task.created_at), inline=True)
    if task.completed_at is not None:
        embed.add_field(name="Finished", value=relative(task.completed_at), inline=True)
    elif usual_seconds is not None and not task.state.is_terminal:
        phrase = usually_ready(task, usual_seconds)
        embed.add_field(name="Ready", value=phrase[0].upper() + phrase[1:], inline=True)
    posted = result_message_url(task)
    if task.state is TaskState.SUCCEEDED and posted:
        embed.add_field(name="Video", value=f"[Go to the video]({posted})", inline=False)
    if task.state in (TaskState.FAILED, TaskState.EXPIRED):
        whose = "Your" if viewer_id in (None, task.user_id) else "Their"
        embed.add_field(
            name="What happened",
            value=f"{failure_sentence(task)} {whose} quota was refunded. {next_step(task)}",
            inline=False,
        )
    embed.set_footer(text=footer_for(task))
    return fit_embed(embed)


def task_line(task: Task, usual_seconds: float | None = None) -> str:
    posted = result_message_url(task)
    go = f" · [video]({posted})" if task.state is TaskState.SUCCEEDED and posted else ""
    if usual_seconds is not None and not task.state.is_terminal:
        go = f" · {usually_ready(task, usual_seconds)}"
    return (
        f"`{task.id}` {state_label(task)} · {short_prompt(task.prompt, PROMPT_IN_LINE)} · "
        f"{relative(task.created_at)}{go}"
    )


def task_choice_name(task: Task) -> str:
    """An autocomplete choice: shown verbatim, so no Markdown escapes; at most 100 long."""
    return f"{task.id} · {state_label(task)} · {one_line(task.prompt, PROMPT_IN_LINE)}"[:100]


def your_tasks_embed(
    page: Page, usual_seconds: Callable[[Task], float] | None = None
) -> discord.Embed:
    """`/sora status`: the member's videos in progress (with when each is usually ready,
    given `usual_seconds`) and the latest finished ones."""
    embed = discord.Embed(title="Your videos", colour=INFO)
    if not page.tasks:
        embed.description = "You haven't made any videos here yet. Try `/sora text`."
        return embed
    active = [t for t in page.tasks if not t.state.is_terminal]
    recent = [t for t in page.tasks if t.state.is_terminal]
    # Tasks beyond this page are counted as unseen unfinished ones when the page is all
    # unfinished (the store lists unfinished first), so "+N more" stays honest.
    unseen = max(0, page.total - len(page.tasks)) if not recent else 0
    embed.add_field(
        name="In progress",
        value=_fitting(
            [task_line(t, usual_seconds(t) if usual_seconds else None) for t in active], unseen
        )
        or "nothing right now",
        inline=False,
    )
    if recent:
        embed.add_field(
            name="Recent", value=_fitting([task_line(t) for t in recent[:5]]), inline=False
        )
    embed.set_footer(text="/sora status <task> for details · /sora history for all")
    return fit_embed(embed)


def _fitting(lines: list[str], unseen: int = 0, limit: int = FIELD_MAX) -> str:
    """`lines`, one a line, as many as fit in an embed field; then "+N more" for the
    rest and for `unseen` ones not in `lines` at all."""
    shown = "\n".join(lines)
    if len(shown) <= limit and not unseen:
        return shown
    kept: list[str] = []
    for count, line in enumerate([*lines, None]):
        more = f"+{len(lines) - count + unseen} more in `/sora history`"
        if line is None:
            return "\n".join([*kept, more])
        if len("\n".join([*kept, line, more])) > limit:
            return "\n".join([*kept, more])
        kept.append(line)
    return "\n".join(kept)  # not reached


def history_embed(result: Page, page: int, *, other: str | None = None) -> discord.Embed:
    """`/sora history`: one page of the member's videos (or `other`'s, for a moderator)."""
    whose = "Your" if other is None else f"{other}'s"
    embed = discord.Embed(title=f"{whose} videos", colour=INFO)
    if result.total == 0:
        embed.description = "No videos yet."
    elif not result.tasks:
        only = "is only" if result.pages == 1 else "are only"
        embed.description = f"There {only} {plural(result.pages, 'page')}."
    else:
        embed.description = _fitting([task_line(t) for t in result.tasks], limit=DESCRIPTION_MAX)
    embed.set_footer(
        text=f"Page {min(page, result.pages)} of {result.pages} · {plural(result.total, 'video')}"
    )
    return fit_embed(embed)
