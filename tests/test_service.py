"""The service on its own: a real SQLite store in a temporary folder, the demo provider
(or a variant of it that refuses), pictures served by an in-process HTTP transport. No
Discord: these follow one submission through its steps (check, read_image, reserve,
send) and count the store calls each one makes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.domain import (
    Aspect,
    Mode,
    NotifyState,
    QuotaLimits,
    Settle,
    TaskState,
    TaskUpdate,
)
from bot.errors import (
    ChannelNotAllowedError,
    InvalidInputError,
    ProviderRefusedError,
    QuotaExceededError,
)
from bot.polling import PollPlanner
from bot.providers.base import GenerationRequest, Submission
from bot.providers.demo import DemoProvider
from bot.schedule import Schedule
from bot.service import AttachmentRef, SoraService, SubmitRequest
from bot.settings import Settings
from bot.store import SqliteStore
from tests.clock import FakeClock
from tests.pictures import still

GUILD, CHANNEL, ALICE, BOB = 1000, 2000, 1, 2
PICTURE_URL = "https://cdn.discordapp.test/attachments/1/2/cat.png"


class CountingStore:
    """The store, with a record of which methods each step called."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await method(*args, **kwargs)

        return counted

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


class Provider(DemoProvider):
    """The demo provider, recording what it was sent; `refusal` makes it refuse."""

    def __init__(self) -> None:
        super().__init__(generation_seconds=60)
        self.capabilities = dataclasses.replace(self.capabilities, remix=True)
        self.sent: list[GenerationRequest] = []
        self.remixed: list[tuple[str, str]] = []
        self.refusal: BaseException | None = None

    async def submit(self, request: GenerationRequest) -> Submission:
        if self.refusal is not None:
            raise self.refusal
        self.sent.append(request)
        return await super().submit(request)

    async def remix(self, provider_task_id: str, prompt: str) -> Submission:
        self.remixed.append((provider_task_id, prompt))
        return Submission(f"remix-of-{provider_task_id}")


@dataclasses.dataclass
class World:
    service: SoraService
    store: CountingStore
    provider: Provider
    pictures: dict[str, bytes]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    pictures: dict[str, bytes] = {PICTURE_URL: still("PNG")}

    def serve(request: httpx.Request) -> httpx.Response:
        body = pictures.get(str(request.url))
        return httpx.Response(404) if body is None else httpx.Response(200, content=body)

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        discord_token="unused",
        database_url=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        default_daily_quota=20,
        default_monthly_quota=300,
        default_user_daily_quota=5,
    )
    inner = SqliteStore(tmp_path / "bot.sqlite3", clock=FakeClock())
    await inner.open()
    store = CountingStore(inner)
    provider = Provider()
    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
        service = SoraService(
            settings,
            store,  # type: ignore[arg-type]
            provider,
            http,
            PollPlanner.fixed(Schedule(first_delay=10, interval=10)),
        )
        yield World(service, store, provider, pictures)
    await inner.close()


def text(prompt: str = "a fox in the snow", user: int = ALICE, **fields: Any) -> SubmitRequest:
    return SubmitRequest(GUILD, CHANNEL, user, Mode.TEXT, prompt, **fields)


def image(url: str = PICTURE_URL, **attachment: Any) -> SubmitRequest:
    ref = AttachmentRef(
        url=url, filename="cat.png", size=attachment.pop("size", 1000), **attachment
    )
    return SubmitRequest(GUILD, CHANNEL, ALICE, Mode.IMAGE, "the cat waves", attachment=ref)


async def ledger(world: World) -> list[tuple[str, int]]:
    rows = await world.store.inner._conn.execute_fetchall(
        "SELECT kind, videos FROM quota_ledger ORDER BY id"
    )
    return [(row[0], row[1]) for row in rows]


