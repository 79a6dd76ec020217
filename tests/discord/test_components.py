"""The buttons under a posted video (bot/discord/components.py): each class builds a
custom id its own template parses back, refuses anything else, and keeps the id
strings earlier versions posted (so buttons on old posts keep working)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.discord.components import (
    DYNAMIC_ITEMS,
    AgainButton,
    DeleteButton,
    RemixButton,
    TaskButton,
    result_view,
)
from tests.discord.test_rendering import make_task

TASK = "K7M3QX"
MALFORMED = [
    "",
    "sora:again:",
    "sora:again:k7m3qx",  # ids are upper case
    "sora:again:K7M3Q",
    "sora:again:K7M3QX1",
    "sora:again:K7M3QX:extra",
    " sora:again:K7M3QX",
    "xsora:again:K7M3QX",
    "sora:again:K7M3Q!",
    "sora:again:../../..",
    "sora:again:K7M3QX\n",
    "sora:remix-form:K7M3QX",  # the Remix form's id, not a button's
    "sora:other:K7M3QX",
]


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (AgainButton, "sora:again:K7M3QX"),
        (DeleteButton, "sora:delete:K7M3QX"),
        (RemixButton, "sora:remix:K7M3QX"),
    ],
)
def test_each_button_builds_the_id_it_parses_back(cls: type[TaskButton], expected: str) -> None:
    button = cls(TASK)
    assert button.custom_id == cls.custom_id_for(TASK) == expected  # as posted before
    assert button.task_id == TASK
    assert cls.task_id_in(button.custom_id) == TASK
    assert button.template.fullmatch(button.custom_id) is not None
    # No other button answers this id: a click reaches exactly one class.
    others = [other for other in DYNAMIC_ITEMS if other is not cls]
    assert all(other.task_id_in(button.custom_id) is None for other in others)


@pytest.mark.parametrize("cls", DYNAMIC_ITEMS)
@pytest.mark.parametrize("custom_id", MALFORMED)
def test_forged_or_malformed_ids_are_refused(cls: type[TaskButton], custom_id: str) -> None:
    forged = custom_id.replace("again", cls.ACTION, 1)
    if forged == cls.custom_id_for(TASK):
        return
    assert cls.task_id_in(forged) is None
    # discord.py dispatches a click by matching the whole id against the template.
    assert cls.__discord_ui_compiled_template__.fullmatch(forged) is None


@pytest.mark.parametrize("cls", DYNAMIC_ITEMS)
@pytest.mark.parametrize("task_id", ["", "k7m3qx", "K7M3Q", "K7M3QX1", "K7M3QX:x", "not a task"])
def test_a_button_cannot_be_made_for_something_that_is_not_a_task_id(
    cls: type[TaskButton], task_id: str
) -> None:
    with pytest.raises(ValueError):
        cls(task_id)


@pytest.mark.parametrize("cls", DYNAMIC_ITEMS)
async def test_a_click_rebuilds_the_button_from_its_id(cls: type[TaskButton]) -> None:
    custom_id = cls.custom_id_for(TASK)
    match = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None
    nothing: Any = None
    rebuilt = await cls.from_custom_id(nothing, nothing, match)
    assert isinstance(rebuilt, cls) and rebuilt.task_id == TASK


def button_dicts(remix: bool) -> list[dict[str, Any]]:
    (row,) = result_view(make_task(id=TASK), remix=remix).to_components()
    return list(row["components"])


def test_the_result_view_is_again_remix_delete_as_before() -> None:
    assert button_dicts(remix=True) == [
        {
            "type": 2,
            "style": 1,
            "label": "Again",
            "emoji": {"name": "🔁", "id": None},
            "custom_id": "sora:again:K7M3QX",
            "disabled": False,
        },
        {
            "type": 2,
            "style": 2,
            "label": "Remix",
            "emoji": {"name": "🎛️", "id": None},
            "custom_id": "sora:remix:K7M3QX",
            "disabled": False,
        },
        {
            "type": 2,
            "style": 2,
            "label": "Delete",
            "emoji": {"name": "🗑️", "id": None},
            "custom_id": "sora:delete:K7M3QX",
            "disabled": False,
        },
    ]
    assert [b["label"] for b in button_dicts(remix=False)] == ["Again", "Delete"]
    view = result_view(make_task(id=TASK))
    assert view.timeout is None and view.is_persistent()
