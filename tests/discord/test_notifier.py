"""The notifier on its own: an in-memory store, the demo provider, and a stand-in channel.

Fast beside the end-to-end delivery tests (which run the real discord.py client against
the Discord fake): these drive `Notifier.deliver` directly and read what it sent and what
it recorded, so a reader can follow one delivery without a gateway in the way.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import discord
import httpx
import pytest

from bot.discord.notifier import Notifier
from bot.discord.retries import RetryPolicy
from bot.domain import (
    EffectiveLimits,
    GenerationOptions,
    Mode,
    NewTask,
    NotifyState,
    QuotaUnit,
    Settle,
    Task,
    TaskState,
    TaskUpdate,
    utc_now,
)
from bot.fetch import Fetcher
from bot.providers.demo import DemoProvider
from bot.store import SqliteStore
from bot.url_policy import MediaPolicy
from tests.helpers import eventually

LIMITS = EffectiveLimits(100, 100, None, QuotaUnit.VIDEOS)
GUILD, CHANNEL, USER, BOT_USER = 1, 2, 3, 99
ids = itertools.count(1000)


def server_error(status: int = 503) -> discord.DiscordServerError:
    return discord.DiscordServerError(SimpleNamespace(status=status, reason="down"), "down")


class Channel(discord.abc.Messageable):
    """A text channel that records posts; `failures` are raised by the next sends, in
    order, after `created_first` of them have left a message behind (Discord wrote it,
    the answer was lost)."""

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.id = CHANNEL
        self.failures = failures or []
        self.created_before_failing = 0
        self.messages: list[SimpleNamespace] = []
        self.sends: list[dict[str, Any]] = []

    async def _get_channel(self) -> Any:
        return self

    async def send(self, **kwargs: Any) -> Any:  # type: ignore[override]
        self.sends.append(kwargs)
        nonce = kwargs.get("nonce")
        same = [m for m in self.messages if nonce is not None and m.nonce == nonce]
        if same:  # Discord's nonce de-duplication (enforce_nonce)
            return same[0]
        message = SimpleNamespace(
            id=next(ids),
            nonce=nonce,
            embeds=[kwargs["embed"]],
            content=kwargs.get("content"),
            view=kwargs.get("view"),
            jump_url=f"https://discord.com/channels/{GUILD}/{CHANNEL}/1",
            author=SimpleNamespace(id=BOT_USER),
            webhook_id=None,
            interaction_metadata=None,
        )
        if self.failures:
            if self.created_before_failing:
                self.created_before_failing -= 1
                self.messages.append(message)
            raise self.failures.pop(0)
        self.messages.append(message)
        return message

    async def history(self, *, limit: int | None = 100, **_: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        for message in reversed(self.messages[-(limit or 100) :]):
            yield message


class Client:
    """What the notifier asks of `discord.Client`: its channel, its user, a member."""

    def __init__(self, channel: Channel | None) -> None:
        self.channel = channel
        self.user = SimpleNamespace(id=BOT_USER)
        self.dms: list[dict[str, Any]] = []

    def get_channel(self, channel_id: int) -> Any:
        return self.channel

    async def fetch_channel(self, channel_id: int) -> Any:
        raise discord.NotFound(SimpleNamespace(status=404, reason="gone"), "Unknown Channel")

    def get_user(self, user_id: int) -> Any:
        client = self

        class Member:
            async def send(self, **kwargs: Any) -> Any:
                client.dms.append(kwargs)
                return SimpleNamespace(id=next(ids), embeds=[kwargs["embed"]])

        return Member()


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    db = SqliteStore(None)
    await db.open()
    yield db
    await db.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def notifier_for(client: Client, store: SqliteStore, http: httpx.AsyncClient) -> Notifier:
    return Notifier(
        client=client,  # type: ignore[arg-type]
        store=store,
        provider=DemoProvider(0.01),
        fetcher=Fetcher(http, MediaPolicy([None])),
        retry_policy=RetryPolicy(first_delay=0.01, max_delay=0.05, window=60),
    )


async def finished(store: SqliteStore, state: TaskState, reason: str | None = None) -> Task:
    reserved = await store.reserve(
        NewTask(
            GUILD, CHANNEL, USER, "demo", Mode.TEXT, "a fox in fresh snow", GenerationOptions()
        ),
        LIMITS,
    )
    await store.mark_submitted(
        reserved.task.id, "demo-1", TaskState.SUBMITTED, None, utc_now() + timedelta(seconds=5)
    )
    update = TaskUpdate(state, failure_code="content_policy" if reason else None,
                        failure_reason=reason)  # fmt: skip
    settle = Settle.CHARGE if state is TaskState.SUCCEEDED else Settle.REFUND
    task = await store.finish(reserved.task.id, update, settle=settle)
    assert task is not None
    return task


async def test_a_finished_video_is_posted_once_attached_and_recorded(
    store: SqliteStore, http: httpx.AsyncClient
) -> None:
    channel = Channel()
    notifier = notifier_for(Client(channel), store, http)
    task = await finished(store, TaskState.SUCCEEDED)
    await notifier.deliver(task)
    await notifier.deliver(task)  # already posted: nothing more
    (sent,) = channel.sends
    assert sent["nonce"] == f"sora-{task.id}"
    assert sent["content"].startswith(f"<@{USER}>") and sent["file"] is not discord.utils.MISSING
    assert (
        sent["allowed_mentions"].users[0].id == USER and sent["allowed_mentions"].everyone is False
    )
    stored = await store.get_task(task.id)
    assert stored is not None and stored.notify_state is NotifyState.POSTED
    assert stored.result_message_id == channel.messages[0].id
    assert notifier.tracked_tasks() == set()
    await notifier.close()


async def test_a_post_created_then_lost_is_found_not_sent_again(
    store: SqliteStore, http: httpx.AsyncClient
) -> None:
    """Discord wrote the message and the answer was a 503: the retry finds the post."""
    channel = Channel([server_error()])
    channel.created_before_failing = 1
    notifier = notifier_for(Client(channel), store, http)
    task = await finished(store, TaskState.SUCCEEDED)
    await notifier.deliver(task)
    stored = await eventually(lambda: _posted(store, task.id), timeout=5)
    assert len(channel.messages) == 1 and stored.result_message_id == channel.messages[0].id
    assert len(channel.sends) == 1  # the history scan found it: nothing sent again
    await notifier.close()


async def test_a_failure_is_posted_with_try_again_and_says_nothing_was_charged(
    store: SqliteStore, http: httpx.AsyncClient
) -> None:
    channel = Channel()
    notifier = notifier_for(Client(channel), store, http)
    task = await finished(store, TaskState.FAILED, reason="refused")
    await notifier.deliver(task)
    (sent,) = channel.sends
    assert [item.custom_id for item in sent["view"].children] == [f"sora:retry:{task.id}"]
    assert sent["content"].endswith("Nothing was charged.")
    await notifier.close()


async def test_a_gone_channel_means_a_dm_without_buttons(
    store: SqliteStore, http: httpx.AsyncClient
) -> None:
    client = Client(None)
    notifier = notifier_for(client, store, http)
    task = await finished(store, TaskState.SUCCEEDED)
    await notifier.deliver(task)
    (dm,) = client.dms
    assert "view" not in dm and dm["nonce"] == f"sora-{task.id}"
    stored = await store.get_task(task.id)
    assert stored is not None and stored.notify_state is NotifyState.DIRECT_MESSAGED
    await notifier.close()


async def _posted(store: SqliteStore, task_id: str) -> Task | None:
    task = await store.get_task(task_id)
    return task if task is not None and task.notify_state is NotifyState.POSTED else None
