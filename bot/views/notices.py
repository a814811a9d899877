"""core.notices.Notice → a Slack message ``{"text": …, "blocks": […]}``.

Pure: no I/O. The result can be passed as kwargs to chat.postMessage,
chat.update or chat.postEphemeral (the caller adds channel, thread_ts, ts…).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.views.blocks import (
    Block,
    Message,
    actions,
    button,
    confirm,
    context,
    message,
    section,
    split_sections,
)
from bot.views.escape import escape, is_user_id, link, mention, mentions, one_line, truncate
from bot.views.format import humanize_age, money, status_emoji, status_label, title_mrkdwn
from bot.views.results import result_blocks
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    ApprovalNeeded,
    ApprovalReminder,
    Notice,
    RequestAccepted,
    RequestFinished,
    RequestRefused,
    StaleReport,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNeedsAttention,
    TaskRejected,
    TaskRetried,
)

APPROVE_ACTION = "approval:approve"
DENY_ACTION = "approval:deny"
APPROVAL_BLOCK_PREFIX = "approval:"
RETRY_ACTION = "task:retry"

#: titles in headings: long enough to read, short enough for one line
_TITLE = 150

Permalinks = Mapping[int, str]


def render(notice: Notice, permalinks: Permalinks | None = None) -> Message:
    """The message for a notice. ``permalinks`` (task id → thread URL) is used by
    the stale report to link each task's thread."""
    links: Permalinks = permalinks or {}
    if isinstance(notice, RequestAccepted):
        return _request_accepted(notice)
    if isinstance(notice, RequestRefused):
        return _request_refused(notice)
    if isinstance(notice, ApprovalNeeded):
        return _approval_needed(notice, links.get(notice.task_id or 0))
    if isinstance(notice, ApprovalAsked):
        return _approval_asked(notice)
    if isinstance(notice, ApprovalDecided):
        return _approval_decided(notice)
    if isinstance(notice, ApprovalReminder):
        return _approval_reminder(notice)
    if isinstance(notice, TaskFinished):
        return _task_finished(notice)
    if isinstance(notice, TaskFailed):
        return _task_failed(notice)
    if isinstance(notice, TaskNeedsAttention):
        return _task_needs_attention(notice)
    if isinstance(notice, TaskRejected):
        return _task_rejected(notice)
    if isinstance(notice, TaskCancelled):
        return _task_cancelled(notice)
    if isinstance(notice, RequestFinished):
        return _request_finished(notice)
    if isinstance(notice, StaleReport):
        return _stale_report(notice, links)
    if isinstance(notice, TaskRetried):
        return _task_retried(notice)
    return _generic(notice)


def approval_block_id(approval_id: int) -> str:
    return f"{APPROVAL_BLOCK_PREFIX}{approval_id}"


# --- helpers -----------------------------------------------------------------


def _ref(task_id: int | None) -> str:
    return f"task #{task_id}" if task_id is not None else "your request"


def _title(title: str) -> str:
    return title_mrkdwn(title, _TITLE)


def _more_note(task_id: int | None) -> str:
    where = f" — see `/tasks {task_id}`" if task_id is not None else ""
    return "…{n} more blocks not shown" + where + "."


def _generic(notice: Notice) -> Message:
    text = f"Update on {_ref(notice.task_id)} ({escape(notice.kind)})."
    return message(text, [section(text)])


def _approval_summary(
    task_id: int | None, title: str, amount_cents: int, currency: str
) -> list[str]:
    return [
        f"*Approval for {_ref(task_id)}:* {_title(title)}",
        f"Cost: *{escape(money(amount_cents, currency))}*",
    ]


# --- renderers -----------------------------------------------------------------


def _request_accepted(n: RequestAccepted) -> Message:
    head = f"Got it — {_ref(n.task_id)}: *{_title(n.title)}*"
    if n.requester:
        head += f" (for {mention(n.requester)})"
    blocks: list[Block] = [section(head)]
    if len(n.steps) > 1:
        chain = escape(one_line(n.outline)) or " → ".join(
            escape(one_line(s.agent)) for s in n.steps
        )
        blocks.append(context(f"Plan: {truncate(chain, 1000, '…')}"))
    lines: list[str] = []
    for step in n.steps:
        agent = escape(one_line(step.agent))
        line = f"• `#{step.task_id}` _{agent}_ — {title_mrkdwn(step.title, 100)}"
        if step.depends_on:
            line += " (after " + ", ".join(f"#{d}" for d in step.depends_on) + ")"
        if step.needs_approval:
            line += " — 🔐 needs approval"
        lines.append(line)
    if lines:
        blocks += split_sections("\n".join(lines))
    approvals = sum(1 for s in n.steps if s.needs_approval)
    if approvals:
        blocks.append(
            context(f"{approvals} step{'s' if approvals != 1 else ''} will ask for approval first.")
        )
    text = f"Got it — {_ref(n.task_id)}: {_title(n.title)}"
    if len(n.steps) > 1 and n.outline:
        text += f" ({escape(one_line(n.outline))})"
    return message(text, blocks, more_note=_more_note(n.task_id))


