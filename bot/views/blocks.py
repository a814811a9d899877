"""Small builders for Block Kit dicts. They take mrkdwn that is already escaped
(see bot.views.escape) and enforce the length limits of bot.views.limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from bot.views.escape import isolate, truncate
from bot.views.limits import (
    ACTION_ID,
    ACTIONS_ELEMENTS,
    BLOCK_ID,
    BUTTON_TEXT,
    BUTTON_VALUE,
    CONFIRM_BUTTON,
    CONFIRM_TEXT,
    CONFIRM_TITLE,
    FALLBACK_TEXT,
    FIELD_TEXT,
    MESSAGE_TEXT,
    MORE_BLOCKS_NOTE,
    SECTION_FIELDS,
    context,
    fit_blocks,
    section,
    split_sections,
)

Block = dict[str, Any]
Message = dict[str, Any]

__all__ = [
    "Block",
    "Message",
    "actions",
    "button",
    "confirm",
    "context",
    "divider",
    "field_sections",
    "message",
    "section",
    "split_sections",
]


def plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(isolate(text), limit, "…"), "emoji": True}


def divider() -> Block:
    return {"type": "divider"}


def field_sections(fields: Sequence[str], text: str | None = None) -> list[Block]:
    """Sections of mrkdwn fields, 10 to a section; ``text`` heads the first one."""
    out: list[Block] = []
    items = [f for f in fields if f.strip()]
    for start in range(0, len(items), SECTION_FIELDS):
        block: Block = {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": truncate(f, FIELD_TEXT)}
                for f in items[start : start + SECTION_FIELDS]
            ],
        }
        if text and not out:
            block["text"] = section(text)["text"]
        out.append(block)
    if not out and text:
        out.append(section(text))
    return out


def confirm(title: str, text: str, ok: str, cancel: str) -> dict[str, Any]:
    """A confirm dialog; ``text`` is mrkdwn (escaped by the caller)."""
    return {
        "title": plain(title, CONFIRM_TITLE),
        "text": {"type": "mrkdwn", "text": truncate(text, CONFIRM_TEXT, "…")},
        "confirm": plain(ok, CONFIRM_BUTTON),
        "deny": plain(cancel, CONFIRM_BUTTON),
    }


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: Literal["primary", "danger"] | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if len(action_id) > ACTION_ID:
        raise ValueError(f"action_id over {ACTION_ID} characters: {action_id[:40]}…")
    if len(value) > BUTTON_VALUE:
        raise ValueError(f"button value over {BUTTON_VALUE} characters")
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT),
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def actions(elements: Sequence[dict[str, Any]], block_id: str | None = None) -> Block:
    if len(elements) > ACTIONS_ELEMENTS:
        raise ValueError(f"an actions block holds at most {ACTIONS_ELEMENTS} elements")
    ids = [e.get("action_id") for e in elements]
    if len(set(ids)) != len(ids):
        raise ValueError("action_ids must be unique within a block")
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        if len(block_id) > BLOCK_ID:
            raise ValueError(f"block_id over {BLOCK_ID} characters")
        block["block_id"] = block_id
    return block


def message(
    text: str,
    blocks: Sequence[Block],
    *,
    more_note: str = MORE_BLOCKS_NOTE,
    keep_tail: int = 0,
) -> Message:
    """``{"text": fallback, "blocks": [...]}`` within the limits: at most 50 blocks
    (overflow replaced by ``more_note``) and a non-empty, bounded fallback text."""
    fallback = truncate(text.strip(), min(FALLBACK_TEXT, MESSAGE_TEXT)) or "taskbot"
    return {"text": fallback, "blocks": fit_blocks(blocks, more_note, keep_tail=keep_tail)}