async def test_check_reserve_send_one_store_call_each(world: World) -> None:
    service, store = world.service, world.store
    checked = await service.check(text(duration=12))
    assert store.take() == ["guild_settings"]
    assert checked.options.duration_seconds == 12 and not checked.needs_image

    reserved = await service.reserve(checked)
    assert store.take() == ["reserve"]
    assert reserved.task.state is TaskState.QUEUED
    assert (reserved.quota.user_left_today, reserved.quota.guild_left_today) == (4, 19)

    result = await service.send(reserved)
    assert store.take() == ["mark_submitted"]
    task = result.task
    assert task.state is TaskState.SUBMITTED and task.provider_task_id
    assert task.next_check_at is not None
    assert result.quota == reserved.quota
    assert result.quota == await store.inner.quota_status(
        GUILD, ALICE, service._settings.default_limits
    )
    (sent,) = world.provider.sent
    assert (sent.prompt, sent.options) == ("a fox in the snow", checked.options)
    assert await ledger(world) == [("reserve", 1)]


async def test_a_provider_refusal_refunds_once_and_posts_nothing(world: World) -> None:
    service, store = world.service, world.store
    reserved = await service.reserve(await service.check(text()))
    store.take()
    world.provider.refusal = ProviderRefusedError("demo", "policy", content_policy=True)
    with pytest.raises(ProviderRefusedError):
        await service.send(reserved)
    assert store.take() == ["finish"]  # failed, refunded and "nothing to post", together
    task = await store.inner.get_task(reserved.task.id)
    assert task is not None and task.state is TaskState.FAILED
    assert task.failure_code == "content_policy" and task.notify_state is NotifyState.POSTED
    assert await ledger(world) == [("reserve", 1), ("refund", -1)]
    assert await store.inner.undelivered_tasks() == []
    # A late report of the same task changes nothing: no second refund.
    assert (
        await store.inner.finish(task.id, TaskUpdate(TaskState.FAILED), settle=Settle.REFUND)
        is None
    )
    assert await ledger(world) == [("reserve", 1), ("refund", -1)]


async def test_an_unexpected_error_in_send_refunds_too(world: World) -> None:
    reserved = await world.service.reserve(await world.service.check(text()))
    world.provider.refusal = RuntimeError("connection reset")
    with pytest.raises(RuntimeError):
        await world.service.send(reserved)
    task = await world.store.inner.get_task(reserved.task.id)
    assert task is not None and task.state is TaskState.FAILED
    assert task.failure_reason == "internal error: RuntimeError('connection reset')"
    assert await ledger(world) == [("reserve", 1), ("refund", -1)]


async def test_over_quota_reserves_nothing(world: World) -> None:
    service = world.service
    await world.store.inner.update_quota_limits(GUILD, QuotaLimits(user_daily=1))
    await service.send(await service.reserve(await service.check(text())))
    checked = await service.check(text("again"))
    world.store.take()
    with pytest.raises(QuotaExceededError):
        await service.reserve(checked)
    assert world.store.take() == ["reserve"]
    assert (await world.store.inner.guild_tasks(GUILD)).total == 1
    assert await ledger(world) == [("reserve", 1)]
    # Someone else still can.
    await service.reserve(await service.check(text(user=BOB)))


async def test_a_bad_picture_reserves_nothing(world: World) -> None:
    service = world.service
    world.pictures[PICTURE_URL] = b"<html>not a picture</html>"
    checked = await service.check(image())
    assert checked.needs_image
    with pytest.raises(ValueError, match="read_image"):
        await service.reserve(checked)  # the picture is read first, always
    with pytest.raises(InvalidInputError):
        await service.read_image(checked)
    assert (await world.store.inner.guild_tasks(GUILD)).total == 0
    assert await ledger(world) == []


@pytest.mark.parametrize(
    ("attachment", "said"),
    [({"content_type": "text/plain"}, "isn't a picture"), ({"size": 50_000_000}, "limit is")],
)
async def test_a_picture_declared_wrong_is_refused_before_download(
    world: World, attachment: dict[str, Any], said: str
) -> None:
    with pytest.raises(InvalidInputError, match=said):
        await world.service.check(image(**attachment))


