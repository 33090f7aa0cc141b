"""The annotation lifecycle as a pure state machine (no I/O): which action moves an annotation from
which status to which, and who may take it.

::

    (new) ──save_draft──▶ draft ──submit──▶ submitted ──accept──▶ accepted
      │                     │                 │  ▲  │
      │                     └──skip──▶ skipped│  │  └──fix (edit + accept)──▶ accepted
      └──submit / skip──────────────────┘     │  │
                               skipped ─submit┘  └──resubmit── rejected ◀──reject── submitted
                                      submitted ──update (its annotator edits before review)──▶ submitted

The annotator (the annotation's author) owns ``save_draft``, ``submit``, ``skip``, ``update`` and
``resubmit``; a reviewer (someone who holds ``project:review``) owns ``accept``, ``reject`` and
``fix``, and never on their own work. Accepted work is final: nobody changes it through the workflow.

:func:`transition` answers the new status or raises :class:`IllegalTransition` (the action does not
apply to the status: 409) or :class:`NotAllowed` (this person may not take it: 403), each with a
message that says what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from workspace.tenancy.errors import Conflict, Forbidden

__all__ = ["IllegalTransition", "NotAllowed", "Move", "transition", "annotator_action", "ACTIONS",
           "ANNOTATOR_ACTIONS", "REVIEWER_ACTIONS", "TRANSITIONS", "REVISION_ACTIONS",
           "NEW", "DRAFT", "SUBMITTED", "SKIPPED", "ACCEPTED", "REJECTED", "STATUSES"]

NEW = None  # no annotation yet
DRAFT, SUBMITTED, SKIPPED, ACCEPTED, REJECTED = "draft", "submitted", "skipped", "accepted", "rejected"
STATUSES = (DRAFT, SUBMITTED, SKIPPED, ACCEPTED, REJECTED)

ANNOTATOR_ACTIONS = frozenset({"save_draft", "submit", "skip", "update", "resubmit"})
REVIEWER_ACTIONS = frozenset({"accept", "reject", "fix"})
ACTIONS = ANNOTATOR_ACTIONS | REVIEWER_ACTIONS

# (status before, action) -> status after. Everything not listed is illegal.
TRANSITIONS: dict[tuple[str | None, str], str] = {
    (NEW, "save_draft"): DRAFT,
    (DRAFT, "save_draft"): DRAFT,
    (NEW, "submit"): SUBMITTED,
    (DRAFT, "submit"): SUBMITTED,
    (SKIPPED, "submit"): SUBMITTED,
    (NEW, "skip"): SKIPPED,
    (DRAFT, "skip"): SKIPPED,
    (SKIPPED, "skip"): SKIPPED,
    (SUBMITTED, "update"): SUBMITTED,
    (REJECTED, "resubmit"): SUBMITTED,
    (SUBMITTED, "accept"): ACCEPTED,
    (SUBMITTED, "reject"): REJECTED,
    (SUBMITTED, "fix"): ACCEPTED,
}

# The action recorded in an annotation's revision history for each lifecycle action.
REVISION_ACTIONS = {"submit": "submitted", "skip": "skipped", "update": "updated", "resubmit": "resubmitted",
                    "accept": "accepted", "reject": "rejected", "fix": "fixed", "save_draft": "draft"}

_WHY = {
    ACCEPTED: "it was accepted by a reviewer and is final",
    REJECTED: "it was rejected: its annotator fixes and resubmits it first",
    SKIPPED: "it was skipped, so there is nothing to review",
    DRAFT: "it is still a draft: its annotator has not submitted it",
    SUBMITTED: "it is submitted and waiting for review",
}


class IllegalTransition(Conflict):
    """The action does not apply to the annotation's current status."""


class NotAllowed(Forbidden):
    """The action applies, but not by this person."""


@dataclass(frozen=True)
class Move:
    """One step of the lifecycle: ``before`` --``action``--> ``after``, and what the history calls it."""

    before: str | None
    action: str
    after: str

    @property
    def revision_action(self) -> str:
        return REVISION_ACTIONS[self.action]


def _state_name(status: str | None) -> str:
    return "new" if status is None else status


def transition(status: str | None, action: str, *, actor_id: int | None, author_id: int | None,
               may_review: bool = False) -> Move:
    """The move ``action`` makes from ``status`` when ``actor_id`` takes it on work by ``author_id``.

    ``may_review``: the actor holds the review permission in the project. Raises ValueError for an
    unknown action (a programming error), :class:`NotAllowed` when the actor may not take it and
    :class:`IllegalTransition` when the status does not allow it.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown lifecycle action {action!r}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown annotation status {status!r}")
    own = actor_id is not None and actor_id == author_id
    if action in ANNOTATOR_ACTIONS and status is not None and not own:
        raise NotAllowed("Only the annotator who made this annotation can change it that way.")
    if action in REVIEWER_ACTIONS:
        if not may_review:
            raise NotAllowed("Reviewing needs the permission to review annotations in this project.")
        if own:
            raise NotAllowed("You cannot review your own work: another reviewer has to.")
    after = TRANSITIONS.get((status, action))
    if after is None:
        raise IllegalTransition(_illegal_message(status, action))
    return Move(status, action, after)


def _illegal_message(status: str | None, action: str) -> str:
    verb = {"accept": "accepted", "reject": "rejected", "fix": "fixed and accepted", "submit": "submitted",
            "resubmit": "resubmitted", "update": "updated", "skip": "skipped", "save_draft": "saved as a draft"}[action]
    if status is None:
        return f"There is no annotation to be {verb} yet."
    if action == "update" and status == REJECTED:
        return "This annotation was rejected: resubmit it (it goes back to review)."
    if action == "resubmit" and status == SUBMITTED:
        return "This annotation is already submitted: update it instead."
    if action in ("skip", "save_draft") and status in (SUBMITTED, ACCEPTED, REJECTED):
        return f"This annotation cannot be {verb}: {_WHY[status]}."
    return f"This annotation cannot be {verb} now: {_WHY[status]}."


def annotator_action(status: str | None) -> str:
    """What the annotator's "submit" means for their annotation in ``status``: a first ``submit``, an
    ``update`` of submitted work, a ``resubmit`` of rejected work (accepted work: ``update``, which
    :func:`transition` refuses)."""
    if status == SUBMITTED or status == ACCEPTED:
        return "update"
    if status == REJECTED:
        return "resubmit"
    return "submit"
