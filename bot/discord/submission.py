"""Asking for a video from Discord: the request, the submission, the announcement.

Every way to start a video (`/sora text`, `/sora image`, the Again button, the Remix
form) builds its request with `request_for` and goes through `submit_and_announce` or
`remix_and_announce` here. This is the one place that decides when an interaction is
deferred around the service's slow steps, and how the channel is told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from bot.discord.command_tree import (
    PRIVATE_DEFER,
    PUBLIC_DEFER,
    defer_privately,
    defer_publicly,
)
from bot.discord.interactions import guild_id_of
from bot.discord.rendering import PICTURE_ACCEPTED, submission_embed
from bot.domain import Aspect, Mode, Quality, Task
from bot.service import AttachmentRef, Checked, SubmitRequest, SubmitResult

if TYPE_CHECKING:
    from bot.discord.app import SoraBot


def request_for(
    interaction: discord.Interaction[Any],
    *,
    mode: Mode,
    prompt: str,
    aspect: Aspect | None = None,
    duration: int | None = None,
    quality: Quality | None = None,
    attachment: AttachmentRef | None = None,
    channel_id: int = 0,
) -> SubmitRequest:
    """The service's request for what `interaction`'s member asked, charged to them and
    delivered in the interaction's channel (`channel_id` if Discord gave none)."""
    return SubmitRequest(
        guild_id=guild_id_of(interaction),
        channel_id=interaction.channel_id or channel_id,
        user_id=interaction.user.id,
        mode=mode,
        prompt=prompt,
        aspect=aspect,
        duration=duration,
        quality=quality,
        attachment=attachment,
        upload_limit=interaction.filesize_limit,
    )


def attachment_ref(attachment: discord.Attachment) -> AttachmentRef:
    return AttachmentRef(
        url=attachment.url,
        filename=attachment.filename,
        size=attachment.size,
        content_type=attachment.content_type,
    )


def repeat_request(interaction: discord.Interaction[Any], source: Task) -> SubmitRequest:
    """Again: `source`'s prompt, options and picture, for whoever clicked."""
    picture = (
        None
        if source.image_url is None
        else AttachmentRef(url=source.image_url, filename="the original picture", size=0)
    )
    return request_for(
        interaction,
        mode=source.mode,
        prompt=source.prompt,
        aspect=source.options.aspect,
        duration=source.options.duration_seconds,
        quality=source.options.quality,
        attachment=picture,
        channel_id=source.channel_id,
    )


async def submit_and_announce(
    bot: SoraBot, interaction: discord.Interaction[Any], request: SubmitRequest
) -> None:
    """`/sora text`, `/sora image` and Again: check, then the slow steps, then announce."""
    checked = await bot.service.check(request)
    await announce(bot, interaction, await _run(bot, interaction, checked))


async def remix_and_announce(
    bot: SoraBot, interaction: discord.Interaction[Any], source_id: str, request: SubmitRequest
) -> None:
    """Remix a finished video as `request.prompt` says."""
    checked = await bot.service.check_remix(source_id, request)
    await announce(bot, interaction, await _run(bot, interaction, checked))


async def _run(
    bot: SoraBot, interaction: discord.Interaction[Any], checked: Checked
) -> SubmitResult:
    """The service's slow steps, with the interaction deferred in between.

    The quick checks have passed and were answered at once if they failed. Before a
    picture is read the defer is private, so every refusal about the member's own
    picture stays private; once quota is held the answer is public (a no-op after a
    private defer). If Discord refuses the defer, the reservation is given back before
    anything is sent to the provider."""
    service = bot.service
    if checked.needs_image:
        await defer_privately(interaction)
        checked = await service.read_image(checked)
    reserved = await service.reserve(checked)
    try:
        await defer_publicly(interaction)
    except BaseException as exc:
        await service.abandon(reserved, exc)
        raise
    return await service.send(reserved)


async def announce(
    bot: SoraBot, interaction: discord.Interaction[Any], result: SubmitResult
) -> None:
    """Show the channel the submission, and keep the interaction so the notifier can
    show progress on its original response while its token lives.

    After a public defer, the first followup replaces the public "thinking...". After a
    private one (a picture was read), the private "thinking..." is first resolved with a
    private line, since a first followup would replace it and stay private; the public
    announcement is then a new message, and progress shows on the private line."""
    bot.notifier.remember(result.task.id, interaction)
    if interaction.extras.pop(PRIVATE_DEFER, False):
        await interaction.edit_original_response(content=PICTURE_ACCEPTED)
    provider = bot.provider
    await interaction.followup.send(
        content=interaction.user.mention,
        embed=submission_embed(
            result, interaction.user, provider.display_name, provider.capabilities.expected_seconds
        ),
        allowed_mentions=discord.AllowedMentions(users=[interaction.user]),
    )
    interaction.extras.pop(PUBLIC_DEFER, None)
