"""What the channel and the member see when a video ends: the result post and its
first sentence, the failure post, the lines that replace the public card and the
member's private "thinking...", and why a video could not be attached. Pure functions,
like `rendering`, whose text helpers they use; the notifier posts them.
"""

from __future__ import annotations

import re

import discord

from bot.discord.rendering import (
    FAILURE,
    PROMPT_SHOWN,
    SUCCESS,
    fit_embed,
    footer_for,
    quoted_prompt,
    short_prompt,
    took,
)
from bot.domain import Task, TaskState
from bot.wording import describe_options, failure_sentence, model_name, next_step

NO_FILE = "The video service didn't hand over the file; try `/sora status` later."
UNSAFE_ADDRESS = (
    "The video service's link points somewhere I won't fetch from or share, so I can't "
    "show this video here."
)
NOT_A_VIDEO = "The video service sent a file that isn't a video, so I didn't attach it."


def too_large(size: int) -> str:
    return (
        f"The video ({size / 1_048_576:.1f} MB) is larger than this server's upload limit, "
        "the video service gives no public link, and this bot has no public web address "
        "(WEBHOOK_PUBLIC_URL) to share it from, so I can't show it here."
    )


# The outcome


def failure_post(task: Task, *, direct: bool = False) -> tuple[str, discord.Embed]:
    """(content, embed) telling the requester the video couldn't be made."""
    embed = discord.Embed(
        title="❌ Your video couldn't be made",
        description=f"{failure_sentence(task)}\n**Your quota was refunded.** {next_step(task)}",
        colour=FAILURE,
    )
    embed.add_field(name="Prompt", value=short_prompt(task.prompt, PROMPT_SHOWN), inline=False)
    embed.add_field(name="Options", value=describe_options(task.options))
    embed.set_footer(text=footer_for(task))
    return f"<@{task.user_id}> sorry{_elsewhere(task, direct)}.", fit_embed(embed)


def result_post(
    task: Task,
    *,
    provider_name: str,
    link: str | None = None,
    problem: str | None = None,
    direct: bool = False,
    source_url: str | None = None,
) -> tuple[str, discord.Embed]:
    """(content, embed) for a finished video; `link` is shown as its "Video" field, and
    `problem` explains why there is neither a file nor a link. A remix links the post of
    the video it came from (`source_url`)."""
    embed = discord.Embed(
        title="✅ Your video is ready", description=quoted_prompt(task), colour=SUCCESS
    )
    embed.add_field(name="Options", value=describe_options(task.options))
    embed.add_field(name="Model", value=model_name(task.options.quality))
    embed.add_field(name="Took", value=took(task))
    embed.add_field(name="Made by", value=provider_name)
    embed.set_footer(text=footer_for(task))
    if link:
        embed.add_field(name="Video", value=f"[Open the video]({link})", inline=False)
    if problem:
        embed.add_field(name="Video", value=problem, inline=False)
    if source_url:
        embed.add_field(name="Remixed from", value=f"[the original video]({source_url})")
    return f"<@{task.user_id}> your video is ready{_elsewhere(task, direct)}!", fit_embed(embed)


def _elsewhere(task: Task, direct: bool) -> str:
    return f" (I couldn't post in <#{task.channel_id}>)" if direct else ""


_VIDEO_LINK = re.compile(r"\]\((?P<url>https?://[^\s)]+)\)")


def video_link(embed: discord.Embed) -> str | None:
    """The video link a result embed shows (its "Video" field), if any.

    The posted message is the record of what people were given: Delete reads it to find
    a self-hosted file even for results posted before the link was stored."""
    for item in embed.fields:
        if item.name == "Video" and item.value:
            found = _VIDEO_LINK.search(item.value)
            if found:
                return found["url"]
    return None


def outcome_label(task: Task) -> str:
    if task.state is TaskState.SUCCEEDED:
        return "✅ Your video is ready"
    return "❌ It didn't work out"


def posted_line(task: Task, jump_url: str) -> str:
    """The "on its way" response, pointed at the posted outcome."""
    return f"{outcome_label(task)}: {jump_url}"


