"""Each button kind packs what its listener unpacks, and refuses what it never packed."""

from __future__ import annotations

import pytest

from bot.views.buttons import CancelButton, PageButton, RetryButton, RowMenu
from core.tasks_command import MAX_TASK_ID

Button = CancelButton | RetryButton | PageButton | RowMenu


@pytest.mark.parametrize(
    "button",
    [
        CancelButton(7),
        RetryButton(MAX_TASK_ID),
        PageButton(3, "failed"),
        PageButton(1),
        RowMenu("view", 5),
        RowMenu("cancel", 5),
        RowMenu("thread", 12),
    ],
)
def test_unpack_reads_what_pack_wrote(button: Button) -> None:
    assert len(button.pack()) <= 2000  # Slack's limit on a button value
    assert type(button).unpack(button.pack()) == button


@pytest.mark.parametrize("value", ["", "abc", "0", "-1", str(MAX_TASK_ID + 1), "9" * 40, "7 "])
@pytest.mark.parametrize("kind", [CancelButton, RetryButton])
def test_a_task_button_refuses_a_value_it_never_packed(
    kind: type[CancelButton | RetryButton], value: str
) -> None:
    assert kind.unpack(value) is None


@pytest.mark.parametrize("value", ["", "view", "view:", "edit:5", "view:x", "cancel:0", "view:5:6"])
def test_the_row_menu_refuses_an_unknown_option(value: str) -> None:
    assert RowMenu.unpack(value) is None


@pytest.mark.parametrize("value", ["{", "[]", '{"page": "x"}', '{"page": 2, "filter": 3}'])
def test_the_page_button_refuses_a_value_it_never_packed(value: str) -> None:
    assert PageButton.unpack(value) is None


def test_a_page_below_one_is_the_first_and_a_long_filter_is_cut() -> None:
    assert PageButton.unpack('{"page": -4, "filter": null}') == PageButton(1)
    assert len(PageButton(2, "x" * 5000).pack()) < 200


def test_action_ids_are_distinct() -> None:
    ids = [CancelButton.action_id, RetryButton.action_id, PageButton.action_id, RowMenu.action_id]
    assert len(set(ids)) == len(ids)
