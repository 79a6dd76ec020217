"""Who may act on whose video: the rules the buttons and `/sora history` leave to the
service (Discord only says who is asking and whether they moderate)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bot.domain import Task
from bot.errors import BotError, MissingPermissionError, TaskNotFoundError
from bot.polling import PollPlanner
from bot.schedule import Schedule
from bot.service import SoraService
from bot.store import Page
from tests.discord.test_rendering import make_task

GUILD, OWNER, OTHER = 1, 3, 4


class TasksOnly:
    """Just the store's reads these rules use."""

    def __init__(self, *tasks: Task) -> None:
        self.tasks = {t.id: t for t in tasks}
        self.pages: list[tuple[int, int, int, int]] = []

    async def get_task(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    async def user_tasks(self, guild_id: int, user_id: int, *, page: int, page_size: int) -> Page:
        self.pages.append((guild_id, user_id, page, page_size))
        mine = [t for t in self.tasks.values() if t.user_id == user_id]
        return Page(mine, len(mine), page, page_size)


def service_with(store: TasksOnly) -> SoraService:
    nothing: Any = None
    settings: Any = SimpleNamespace(webhook_public_url=None, provider_cooldown_seconds=300)
    provider: Any = SimpleNamespace(name="p", capabilities=SimpleNamespace(reports="poll"))
    polling = PollPlanner.fixed(Schedule(first_delay=1, interval=1))
    return SoraService(settings, store, provider, nothing, polling)


TASK = make_task(guild_id=GUILD, user_id=OWNER)


async def test_anyone_in_the_server_may_repeat_a_posted_video() -> None:
    service = service_with(TasksOnly(TASK))
    assert await service.task_to_repeat(GUILD, OTHER, TASK.id) == TASK
    with pytest.raises(TaskNotFoundError):
        await service.task_to_repeat(GUILD + 1, OTHER, TASK.id)  # another server's task


@pytest.mark.parametrize(
    ("user", "moderator", "allowed"),
    [(OWNER, False, True), (OTHER, True, True), (OTHER, False, False)],
)
async def test_only_the_requester_or_a_moderator_may_delete(
    user: int, moderator: bool, allowed: bool
) -> None:
    service = service_with(TasksOnly(TASK))
    if allowed:
        assert await service.task_for_delete(GUILD, user, TASK.id, moderator=moderator) == TASK
        return
    with pytest.raises(BotError, match="Only the member who asked for this video"):
        await service.task_for_delete(GUILD, user, TASK.id, moderator=moderator)


async def test_deleting_a_missing_or_foreign_task_looks_the_same() -> None:
    service = service_with(TasksOnly(TASK))
    for guild, task_id in ((GUILD, "ZZZZZZ"), (GUILD + 1, TASK.id)):
        with pytest.raises(TaskNotFoundError):
            await service.task_for_delete(guild, OWNER, task_id, moderator=True)


async def test_history_of_someone_else_is_for_moderators() -> None:
    store = TasksOnly(TASK)
    service = service_with(store)
    own = await service.history(GUILD, OWNER, OWNER, moderator=False, page=2, page_size=10)
    assert own.tasks == [TASK] and store.pages == [(GUILD, OWNER, 2, 10)]
    theirs = await service.history(GUILD, OTHER, OWNER, moderator=True)
    assert theirs.tasks == [TASK]
    with pytest.raises(MissingPermissionError):
        await service.history(GUILD, OTHER, OWNER, moderator=False)
    assert len(store.pages) == 2  # refused before the store is asked
