"""A long result's "Full text" button and the modal it opens (views.open)."""

from __future__ import annotations

from typing import Any

from bot.views.blocks import Block, button, plain, section
from bot.views.buttons import FullTextButton
from bot.views.escape import escape, one_line
from bot.views.limits import chunk_text

#: Block Kit modal limits
MODAL_BLOCKS = 100
MODAL_SECTION = 3000


def full_text_button(task_id: int) -> dict[str, Any]:
    """A section accessory beside the result's heading (no block of its own)."""
    return button("Full text", FullTextButton.action_id, FullTextButton(task_id).pack())


def full_text_modal(title: str, text: str) -> dict[str, Any]:
    """The whole result: sections of at most 3,000 characters, at most 100 blocks.
    ``text`` is mrkdwn, escaped by the caller."""
    chunks = chunk_text(text.strip() or "(empty)", MODAL_SECTION)
    blocks: list[Block] = [_heading(title)]
    room = MODAL_BLOCKS - len(blocks) - 1
    blocks += [section(c) for c in chunks[:room]]
    if len(chunks) > room:
        blocks.append(section("…the rest is too long to show here."))
    return {
        "type": "modal",
        "title": plain("Full text", 24),
        "close": plain("Close", 24),
        "blocks": blocks,
    }


def _heading(title: str) -> Block:
    return {"type": "header", "text": plain(escape(one_line(title)) or "Result", 150)}
