"""What follows a task's outcome reaching Discord, and a posted video being deleted.

After the notifier has delivered an outcome (`Notifier(after_delivery=...)`):
the bot's own notice or card about the task in its channel (a held request's) is
removed, so the channel keeps one message per video, and the moderation log gets
the outcome, with a link to the post.

After Delete: the file this bot served the video from (if it did) and the stored link
go too, so neither the listener nor `/sora status` still offers a deleted video.
"""

from __future__ import annotations

import asyncio
import contextlib

import discord

from bot.discord.outcome_rendering import failure_reason, video_link
from bot.domain import Task, TaskState
from bot.media import MediaHost
from bot.modlog import LogEntry, LogKind, ModLog
from bot.store import Store


class Aftermath:
    def __init__(
        self,
        client: discord.Client,
        store: Store,
        modlog: ModLog,
        media_host: MediaHost | None,
    ) -> None:
        self._client = client
        self._store = store
        self._modlog = modlog
        self._media_host = media_host

    async def delivered(self, task: Task, message: discord.Message | None) -> None:
        if task.card_message_id is not None:
            channel = self._client.get_partial_messageable(task.channel_id)
            with contextlib.suppress(discord.HTTPException):
                await channel.get_partial_message(task.card_message_id).delete()
            await self._store.record_card(task.id, None)
        await self._log(task, message)

    async def _log(self, task: Task, message: discord.Message | None) -> None:
        detail: dict[str, str] = {}
        if task.state is TaskState.SUCCEEDED:
            kind = LogKind.DONE
            if message is not None and message.guild is not None:
                detail["link"] = message.jump_url
            elif message is not None:
                detail["link"] = "sent to the member by direct message"
        elif task.failure_code == "rejected":
            return  # the decision is the log's entry for it
        elif task.failure_code == "approval_expired":
            kind = LogKind.EXPIRED
        else:
            kind = LogKind.FAILED
            detail["reason"] = f"{failure_reason(task)} ({task.failure_reason or 'no detail'})"
        await self._modlog.write(
            LogEntry(task.guild_id, kind, task_id=task.id, actor_id=task.user_id, detail=detail)
        )

    async def forget_video(self, task: Task, message: discord.Message | None) -> None:
        """After Delete: remove the served file and the stored link. The link may be only
        in the message (older posts)."""
        links = {task.result_url}
        if message is not None:
            links.update(video_link(e) for e in message.embeds)
        if self._media_host is not None:
            for link in links:
                if link:
                    await asyncio.to_thread(self._media_host.remove, link)
        if task.result_url is not None:
            await self._store.forget_result_url(task.id)
