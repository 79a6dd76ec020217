"""Where a result goes, and whether it is already there: the task's channel, and the
bot's own result post for a task in that channel's recent history (after a crash or a
lost answer, before anything is sent again)."""

from __future__ import annotations

import logging

import discord

from bot.discord.rendering import footer_for
from bot.discord.retries import is_transient
from bot.domain import Task

log = logging.getLogger("bot.discord.notifier")

HISTORY_SCAN = 50


async def channel_for(client: discord.Client, channel_id: int) -> discord.abc.Messageable | None:
    """The channel to post in, or None if it is gone or closed to the bot."""
    channel = client.get_channel(channel_id)
    if channel is None:
        try:
            channel = await client.fetch_channel(channel_id)
        except (discord.NotFound, discord.Forbidden):
            return None
    return channel if isinstance(channel, discord.abc.Messageable) else None


async def find_result_post(
    client: discord.Client, channel: discord.abc.Messageable, task: Task
) -> discord.Message | None:
    """After a failed or interrupted post, find this task's result in the channel.

    Only the bot's own channel message counts. The interaction's "on its way"
    response also comes from the bot and shows "Task XXXXXX" in its progress footer,
    but it is sent through the interaction's webhook, so it carries
    `interaction_metadata` and a `webhook_id`; the result's footer is exactly the
    task line. A transient failure here is raised (retry later); without the right
    to read history (403) the nonce alone prevents a duplicate."""
    me = client.user
    if me is None:
        return None
    expected = footer_for(task)
    try:
        async for message in channel.history(limit=HISTORY_SCAN):
            if (
                message.author.id != me.id
                or message.webhook_id is not None
                or message.interaction_metadata is not None
            ):
                continue
            if any(e.footer.text == expected for e in message.embeds):
                return message
    except discord.HTTPException as exc:
        if is_transient(exc):
            raise
        log.info("cannot read the history of channel %s: %s", task.channel_id, exc)
    return None
