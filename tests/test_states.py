"""The annotation lifecycle (pure): every legal transition, every illegal one, and who may take each."""

from __future__ import annotations

import itertools

import pytest

from workspace.tenancy.errors import Conflict, Forbidden
from workspace.workflow import states as st

AUTHOR, REVIEWER = 1, 2

LEGAL = {
    (None, "save_draft"): "draft",
    ("draft", "save_draft"): "draft",
    (None, "submit"): "submitted",
    ("draft", "submit"): "submitted",
    ("skipped", "submit"): "submitted",
    (None, "skip"): "skipped",
    ("draft", "skip"): "skipped",
    ("skipped", "skip"): "skipped",
    ("submitted", "update"): "submitted",
    ("rejected", "resubmit"): "submitted",
    ("submitted", "accept"): "accepted",
    ("submitted", "reject"): "rejected",
    ("submitted", "fix"): "accepted",
}


def _take(status, action):  # type: ignore[no-untyped-def]
    """Take ``action`` as the person entitled to it (the author, or a reviewer who is not the author)."""
    if action in st.REVIEWER_ACTIONS:
        return st.transition(status, action, actor_id=REVIEWER, author_id=AUTHOR, may_review=True)
    return st.transition(status, action, actor_id=AUTHOR, author_id=AUTHOR)


def test_the_table_is_the_documented_one():
    assert st.TRANSITIONS == LEGAL


@pytest.mark.parametrize(("status", "action"), sorted(LEGAL, key=str))
def test_legal_transitions(status, action):  # type: ignore[no-untyped-def]
    move = _take(status, action)
    assert (move.before, move.action, move.after) == (status, action, LEGAL[(status, action)])
    assert move.revision_action in {"draft", "submitted", "skipped", "updated", "resubmitted", "accepted",
                                    "rejected", "fixed"}


ILLEGAL = [(s, a) for s, a in itertools.product((None, *st.STATUSES), sorted(st.ACTIONS)) if (s, a) not in LEGAL]


@pytest.mark.parametrize(("status", "action"), ILLEGAL, ids=[f"{s}-{a}" for s, a in ILLEGAL])
def test_illegal_transitions_raise_a_clear_conflict(status, action):  # type: ignore[no-untyped-def]
    with pytest.raises(st.IllegalTransition) as caught:
        _take(status, action)
    assert isinstance(caught.value, Conflict) and caught.value.status == 409
    message = caught.value.message
    assert message.startswith(("This annotation", "There is no annotation")) and message.endswith(".")


def test_messages_say_why():
    with pytest.raises(st.IllegalTransition, match="accepted by a reviewer and is final"):
        _take("accepted", "accept")
    with pytest.raises(st.IllegalTransition, match="resubmit it"):
        _take("rejected", "update")
    with pytest.raises(st.IllegalTransition, match="still a draft"):
        _take("draft", "reject")
    with pytest.raises(st.IllegalTransition, match="nothing to review"):
        _take("skipped", "fix")


@pytest.mark.parametrize("action", sorted(st.REVIEWER_ACTIONS))
def test_nobody_reviews_their_own_work(action):  # type: ignore[no-untyped-def]
    with pytest.raises(st.NotAllowed, match="your own work") as caught:
        st.transition("submitted", action, actor_id=AUTHOR, author_id=AUTHOR, may_review=True)
    assert isinstance(caught.value, Forbidden)


@pytest.mark.parametrize("action", sorted(st.REVIEWER_ACTIONS))
def test_reviewing_needs_the_review_permission(action):  # type: ignore[no-untyped-def]
    with pytest.raises(st.NotAllowed, match="permission to review"):
        st.transition("submitted", action, actor_id=REVIEWER, author_id=AUTHOR, may_review=False)


@pytest.mark.parametrize(("status", "action"), [("submitted", "update"), ("rejected", "resubmit"),
                                                ("draft", "submit"), ("skipped", "submit"), ("draft", "skip")])
def test_only_the_author_changes_their_annotation(status, action):  # type: ignore[no-untyped-def]
    with pytest.raises(st.NotAllowed, match="Only the annotator"):
        st.transition(status, action, actor_id=REVIEWER, author_id=AUTHOR, may_review=True)


def test_anyone_starts_their_own_new_annotation():
    assert st.transition(None, "submit", actor_id=REVIEWER, author_id=None).after == "submitted"


def test_unknown_action_or_status_is_a_programming_error():
    with pytest.raises(ValueError):
        st.transition("submitted", "approve", actor_id=REVIEWER, author_id=AUTHOR, may_review=True)
    with pytest.raises(ValueError):
        st.transition("pending", "accept", actor_id=REVIEWER, author_id=AUTHOR, may_review=True)


@pytest.mark.parametrize(("status", "expected"), [(None, "submit"), ("draft", "submit"), ("skipped", "submit"),
                                                  ("submitted", "update"), ("rejected", "resubmit"),
                                                  ("accepted", "update")])
def test_what_an_annotators_submit_means(status, expected):  # type: ignore[no-untyped-def]
    assert st.annotator_action(status) == expected


def test_a_full_round_trip():
    status = None
    for action in ("save_draft", "submit", "reject", "resubmit", "fix"):
        status = _take(status, action).after
    assert status == "accepted"