async def test_a_good_picture_goes_to_the_provider(world: World) -> None:
    service = world.service
    checked = await service.read_image(await service.check(image()))
    assert not checked.needs_image and checked.image is not None
    assert checked.image.content_type == "image/png"
    assert await service.read_image(checked) is checked  # nothing read twice
    result = await service.send(await service.reserve(checked))
    assert result.task.image_url == PICTURE_URL and result.task.mode is Mode.IMAGE
    (sent,) = world.provider.sent
    assert sent.image is not None and sent.image.width == 640


async def test_check_refuses_a_channel_not_allowed(world: World) -> None:
    await world.store.inner.add_allowed_channel(GUILD, CHANNEL + 1, actor_id=9)
    with pytest.raises(ChannelNotAllowedError):
        await world.service.check(text())


async def test_abandon_gives_the_reservation_back(world: World) -> None:
    """The cog could not defer after reserving: it hands the reservation back."""
    reserved = await world.service.reserve(await world.service.check(text()))
    await world.service.abandon(reserved, RuntimeError("interaction expired"))
    task = await world.store.inner.get_task(reserved.task.id)
    assert task is not None and task.state is TaskState.FAILED
    assert await ledger(world) == [("reserve", 1), ("refund", -1)]


async def test_remix_keeps_the_source_options(world: World) -> None:
    service = world.service
    source = await service.send(
        await service.reserve(await service.check(text(duration=4, aspect=None)))
    )
    with pytest.raises(InvalidInputError, match="finished video"):
        await service.check_remix(source.task.id, text("at night"))
    await world.store.inner.finish(
        source.task.id, TaskUpdate(TaskState.SUCCEEDED), settle=Settle.CHARGE
    )
    checked = await service.check_remix(source.task.id, text("at night", user=BOB))
    assert checked.remix_of == source.task.provider_task_id
    assert checked.options == source.task.options
    result = await service.send(await service.reserve(checked))
    assert world.provider.remixed == [(source.task.provider_task_id, "at night")]
    assert result.task.user_id == BOB and result.task.provider_task_id.startswith("remix-of-")


async def test_a_member_reads_the_video_service_not_the_resellers_name(world: World) -> None:
    """Refusals of an option name no provider to members (plain words, issue 12)."""
    provider: Any = world.service.provider
    provider.display_name = "Some Reseller"
    provider.capabilities = dataclasses.replace(
        provider.capabilities, aspects=(Aspect.LANDSCAPE, Aspect.PORTRAIT)
    )
    with pytest.raises(InvalidInputError) as exc:
        await world.service.check(dataclasses.replace(text(), aspect=Aspect.SQUARE))
    assert exc.value.user_message.startswith("The video service cannot make square videos")
    assert "Some Reseller" not in exc.value.user_message


async def test_a_failed_task_whose_picture_is_gone_is_not_retried_elsewhere(world: World) -> None:
    """Failover resends a failed task's picture: if it can't be read again, the task is
    not moved (the tracker then fails and refunds it) instead of erroring every check."""
    from bot.providers.pool import ProviderPool

    reserved = await world.service.reserve(await world.service.read_image(
        await world.service.check(image())
    ))  # fmt: skip
    task = (await world.service.send(reserved)).task
    second = Provider()
    second.name = "second"
    pool = ProviderPool([world.provider, second], store=world.store.inner)
    service = SoraService(
        world.service._settings,
        world.store.inner,
        pool,
        world.service._http,
        PollPlanner.fixed(Schedule(first_delay=10, interval=10)),
    )
    world.pictures.clear()  # Discord no longer serves the picture
    assert await service.resubmit(task, "provider_error") is None
    assert second.sent == []
    world.pictures[PICTURE_URL] = still("PNG")
    moved = await service.resubmit(task, "provider_error")
    assert moved is not None and moved.provider == "second" and moved.retried_from == "demo"
    assert len(second.sent) == 1 and second.sent[0].image is not None