def direct_messaged_line(task: Task) -> str:
    return f"{outcome_label(task)}: I couldn't post it here, so I sent it to you in a DM."


def undeliverable_line(task: Task) -> str:
    return (
        f"{outcome_label(task)}, but I couldn't post it here or send you a DM: "
        f"`/sora status {task.id}` has it."
    )


def deleted_line(task: Task) -> str:
    return f"Deleted the video for task `{task.id}`."


# One card per video: the private line, the result post's first sentence (issue 12)

PROMPT_IN_NOTIFICATION = 80  # characters of a prompt a result post's content quotes
_FAILURE_REASONS = {
    "content_policy": "it was refused by the content filter",
    "invalid_image": "the video service couldn't use the picture",
    "insufficient_credits": "the video service account ran out of credits",
    "expired": "it took far too long, so I stopped waiting",
    "rejected": "a moderator didn't approve the request",
    "approval_expired": "no moderator approved the request in time",
}


def accepted_line(task: Task) -> str:
    """Replaces the member's private "thinking..." once the provider accepted the job."""
    return (
        "✅ Your video is on its way (announced in the channel). "
        "Only you can see this message; I'll show progress here."
    )


def held_line(task: Task) -> str:
    """The member's private answer when their request waits for approval."""
    return (
        f"⏸️ This server's moderators approve each video first. Your request `{task.id}` "
        "waits for them; I'll post in the channel when it's decided. If it is rejected "
        "or nobody decides in time, it is refunded."
    )


def held_notice(task: Task) -> str:
    """The channel's notice of a held request (no prompt: no moderator has seen it)."""
    return (
        f"<@{task.user_id}> your video request `{task.id}` is waiting for a moderator's "
        "approval. I'll post here when it's decided."
    )


def failure_reason(task: Task) -> str:
    """Why a video couldn't be made, as the end of a sentence."""
    return _FAILURE_REASONS.get(
        task.failure_code or "", "the video service had a problem making it"
    )


def shows_prompt_publicly(task: Task) -> bool:
    """A prompt refused for content, or rejected by a moderator, is never repeated in
    public."""
    return task.state is TaskState.SUCCEEDED or task.failure_code not in (
        "content_policy",
        "rejected",
    )


def outcome_content(task: Task, *, direct: bool = False) -> str:
    """A result post's content, what a phone notification shows: the outcome first,
    then a short form of the prompt (never a prompt refused for content)."""
    prompt = f"*{short_prompt(task.prompt, PROMPT_IN_NOTIFICATION)}*"
    where = _elsewhere(task, direct)
    if task.state is TaskState.SUCCEEDED:
        return f"<@{task.user_id}> your video is ready{where}: {prompt}"
    what = prompt if shows_prompt_publicly(task) or direct else "your video"
    return (
        f"<@{task.user_id}> I couldn't make {what}{where}: {failure_reason(task)}. "
        "Nothing was charged."
    )


def outcome_message(
    task: Task,
    *,
    provider_name: str,
    link: str | None = None,
    problem: str | None = None,
    direct: bool = False,
    source_url: str | None = None,
) -> tuple[str, discord.Embed]:
    """(content, embed) for a task's outcome: `outcome_content` first; the embed keeps
    the details without repeating that sentence as its title, and a failure refused
    for content does not quote the prompt. A remix links its source (`source_url`)."""
    if task.state is TaskState.SUCCEEDED:
        _, embed = result_post(
            task,
            provider_name=provider_name,
            link=link,
            problem=problem,
            direct=direct,
            source_url=source_url,
        )
    else:
        _, embed = failure_post(task, direct=direct)
        # The content already says what happened and that nothing was charged.
        embed.description = next_step(task)
        if not shows_prompt_publicly(task) and not direct:
            keep = [f for f in embed.fields if f.name != "Prompt"]
            embed.clear_fields()
            for item in keep:
                embed.add_field(name=item.name, value=item.value, inline=item.inline)
    embed.title = None
    return outcome_content(task, direct=direct), embed


def card_sent_privately_line(task: Task) -> str:
    """The public card once the outcome went to the member by direct message."""
    return f"<@{task.user_id}>'s video was sent to them by direct message."