def _request_refused(n: RequestRefused) -> Message:
    who = f"Sorry {mention(n.requester)}, " if n.requester else "Sorry, "
    reason = escape(n.reason.strip()) or "I couldn't take that request."
    blocks = split_sections(f"🙅 {who}I can't do that: {reason}")
    return message(f"{who}I can't do that: {reason}", blocks)


def _approval_needed(n: ApprovalNeeded, thread_link: str | None = None) -> Message:
    """Everything an approver needs to decide alone, wherever they read it."""
    amount = escape(money(n.amount_cents, n.currency))
    lines = [
        f"🔐 *Approval needed* for {_ref(n.task_id)}: *{_title(n.title)}*",
        f"Cost: *{amount}*",
    ]
    if n.requester:
        lines.append(f"Requested by {mention(n.requester)}")
    lines.append(f"Budget left after this purchase: {escape(money(n.remaining_cents, n.currency))}")
    words = one_line(n.request_text)
    if words:
        lines.append(f"They asked: _{truncate(escape(words), 500, '…')}_")
    if thread_link:
        lines.append(link(thread_link, "Open the request's thread"))
    blocks: list[Block] = [section("\n".join(lines))]
    if n.approvers:
        who = "Approver" if len(n.approvers) == 1 else "Approvers"
        blocks.append(context(f"{who}: {mentions(n.approvers)}"))
    dialog = confirm(
        "Approve this purchase?",
        f"This spends {amount} for {_ref(n.task_id)} and cannot be undone.",
        "Approve",
        "Not yet",
    )
    value = str(n.approval_id)
    blocks.append(
        actions(
            [
                button("Approve", APPROVE_ACTION, value, style="primary", confirm=dialog),
                button("Deny", DENY_ACTION, value, style="danger"),
            ],
            block_id=approval_block_id(n.approval_id),
        )
    )
    text = f"Approval needed: {_title(n.title)}"
    if amount not in text:
        text += f" ({amount})"
    if n.approvers:
        text += f" — {mentions(n.approvers)}"
    return message(text, blocks, keep_tail=1)


def _approval_asked(n: ApprovalAsked) -> Message:
    amount = escape(money(n.amount_cents, n.currency))
    who = mentions(n.approvers) if n.approvers else "the approvers"
    where = (
        f" in <#{escape(n.approval_channel)}>" if n.approval_channel else " (sent to them directly)"
    )
    line = (
        f"⏳ {_ref(n.task_id).capitalize()} *{_title(n.title)}* ({amount}) waits for "
        f"approval from {who}{where}. I'll tell you here what they decide."
    )
    return message(f"Waiting for approval: {_title(n.title)}", [section(line)])


