"""The one choke point between user or agent text and Slack mrkdwn.

Every piece of text that did not come from this package passes through
:func:`escape` before it is put into a message, so ``<!channel>``, ``<!here>``,
``<@U123>`` or ``<http://evil|click>`` typed by someone arrive as harmless text.
Only ``&``, ``<`` and ``>`` are control characters in Slack mrkdwn; escaping
exactly those three (``&`` first) is what Slack asks for.

The only raw ``<…>`` tokens in a rendered message are the ones this package
builds itself: :func:`mention` (checked user ids) and :func:`link` (checked URLs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_URL = re.compile(r"^https?://[^\s<>|]+$")
_WHITESPACE = re.compile(r"\s+")
# the longest entity escape() produces: "&amp;"
_ENTITY_MAX = 5

TRUNCATED = "… (truncated)"


#: bidi embeddings/overrides/isolates and marks, zero-width and other invisible
#: format characters, and C0/C1 controls other than newline and tab: a user's
#: U+202E would otherwise reverse the text we put after theirs
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)


def isolate(text: object) -> str:
    """User or agent text without characters that reorder or hide what follows."""
    return _INVISIBLE.sub("", str(text))


def escape(text: object) -> str:
    """Neutralise bidi and control characters, then escape ``&``, ``<``, ``>`` (in
    that order) so Slack shows them as text."""
    return isolate(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_USER_ID_IN_TEXT = re.compile(r"\b[UW][A-Z0-9]{8,}\b")


def with_mentions(escaped: str) -> str:
    """Escaped text with raw user ids ("Cancelled by U0123ABCD.") shown as names."""
    return _USER_ID_IN_TEXT.sub(lambda m: f"<@{m.group(0)}>", escaped)


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and _USER_ID.match(value) is not None


def mention(user_id: str | None) -> str:
    """``<@U123>`` for a well-formed user id; anything else comes back escaped."""
    if user_id is None:
        return "someone"
    if is_user_id(user_id):
        return f"<@{user_id}>"
    return escape(user_id)


def mentions(user_ids: Iterable[str], sep: str = ", ") -> str:
    return sep.join(mention(u) for u in user_ids)


def link(url: str, label: str) -> str:
    """``<url|label>`` for an http(s) URL; the label is escaped. A URL that is not
    plainly an http(s) URL is not linked: the label is returned escaped."""
    if not _URL.match(url):
        return escape(label)
    return f"<{escape(url)}|{escape(label).replace('|', '¦')}>"


def one_line(text: object) -> str:
    """Collapse all whitespace (newlines included) to single spaces."""
    return _WHITESPACE.sub(" ", str(text)).strip()


def safe_cut(text: str, pos: int) -> int:
    """A cut position <= pos that splits neither an entity (``&amp;``) nor one of
    our own ``<…>`` tokens. Meant for escaped (mrkdwn) text."""
    if pos >= len(text):
        return len(text)
    pos = max(0, pos)
    head = text[:pos]
    amp = head.rfind("&", max(0, pos - _ENTITY_MAX + 1))
    if amp != -1 and ";" not in head[amp:]:
        pos = amp
        head = text[:pos]
    lt = head.rfind("<")
    if lt != -1 and lt > head.rfind(">"):
        pos = lt
    return pos


def truncate(text: str, limit: int, note: str = TRUNCATED) -> str:
    """``text`` if it fits in ``limit`` characters, else a prefix plus ``note``.

    Works on escaped text: it never cuts an entity or a ``<…>`` token in half.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if len(note) >= limit:
        return note[:limit]
    cut = safe_cut(text, limit - len(note))
    return text[:cut].rstrip() + note
