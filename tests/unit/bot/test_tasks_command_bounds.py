"""/tasks with a number no task can have: a plain answer, not a failed query."""

from __future__ import annotations

import pytest

from core.tasks_command import MAX_TASK_ID, parse_tasks_command


@pytest.mark.parametrize(
    "text",
    [
        str(MAX_TASK_ID + 1),
        "#" + "9" * 19,
        "cancel " + str(2**63),
        "cancel " + "9" * 400,
        "0",
        "cancel #0",
    ],
)
def test_a_task_id_beyond_any_task_is_answered_not_queried(text: str) -> None:
    command = parse_tasks_command(text)
    assert command.action == "invalid" and command.task_id is None
    assert command.error and "no task #" in command.error
    assert len(command.error) < 120


@pytest.mark.parametrize("text", ["page 0", "page " + "9" * 30, "page 100001"])
def test_a_page_beyond_any_page_is_answered_not_queried(text: str) -> None:
    command = parse_tasks_command(text)
    assert command.action == "invalid" and command.error


def test_ordinary_ids_and_pages_still_work() -> None:
    assert parse_tasks_command("#42").task_id == 42
    assert parse_tasks_command("cancel 42").action == "cancel"
    assert parse_tasks_command(f"{MAX_TASK_ID}").action == "detail"
    assert parse_tasks_command("page 3").page == 2
