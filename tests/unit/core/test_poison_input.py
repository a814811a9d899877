"""Poison requests through the real submit path (the core service, as the Slack
listener calls it, on real storage): each is refused with a human answer or
becomes a task; none raises, so Slack never gets a 500 for it."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.container import build_service
from core.agents.registry import builtin_registry
from core.orchestrator import Outcome, Submission
from core.policy import Policy
from core.service import TaskService
from storage.knowledge_index import KnowledgeIndex
from storage.models import OutboxRow, TaskRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import submit


@pytest.fixture
def service(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> TaskService:
    return build_service(uow_factory, builtin_registry(KnowledgeIndex()), _policy(), clock)


def _policy() -> Policy:
    return Policy(approvers=("UAPPROVER",))


async def _stored_text(uow_factory: SqlUnitOfWorkFactory) -> str:
    async with uow_factory(read_only=True) as unit:
        tasks = (await unit.session.execute(select(TaskRow))).scalars().all()
        outbox = (await unit.session.execute(select(OutboxRow.payload))).scalars().all()
    return json.dumps(
        [[t.title, t.params, t.result] for t in tasks] + [list(outbox)], ensure_ascii=False
    )


def _refused(submission: Submission, *words: str) -> str:
    assert submission.outcome is Outcome.REFUSED, submission
    assert submission.reason and all(w in submission.reason for w in words), submission.reason
    return submission.reason


async def test_an_amount_of_2_pow_63_cents_is_refused(service: TaskService) -> None:
    _refused(await submit(service, f"buy 1 widget for ${2**63 // 100 + 1}"), "at most")


async def test_an_amount_with_28_digits_is_refused(service: TaskService) -> None:
    _refused(await submit(service, "buy 1 widget for $" + "9" * 28), "at most")


async def test_an_amount_with_400_digits_is_refused(service: TaskService) -> None:
    _refused(await submit(service, "buy 1 widget for $" + "9" * 400), "at most")


async def test_an_exponent_amount_is_refused_not_read_as_one_dollar(
    service: TaskService,
) -> None:
    reason = _refused(await submit(service, "buy 1 widget for $1e9"), "1e9")
    assert "$1.00" not in reason


async def test_an_amount_that_rounds_to_zero_cents_is_refused(service: TaskService) -> None:
    _refused(await submit(service, "buy 1 widget for $0.004"), "cent")


async def test_a_nul_character_is_stripped_before_storage(
    service: TaskService, uow_factory: SqlUnitOfWorkFactory
) -> None:
    submission = await submit(service, "research lap\x00tops\x07 and\u0085 more\x1b[31m")
    assert submission.outcome is Outcome.ACCEPTED, submission
    assert submission.root is not None and "\x00" not in submission.root.title
    stored = await _stored_text(uow_factory)
    for control in ("\x00", "\x07", "\x1b", "\u0085"):
        assert control not in stored and json.dumps(control) not in stored, stored


async def test_a_nul_only_request_is_refused_with_a_human_answer(service: TaskService) -> None:
    _refused(await submit(service, "\x00\x00\x00"), "request")


async def test_a_purchase_up_to_the_maximum_is_accepted(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    from core.money import MAX_AMOUNT_CENTS

    # a budget that covers it: an amount the budget can't cover is refused before
    # it is accepted (tests/unit/core/test_budget.py), which is not what this is about
    policy = Policy(approvers=("UAPPROVER",), monthly_budget_cents=MAX_AMOUNT_CENTS)
    service = build_service(uow_factory, builtin_registry(KnowledgeIndex()), policy, clock)
    dollars = MAX_AMOUNT_CENTS // 100
    submission = await submit(service, f"buy 1 server for ${dollars:,}")
    assert submission.outcome is Outcome.ACCEPTED, submission
    _refused(await submit(service, f"buy 1 server for ${dollars + 1:,}"), "at most")


#: what a Slack event's JSON can decode to: any code point, lone surrogates included
_ANY = st.text(alphabet=st.characters(exclude_categories=()), max_size=120)
_POISON = st.sampled_from(["\x00", "\ud800", "\udfff", "\r", "\x1b[0m", "\u2028", "\ufeff", ""])
_VERBS = st.sampled_from(["", "research ", "buy 2 ", "draft email to a@b.co about ", "compare "])
_AMOUNT = st.builds(
    str.__add__,
    st.sampled_from(["buy 1 widget for $", "buy 2 for €", "order 3 at $", "get me 4 for USD "]),
    st.from_regex(r"-?[0-9.,eE+\-kKmM]{1,40}", fullmatch=True),
)


@st.composite
def _requests(draw: st.DrawFn) -> str:
    head = draw(_AMOUNT | _VERBS)
    parts = [draw(_ANY), draw(_POISON), draw(_ANY), draw(_POISON)]
    return head + "".join(parts)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=_requests())
async def test_arbitrary_text_never_raises_and_always_gets_an_answer(
    service: TaskService, text: str
) -> None:
    submission = await submit(service, text)
    if submission.outcome is Outcome.REFUSED:
        assert submission.reason and submission.reason.strip()
        assert "Traceback" not in submission.reason
    else:
        assert submission.outcome is Outcome.ACCEPTED and submission.root is not None, submission
        assert "\x00" not in submission.root.title
