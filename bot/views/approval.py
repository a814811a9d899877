"""The approval request an approver decides from alone, its record after the
decision, its reminder, and the Deny… reason modal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.views.blocks import (
    Block,
    Message,
    actions,
    button,
    confirm,
    context,
    field_sections,
    message,
    plain,
    section,
)
from bot.views.buttons import ApproveButton, DenyButton, DenyForm
from bot.views.escape import escape, isolate, link, mention, mentions, one_line, truncate
from bot.views.format import humanize_age, money, title_mrkdwn
from core.approvals import DENY_REASON_MAX
from core.notices import ApprovalDecided, ApprovalNeeded, ApprovalReminder

#: the Deny… modal's reason input
REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"

_WORDS = 500
_TITLE = 150


def slack_date(unix: int) -> str:
    """A time every reader sees in their own time zone (UTC in the fallback)."""
    fallback = datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{unix}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _what(item: str, quantity: int, title: str) -> str:
    """ "2 × monitors" (unescaped), or the step's title when the item is unknown."""
    if item.strip():
        return f"{quantity} × {one_line(item)}"
    return one_line(title)


def _unit(amount_cents: int, quantity: int, currency: str) -> str:
    if quantity <= 1:
        return ""
    each, rest = divmod(amount_cents, quantity)
    about = "" if rest == 0 else "about "
    return f" ({about}{escape(money(each, currency))} each)"


def _asked_by(requester: str, channel: str | None, words: str, thread_link: str | None) -> str:
    who = mention(requester) if requester else "Someone"
    if channel and channel.startswith("D"):
        where = "asked me directly"
    elif channel:
        where = f"asked in <#{escape(channel)}>"
    else:
        where = "asked"
    line = f"{who} {where}:"
    quoted = truncate(escape(isolate(words).strip()), _WORDS, "…")
    if quoted:
        line += "\n" + "\n".join("> " + q for q in quoted.split("\n") if q.strip())
    if thread_link:
        line += "\n" + link(thread_link, "Open the request's thread")
    return line


def _details(
    n: ApprovalNeeded | ApprovalDecided, thread_link: str | None
) -> tuple[list[Block], str]:
    """Header, the requester's own words and the fields; and "2 × monitors"."""
    raw = _what(n.item, n.quantity, n.title)
    what = escape(raw)
    total = money(n.amount_cents, n.currency)
    # plain text: the user's words are never parsed as mrkdwn; &<> escaped all the
    # same, which Slack shows as typed
    header: Block = {
        "type": "header",
        "text": plain(f"Purchase approval: {what}, {escape(total)}", _TITLE),
    }
    blocks: list[Block] = [header]
    blocks.append(section(_asked_by(n.requester, n.request_channel, n.request_text, thread_link)))
    fields = [f"*Item*\n{what}{_unit(n.amount_cents, n.quantity, n.currency)}"]
    left = escape(money(n.remaining_cents, n.currency))
    if n.limit_cents:
        limit = escape(money(n.limit_cents, n.currency))
        fields.append(f"*Budget*\n{left} left of {limit} this month after this")
    elif isinstance(n, ApprovalNeeded):
        fields.append(f"*Budget*\n{left} left this month after this")
    if n.expires_at:
        fields.append(f"*Decide by*\n{slack_date(n.expires_at)}")
    blocks += field_sections(fields)
    return blocks, what


def approval_needed(n: ApprovalNeeded, thread_link: str | None = None) -> Message:
    """Everything an approver needs to decide alone, wherever they read it. The total
    is said twice: in the header and on the button that spends it."""
    blocks, what = _details(n, thread_link)
    amount = escape(money(n.amount_cents, n.currency))
    dialog = confirm(
        f"Spend {money(n.amount_cents, n.currency)}?",
        f"Orders {what} for {mention(n.requester) if n.requester else 'the requester'}. "
        "This can't be undone.",
        "Approve",
        "Back",
    )
    notes = []
    if n.approvers:
        who = "Approver" if len(n.approvers) == 1 else "Approvers"
        notes.append(f"{who}: {mentions(n.approvers)}")
    notes.append("the requester sees the outcome in their thread")
    if n.task_id is not None:
        notes.append(f"request {n.task_id}")
    blocks.append(context(" · ".join(notes)))
    approve, deny = ApproveButton(n.approval_id), DenyButton(n.approval_id)
    blocks.append(
        actions(
            [
                button(
                    f"Approve {amount}",
                    approve.action_id,
                    approve.pack(),
                    style="primary",
                    confirm=dialog,
                ),
                button("Deny…", deny.action_id, deny.pack()),
            ],
            block_id=f"approval:{n.approval_id}",
        )
    )
    who = mention(n.requester) if n.requester else "Someone"
    # in a shared channel only a mention in the text notifies the approvers
    asked = "you" if n.destination.user or not n.approvers else mentions(n.approvers)
    return message(f"{who} asks {asked} to approve {amount} for {what}", blocks, keep_tail=1)


_OUTCOMES: dict[str, tuple[str, bool]] = {
    # outcome → (words, whether "by <@U>" follows)
    "approved": ("✅ Approved", True),
    "denied": ("❌ Denied", True),
    "expired": ("⌛ Expired", False),
    "cancelled": ("⏹️ Cancelled", False),
    "canceled": ("⏹️ Cancelled", False),
}


def outcome_line(outcome: str, decided_by: str | None) -> str:
    label, with_actor = _OUTCOMES.get(outcome.strip().lower(), (escape(one_line(outcome)), True))
    if with_actor and decided_by:
        label += f" by {mention(decided_by)}"
    return label or "Decided"


def approval_decided(n: ApprovalDecided) -> Message:
    """The same message with its buttons turned into the record of the decision."""
    blocks, what = _details(n, None)
    parts = [outcome_line(n.outcome, n.decided_by)]
    if n.decided_at:
        parts.append(slack_date(n.decided_at))
    if n.reference.strip():
        parts.append(escape(one_line(n.reference)))
    if n.reason.strip():
        parts.append(truncate(escape(one_line(n.reason)), DENY_REASON_MAX + 50, "…"))
    record = " · ".join(parts)
    blocks.append(section(f"*{parts[0]}*" + record[len(parts[0]) :]))
    amount = escape(money(n.amount_cents, n.currency))
    words = outcome_line(n.outcome, n.decided_by)
    text = f"{words}: {amount} for {what}"
    if n.requester:
        text += f", asked by {mention(n.requester)}"
    return message(text, blocks, keep_tail=1)


def approval_reminder(n: ApprovalReminder) -> Message:
    waited = escape(humanize_age(n.waiting_seconds))
    title = title_mrkdwn(n.title, _TITLE)
    line = f"⏰ *Reminder:* the request *{title}* has been waiting {waited} for approval."
    if n.approvers:
        line += f"\n{mentions(n.approvers)}: Approve or Deny… on the approval message."
    text = f"Reminder: the request {escape(one_line(n.title))} is waiting for your approval"
    return message(text, [section(line)])


# --- the Deny… modal ---------------------------------------------------------------


def deny_modal(form: DenyForm) -> dict[str, Any]:
    """Asks for the reason the requester will read; the form travels in
    ``private_metadata``."""
    return {
        "type": "modal",
        "callback_id": form.callback_id,
        "private_metadata": form.pack(),
        "title": plain("Deny the request", 24),
        "submit": plain("Deny", 24),
        "close": plain("Back", 24),
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": plain("Reason (sent to the requester)", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": DENY_REASON_MAX,
                    "placeholder": plain("e.g. We have spare monitors in the store room", 150),
                },
            }
        ],
    }