_OUTCOMES: dict[str, tuple[str, bool]] = {
    # outcome → (line, whether "by <@U>" follows)
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


def _approval_decided(n: ApprovalDecided) -> Message:
    lines = _approval_summary(n.task_id, n.title, n.amount_cents, n.currency)
    result = outcome_line(n.outcome, n.decided_by)
    blocks: list[Block] = [section("\n".join(lines)), section(result)]
    return message(f"{result}: {_title(n.title)}", blocks)


def _approval_reminder(n: ApprovalReminder) -> Message:
    waited = escape(humanize_age(n.waiting_seconds))
    line = (
        f"⏰ *Reminder:* {_ref(n.task_id)} *{_title(n.title)}* has been waiting "
        f"{waited} for approval."
    )
    if n.approvers:
        line += f"\n{mentions(n.approvers)}: the Approve / Deny buttons are on the request above."
    return message(f"Reminder: {_title(n.title)} is waiting for approval", [section(line)])


def _task_finished(n: TaskFinished) -> Message:
    head = f"✅ *{_title(n.title)}*"
    if n.task_id is not None:
        head += f"  (task #{n.task_id})"
    blocks: list[Block] = [section(head)]
    blocks += result_blocks(n.result, currency=n.currency, cost_cents=n.cost_cents)
    summary = one_line(n.result.summary)
    text = f"Done: {_title(n.title)}" + (f" — {escape(summary)}" if summary else "")
    return message(text, blocks, more_note=_more_note(n.task_id))


def _task_failed(n: TaskFailed) -> Message:
    head = f"❌ {_ref(n.task_id).capitalize()} failed: *{_title(n.title)}*"
    error = n.error.strip()
    blocks: list[Block] = [section(head)]
    if error:
        blocks += split_sections("\n".join("> " + escape(line) for line in error.split("\n")))
    text = f"Failed: {_title(n.title)}" + (f" — {escape(one_line(error))}" if error else "")
    blocks += _retry_button(n.task_id)
    return message(text, blocks, more_note=_more_note(n.task_id), keep_tail=1)


def _retry_button(task_id: int | None) -> list[Block]:
    """Re-run the failed steps (the listener lets only the requester do it)."""
    if task_id is None:
        return []
    return [actions([button("Retry", RETRY_ACTION, str(task_id))], block_id=f"retry:{task_id}")]


def _task_retried(n: TaskRetried) -> Message:
    line = f"🔁 Retrying {_ref(n.task_id)}: *{_title(n.title)}*"
    if n.retried_by:
        line += f" (asked by {mention(n.retried_by)})"
    if n.step_titles:
        line += "\nRunning again: " + ", ".join(escape(s) for s in n.step_titles)
    return message(f"Retrying: {_title(n.title)}", [section(line)])


def _task_needs_attention(n: TaskNeedsAttention) -> Message:
    head = f"⚠️ {_ref(n.task_id).capitalize()} needs attention: *{_title(n.title)}*"
    lines = [head]
    if n.reference:
        lines.append(f"Reference: *{escape(n.reference)}*")
    if n.detail.strip():
        lines.append(escape(n.detail.strip()))
    if n.approvers:
        who = " ".join(mention(a) for a in n.approvers)
        lines.append(f"{who}: please check it; the money stays held until it is resolved.")
    text = f"Needs attention: {_title(n.title)}" + (
        f" — {escape(n.reference)}" if n.reference else ""
    )
    return message(text, split_sections("\n".join(lines)), more_note=_more_note(n.task_id))


def _task_rejected(n: TaskRejected) -> Message:
    line = f"🚫 {_ref(n.task_id).capitalize()} was not approved: *{_title(n.title)}*"
    if n.decided_by:
        line += f" (denied by {mention(n.decided_by)})"
    return message(f"Not approved: {_title(n.title)}", [section(line)])


def _task_cancelled(n: TaskCancelled) -> Message:
    line = f"⏹️ {_ref(n.task_id).capitalize()} was cancelled: *{_title(n.title)}*"
    reason = n.reason.strip()
    blocks: list[Block] = [section(line)]
    if reason:
        blocks += split_sections(f"Reason: {escape(reason)}")
    return message(f"Cancelled: {_title(n.title)}", blocks)


def _request_finished(n: RequestFinished) -> Message:
    emoji = status_emoji(n.status)
    label = escape(status_label(n.status)) or "finished"
    line = f"{emoji} {_ref(n.task_id).capitalize()} {label}: *{_title(n.title)}*"
    if n.total:
        line += f"\n{n.completed} of {n.total} step{'s' if n.total != 1 else ''} completed."
    blocks: list[Block] = [section(line)]
    if n.status == "FAILED":
        blocks += _retry_button(n.task_id)
    return message(f"{_ref(n.task_id).capitalize()} {label}: {_title(n.title)}", blocks)


def _stale_report(n: StaleReport, permalinks: Permalinks) -> Message:
    count = len(n.tasks)
    if not count:
        return message("No stale tasks.", [section("🧹 No stale tasks.")])
    head = f"⏳ *{count} task{'s' if count != 1 else ''} waiting too long*"
    lines: list[str] = []
    for t in n.tasks:
        if t.waiting_on:
            waiting = "approval from " + ", ".join(mention(u) for u in t.waiting_on)
        elif is_user_id(t.waiting_for):
            waiting = mention(t.waiting_for)
        else:
            waiting = escape(one_line(t.waiting_for))
        line = (
            f"• `#{t.task_id}` {title_mrkdwn(t.title)} — {mention(t.requester)}"
            f" · {escape(humanize_age(t.age_seconds))} old"
        )
        if waiting:
            line += f" · waiting for {waiting}"
        url = permalinks.get(t.task_id)
        if url:
            line += f" · {link(url, 'thread')}"
        lines.append(line)
    blocks: list[Block] = [section(head), *split_sections("\n".join(lines))]
    return message(f"{count} stale task{'s' if count != 1 else ''}", blocks)
