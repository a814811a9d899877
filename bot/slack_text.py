"""Turns Slack's message markup back into the plain text a person typed."""

from __future__ import annotations

import re

_MAILTO = re.compile(r"<mailto:([^|>]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|ftp)://[^|>]+)(?:\|([^>]*))?>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_SPECIAL = re.compile(r"<![^>]*>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_EMOJI = re.compile(r":[a-z0-9_+'-]*[a-z][a-z0-9_+'-]*:")


def plain_text(text: str, bot_user_id: str | None = None) -> str:
    """Drop the bot's own mention, unwrap mailto/links, undo Slack's escaping."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    text = _MAILTO.sub(r"\1", text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _USER.sub(r"@\1", text)
    text = _SPECIAL.sub(" ", text)
    text = _CHANNEL.sub(r"#\1", text)
    text = _EMOJI.sub(" ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())
