"""Asking for a video from Discord: the request, the submission, the announcement.

Every way to start a video (`/sora text`, `/sora image`, the Again button, the Remix
form) builds its request with `request_for` and goes through `submit_and_announce` or
`remix_and_announce` here. This is the one place that decides when an interaction is
deferred around the service's slow steps, and how the channel is told.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.command_tree import PRIVATE_DEFER, defer_privately
from bot.discord.interactions import guild_id_of, is_moderator, role_ids_of
from bot.discord.outcome_rendering import accepted_line, held_line, held_notice
from bot.discord.rendering import submission_embed
from bot.domain import Aspect, Mode, Quality, Task
from bot.service import AttachmentRef, Checked, Reserved, SubmitRequest, SubmitResult

if TYPE_CHECKING:
    from bot.discord.app import SoraBot

log = logging.getLogger(__name__)


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
        role_ids=role_ids_of(interaction),
        moderator=is_moderator(interaction),
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
    await _announce(bot, interaction, await _run(bot, interaction, checked))


async def remix_and_announce(
    bot: SoraBot, interaction: discord.Interaction[Any], source_id: str, request: SubmitRequest
) -> None:
    """Remix a finished video as `request.prompt` says."""
    checked = await bot.service.check_remix(source_id, request)
    await _announce(bot, interaction, await _run(bot, interaction, checked))


async def _run(
    bot: SoraBot, interaction: discord.Interaction[Any], checked: Checked
) -> SubmitResult | Reserved:
    """The service's slow steps, with the interaction deferred privately first.

    The quick checks have passed and were answered at once if they failed. The defer
    comes next, before the quota is reserved: under a burst of commands, reservations
    queue on the store's one connection, and the member's "thinking..." must not wait
    for the queue (Discord wants an answer within 3 s). It is private for every
    submission, so every refusal until the provider has accepted the job (the member's
    picture, the quota, the provider refusing the prompt at create) simply replaces the
    member's own "thinking..." and nothing is left in the channel. If Discord refuses
    the defer, nothing was reserved yet.

    In approval mode a member's request stops after the reservation: it is returned
    as it is, held for a moderator."""
    service = bot.service
    await defer_privately(interaction)
    if checked.needs_image:
        checked = await service.read_image(checked)
    reserved = await service.reserve(checked)
    if checked.hold:
        return reserved
    return await service.send(reserved)


async def _announce(
    bot: SoraBot, interaction: discord.Interaction[Any], outcome: SubmitResult | Reserved
) -> None:
    if isinstance(outcome, Reserved):
        await announce_held(bot, interaction, outcome)
    else:
        await announce(bot, interaction, outcome)


async def announce_held(
    bot: SoraBot, interaction: discord.Interaction[Any], reserved: Reserved
) -> None:
    """A request held for approval: the member's private line says so, and the channel
    gets a notice as the bot's own message (so any process can turn it into the card
    once approved, or remove it). The prompt is not shown publicly before a moderator
    has seen it."""
    task = reserved.task
    interaction.extras.pop(PRIVATE_DEFER, None)
    await interaction.edit_original_response(content=held_line(task))
    channel = interaction.channel
    if not isinstance(channel, discord.abc.Messageable):
        return
    try:
        notice = await channel.send(
            held_notice(task),
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(task.user_id)]),
        )
    except discord.HTTPException as exc:
        log.info("could not post the held notice of task %s: %s", task.id, exc)
        return
    await bot.store.record_card(task.id, notice.id)


async def announce_approved(bot: SoraBot, result: SubmitResult) -> None:
    """An approved request was accepted by the provider: its held notice becomes the
    "on its way" card (or a new card, if the notice is gone), removed like any card
    once the outcome is posted."""
    task = result.task
    embed = submission_embed(
        result,
        bot.get_user(task.user_id),
        bot.provider.display_name,
        bot.service.usual_seconds(task),
    )
    channel = bot.get_partial_messageable(task.channel_id, guild_id=task.guild_id)
    mentions = discord.AllowedMentions(users=[discord.Object(task.user_id)])
    if task.card_message_id is not None:
        try:
            await channel.get_partial_message(task.card_message_id).edit(
                content=f"<@{task.user_id}>", embed=embed, allowed_mentions=mentions
            )
            return
        except discord.HTTPException as exc:
            log.info("could not turn the notice of task %s into its card: %s", task.id, exc)
    try:
        card = await channel.send(f"<@{task.user_id}>", embed=embed, allowed_mentions=mentions)
    except discord.HTTPException as exc:
        log.info("could not post the card of task %s: %s", task.id, exc)
        return
    await bot.store.record_card(task.id, card.id)


async def announce(
    bot: SoraBot, interaction: discord.Interaction[Any], result: SubmitResult
) -> None:
    """The provider accepted the job: resolve the member's private "thinking..." with a
    private line (progress shows there while the token lives), then show the channel
    the public card as a new message, and hand the notifier the interaction and that
    card's id so it can remove the card once the result is out (one card per video).

    The private line comes first: the first followup after a deferred response would
    replace the private "thinking..." and stay private."""
    interaction.extras.pop(PRIVATE_DEFER, None)
    await interaction.edit_original_response(content=accepted_line(result.task))
    provider = bot.provider
    card = await interaction.followup.send(
        content=interaction.user.mention,
        embed=submission_embed(
            result,
            interaction.user,
            provider.display_name,
            bot.service.usual_seconds(result.task),
        ),
        allowed_mentions=discord.AllowedMentions(users=[interaction.user]),
        wait=True,
    )
    bot.notifier.remember(result.task.id, interaction, card_id=card.id)
