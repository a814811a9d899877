"""Block Kit limits (docs/SLACK.md) and helpers that keep to them.

Lengths are counted the way python-slack-sdk counts them (``len`` of the string
sent), i.e. on escaped mrkdwn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.views.escape import safe_cut, truncate

MAX_BLOCKS = 50
SECTION_TEXT = 3000
SECTION_FIELDS = 10
#: Slack's documented maximum for one section field's text
FIELD_TEXT = 2000
BUTTON_TEXT = 75
ACTION_ID = 255
BUTTON_VALUE = 2000
BLOCK_ID = 255
CONTEXT_ELEMENTS = 10
#: a text object in a context block (Slack's general text-object maximum)
CONTEXT_TEXT = 3000
ACTIONS_ELEMENTS = 25
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
MESSAGE_TEXT = 40000
#: our own cap for the top-level ``text`` fallback (notifications, screen readers)
FALLBACK_TEXT = 3000

MORE_BLOCKS_NOTE = "…{n} more not shown."

_SEPARATORS = ("\n\n", "\n", " ")


def chunk_text(text: str, limit: int = SECTION_TEXT) -> list[str]:
    """Split mrkdwn into pieces of at most ``limit`` characters.

    Cuts on a paragraph break if one is reasonably far in, else a line break,
    else a space, else anywhere that does not split an entity or a ``<…>`` token.
    Whitespace-only pieces are dropped.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    rest = text.strip("\n")
    while len(rest) > limit:
        cut, skip = -1, 0
        for sep in _SEPARATORS:
            pos = rest.rfind(sep, 0, limit)
            if pos > limit // 3:
                safe = safe_cut(rest, pos)
                if safe == pos:
                    cut, skip = pos, len(sep)
                    break
        if cut <= 0:
            cut = safe_cut(rest, limit)
            if cut <= 0:  # one token longer than the limit: cut it anyway
                cut = limit
            skip = 0
        piece = rest[:cut].rstrip()
        if piece.strip():
            chunks.append(piece)
        rest = rest[cut + skip :].lstrip("\n")
    if rest.strip():
        chunks.append(rest.rstrip())
    return chunks


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section; text over the limit is truncated with a note."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT)}}


def split_sections(text: str, limit: int = SECTION_TEXT) -> list[dict[str, Any]]:
    """Long mrkdwn as as many sections as it takes, each within ``limit`` characters."""
    return [section(chunk) for chunk in chunk_text(text, min(limit, SECTION_TEXT))]


def context(*texts: str) -> dict[str, Any]:
    """A context block of mrkdwn elements (at most 10, each truncated)."""
    kept = [t for t in texts if t.strip()][:CONTEXT_ELEMENTS]
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(t, CONTEXT_TEXT)} for t in kept],
    }


def fit_blocks(
    blocks: Sequence[dict[str, Any]],
    note: str = MORE_BLOCKS_NOTE,
    *,
    limit: int = MAX_BLOCKS,
    keep_tail: int = 0,
) -> list[dict[str, Any]]:
    """At most ``limit`` blocks: when there are more, the overflow is replaced by a
    context block with ``note`` (mrkdwn; ``{n}`` becomes the number of blocks left
    out). The last ``keep_tail`` blocks (e.g. an actions block) are always kept."""
    if len(blocks) <= limit:
        return list(blocks)
    keep_tail = max(0, min(keep_tail, limit - 1))
    tail = list(blocks[len(blocks) - keep_tail :]) if keep_tail else []
    room = limit - 1 - len(tail)
    dropped = len(blocks) - len(tail) - room
    return [*blocks[:room], context(note.replace("{n}", str(dropped))), *tail]
