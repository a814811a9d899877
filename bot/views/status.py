"""The one living status message of a request (core.notices.RequestStatus).

Posted once when a request takes a while or waits for someone, then replaced in
place (chat.update) at every change, so the requester is notified once. Every
emoji has its status word; the request's own words are shown as plain text,
where Slack parses no mrkdwn; a Cancel button stays while the request runs.
"""

from __future__ import annotations

from bot.views.blocks import Block, Message, actions, button, confirm, context, message, plain
from bot.views.buttons import CancelButton
from bot.views.escape import escape, mentions, one_line
from bot.views.format import money, status_emoji
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    Notice,
    RequestAccepted,
    RequestFinished,
    RequestStatus,
    StepState,
    TaskFinished,
)

#: a status → its word in a request's headline, and in a step's line; "WAITING" is
#: a pending step waiting for someone. Every word has its emoji (_emoji).
_WORDS: dict[str, tuple[str, str]] = {
    "PENDING": ("Starting", "to do"),
    "IN_PROGRESS": ("Working on it", "running"),
    "WAITING": ("Waiting for approval", "waiting for approval"),
    "COMPLETED": ("Done", "done"),
    "FAILED": ("Failed", "failed"),
    "REJECTED": ("Denied", "denied"),
    "CANCELLED": ("Cancelled", "cancelled"),
    "NEEDS_ATTENTION": ("Needs attention", "needs attention"),
}
#: a step not started yet: quieter than a request that is starting (⏳)
_TO_DO = "▫️"

#: what the requester can do next, once the request has ended
_NEXT: dict[str, str] = {
    "COMPLETED": "The result is in this thread.",
    "FAILED": "Something broke; the reason is in this thread. You can ask again.",
    "REJECTED": "You can ask again with a smaller amount or a different item.",
    "CANCELLED": "Nothing more will happen. You can ask again at any time.",
}

_TITLE = 150


def request_footer(request_id: int | None) -> str:
    """The one place a request's number is shown: ``Request 5 · `/tasks 5` ``."""
    if request_id is None:
        return ""
    return f"Request {request_id} · `/tasks {request_id}`"


def _emoji(status: str) -> str:
    if status not in _WORDS:
        return "•"
    return "⏳" if status == "WAITING" else status_emoji(status)


def headline(status: str) -> tuple[str, str]:
    word = _WORDS[status][0] if status in _WORDS else status.replace("_", " ").lower()
    return _emoji(status), word or "Update"


def step_line(step: StepState) -> str:
    status = step.status
    word = _WORDS[status][1] if status in _WORDS else status.replace("_", " ").lower()
    emoji = _TO_DO if status == "PENDING" else _emoji(status)
    return f"{emoji} {one_line(step.title)} ({word})"


def render_status(n: RequestStatus) -> Message:
    emoji, word = headline(n.status)
    title = one_line(n.title) or "your request"
    amount = money(n.amount_cents, n.currency) if n.amount_cents > 0 else ""
    head = f"{emoji} *{word}*" + (f" · {amount}" if amount and n.status == "WAITING" else "")
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": head}, "block_id": "status"},
        {"type": "section", "text": plain(escape(title), _TITLE)},
    ]
    if len(n.steps) > 1:
        steps = " · ".join(step_line(s) for s in n.steps)
        blocks.append({"type": "section", "text": plain(escape(steps), 2000)})
    blocks.append(context(_next_step(n)))
    if not n.final and n.task_id is not None:  # a button that names no request is no use
        blocks.append(_cancel(n.task_id))
    footer = request_footer(n.task_id)
    if footer:
        blocks.append(context(footer))
    return message(_fallback(n, word, title, amount), blocks, keep_tail=2)


def _next_step(n: RequestStatus) -> str:
    approved = f"✅ Approved by {mentions(n.approved_by)}. " if n.approved_by else ""
    return approved + _what_next(n)


def _what_next(n: RequestStatus) -> str:
    if n.final:
        return _NEXT.get(n.status, "")
    if n.waiting_on:
        # who was asked, so the requester knows whom to nudge (approvers outside this
        # conversation are not notified by it; their approval message is their ping)
        return (
            f"This request waits for approval from {mentions(n.waiting_on)}; this message "
            "changes when they decide. You can cancel until then."
        )
    return "This message changes as the work goes on. You can cancel the steps not started yet."


def _cancel(task_id: int) -> Block:
    dialog = confirm(
        "Cancel this request?",
        "The steps not started yet won't run. A step already running finishes first.",
        "Cancel request",
        "Keep it",
    )
    return actions(
        [
            button(
                "Cancel request",
                CancelButton.action_id,
                CancelButton(task_id).pack(),
                confirm=dialog,
            )
        ],
        block_id=f"status:{task_id}",
    )


def _fallback(n: RequestStatus, word: str, title: str, amount: str) -> str:
    """One sentence a phone or a screen reader can stand on: the point, then the action."""
    about = escape(title if len(title) <= 80 else title[:79] + "…")
    if n.status == "WAITING":
        cost = f" ({amount})" if amount else ""
        return f"Waiting for approval: {about}{cost}. I'll update this message when it's decided."
    if n.final:
        return f"{word}: {about}. {_NEXT.get(n.status, '')}".strip()
    return f"{word}: {about}. I'll update this message as it goes."


def folded_into_status(notice: Notice) -> bool:
    """Notices shown in the request's status message instead of a post of their own:
    "got it", who was asked to approve and that they approved, "request finished",
    and a step's result that only feeds a later step. (A decision on an approval
    message itself, which carries that message's ts, is an edit and still goes.)"""
    if isinstance(notice, RequestAccepted | RequestFinished | ApprovalAsked):
        return True
    if isinstance(notice, ApprovalDecided) and notice.message_ts is None:
        return True
    return isinstance(notice, TaskFinished) and notice.intermediate
