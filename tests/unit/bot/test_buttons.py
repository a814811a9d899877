"""Each button kind packs what its listener unpacks, and refuses what it never packed."""

from __future__ import annotations

import pytest

from bot.views.buttons import (
    ApproveButton,
    CancelButton,
    DenyButton,
    DenyForm,
    FullTextButton,
    PageButton,
    RetryButton,
    RowMenu,
)
from core.tasks_command import MAX_TASK_ID

Button = (
    CancelButton
    | RetryButton
    | FullTextButton
    | ApproveButton
    | DenyButton
    | DenyForm
    | PageButton
    | RowMenu
)
IdButton = CancelButton | RetryButton | FullTextButton | ApproveButton | DenyButton
ID_BUTTONS = [CancelButton, RetryButton, FullTextButton, ApproveButton, DenyButton]


@pytest.mark.parametrize(
    "button",
    [
        CancelButton(7),
        RetryButton(MAX_TASK_ID),
        FullTextButton(31),
        ApproveButton(42),
        DenyButton(MAX_TASK_ID),
        DenyForm(9, "D0APPROVER", "1732449601.000200"),
        DenyForm(9, None, None),
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


@pytest.mark.parametrize(
    "value", ["", "abc", "0", "-1", str(MAX_TASK_ID + 1), "9" * 40, "7 ", "²", "٣", "1e3", "+7"]
)
@pytest.mark.parametrize("kind", ID_BUTTONS)
def test_an_id_button_refuses_a_value_it_never_packed(kind: type[IdButton], value: str) -> None:
    assert kind.unpack(value) is None


@pytest.mark.parametrize(
    ("button", "action_id", "value"),
    [
        (CancelButton(7), "status:cancel", "7"),
        (RetryButton(7), "task:retry", "7"),
        (FullTextButton(7), "result:full_text", "7"),
        (ApproveButton(42), "approval:approve", "42"),
        (DenyButton(42), "approval:deny", "42"),
    ],
)
def test_wire_values_stay_as_buttons_already_posted_carry_them(
    button: IdButton, action_id: str, value: str
) -> None:
    assert (button.action_id, button.pack()) == (action_id, value)


def test_the_deny_form_reads_what_modals_already_open_carry() -> None:
    assert DenyForm.callback_id == "approval:deny_reason"
    posted = '{"approval": 9, "channel": "D0APPROVER", "ts": "1732449601.000200"}'
    assert DenyForm(9, "D0APPROVER", "1732449601.000200").pack() == posted
    assert DenyForm.unpack(posted) == DenyForm(9, "D0APPROVER", "1732449601.000200")


@pytest.mark.parametrize(
    "metadata",
    [
        "",
        "{",
        "[]",
        "9",
        '{"channel": "C1", "ts": "1.2"}',
        '{"approval": "9", "channel": "C1", "ts": "1.2"}',
        '{"approval": true, "channel": "C1", "ts": "1.2"}',
        '{"approval": 9.0, "channel": "C1", "ts": "1.2"}',
        '{"approval": 0, "channel": "C1", "ts": "1.2"}',
        f'{{"approval": {MAX_TASK_ID + 1}, "channel": "C1", "ts": "1.2"}}',
        '{"approval": 9, "channel": ["C1"], "ts": "1.2"}',
        '{"approval": 9, "channel": "C1", "ts": 1.2}',
        "[" * 3000,  # private_metadata's limit: deeper than json.loads recurses
    ],
)
def test_the_deny_form_refuses_metadata_it_never_packed(metadata: str) -> None:
    assert DenyForm.unpack(metadata) is None


@pytest.mark.parametrize("value", ["", "view", "view:", "edit:5", "view:x", "cancel:0", "view:5:6"])
def test_the_row_menu_refuses_an_unknown_option(value: str) -> None:
    assert RowMenu.unpack(value) is None


@pytest.mark.parametrize(
    "value", ["{", "[]", '{"page": "x"}', '{"page": 2, "filter": 3}', "[" * 2000]
)
def test_the_page_button_refuses_a_value_it_never_packed(value: str) -> None:
    assert PageButton.unpack(value) is None


def test_a_page_below_one_is_the_first_and_a_long_filter_is_cut() -> None:
    assert PageButton.unpack('{"page": -4, "filter": null}') == PageButton(1)
    assert len(PageButton(2, "x" * 5000).pack()) < 200


def test_action_ids_are_distinct() -> None:
    ids = [kind.action_id for kind in [*ID_BUTTONS, PageButton, RowMenu]]
    assert len(set(ids)) == len(ids)
    assert DenyForm.callback_id not in ids
