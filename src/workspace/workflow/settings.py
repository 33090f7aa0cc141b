"""A project's workflow settings: how many people label each task, how tasks are handed out, what
happens to skipped and rejected work, and how much is reviewed (pure data and rules, no I/O).

Stored as JSON in ``Project.workflow``; a key that is missing takes its default, so projects created
before a setting existed keep working. :func:`parse_workflow` checks a submitted form or API body and
raises :class:`~workspace.tenancy.errors.Invalid` naming the field and the allowed values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from workspace.tenancy.errors import Invalid

__all__ = ["WorkflowSettings", "workflow_settings", "parse_workflow", "DISTRIBUTIONS", "SKIP_POLICIES",
           "REVIEW_MODES", "ORDERS", "MAX_OVERLAP"]

MAX_OVERLAP = 50
DISTRIBUTIONS = {"auto": "Automatic queue: “Label next” hands out tasks",
                 "manual": "Manual: annotators label only the tasks assigned to them"}
SKIP_POLICIES = {"never": "Never shown to that annotator again",
                 "requeue": "Back to the annotator's queue right away",
                 "back": "Back to the end of the annotator's queue"}
REVIEW_MODES = {"all": "Review every submitted annotation", "share": "Review a random share",
                "none": "No review"}
ORDERS = {"id": "In import order", "random": "Random",
          "uncertainty": "Most uncertain prediction first (active learning)"}


@dataclass(frozen=True)
class WorkflowSettings:
    overlap: int = 1  # annotations wanted per task (for the tasks that get overlap)
    overlap_share: int = 100  # percent of tasks that get ``overlap`` annotations; the rest get one
    distribution: str = "auto"
    reservation_minutes: int = 30  # how long a task handed out by "label next" stays reserved
    skipped: str = "never"
    blind: bool = True  # annotators never see each other's work on a task
    review: str = "all"
    review_share: int = 100  # percent reviewed when ``review == "share"``
    rejected_returns: bool = True  # rejected work goes back to its annotator's queue
    order: str = "id"
    annotator_cap: int | None = None  # most tasks one annotator may label in this project

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def wants(self, task_id: int) -> int:
        """How many annotations a task wants: ``overlap`` for the share of tasks that get overlap
        (chosen by a stable hash of the id, so the choice never changes), otherwise one."""
        if self.overlap <= 1 or self.overlap_share >= 100:
            return self.overlap
        return self.overlap if (task_id * 2654435761) % 100 < self.overlap_share else 1

    def reviewed(self, annotation_id: int) -> bool:
        """Whether an annotation goes to review (stable for a given id)."""
        if self.review == "none":
            return False
        if self.review == "all" or self.review_share >= 100:
            return True
        return (annotation_id * 2246822519) % 100 < self.review_share


_NAMES = {f.name for f in fields(WorkflowSettings)}


def workflow_settings(stored: dict[str, Any] | None) -> WorkflowSettings:
    """The settings a project's stored JSON means (unknown keys ignored, missing ones defaulted; a
    stored value that no longer validates falls back to its default rather than breaking the project)."""
    base = WorkflowSettings()
    if not stored:
        return base
    try:
        return parse_workflow({k: v for k, v in stored.items() if k in _NAMES}, base)
    except Invalid:
        good: dict[str, Any] = {}
        for key, value in stored.items():
            if key in _NAMES:
                try:
                    parse_workflow({key: value}, base)
                    good[key] = value
                except Invalid:
                    pass
        return parse_workflow(good, base)


def _int(data: dict[str, Any], key: str, low: int, high: int, label: str) -> int:
    value = data[key]
    if isinstance(value, bool):
        raise Invalid(f"{label} must be a whole number from {low} to {high}.", field=key)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise Invalid(f"{label} must be a whole number from {low} to {high}, not “{value}”.", field=key) from None
    if not low <= number <= high:
        raise Invalid(f"{label} must be from {low} to {high}; {number} is out of range.", field=key)
    return number


def _choice(data: dict[str, Any], key: str, allowed: dict[str, str], label: str) -> str:
    value = str(data[key]).strip()
    if value not in allowed:
        raise Invalid(f"{label} must be one of {', '.join(allowed)}; “{value}” is not.", field=key)
    return value


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "on", "yes"}


def parse_workflow(data: dict[str, Any], current: WorkflowSettings | None = None) -> WorkflowSettings:
    """Settings from a form or JSON body, on top of ``current``; only the keys present change.

    Checkbox fields (``blind``, ``rejected_returns``) are read as booleans; an empty ``annotator_cap``
    means no cap."""
    base = current or WorkflowSettings()
    changes: dict[str, Any] = {}
    if "overlap" in data:
        changes["overlap"] = _int(data, "overlap", 1, MAX_OVERLAP, "Annotations per task")
    if "overlap_share" in data:
        changes["overlap_share"] = _int(data, "overlap_share", 0, 100, "Share of tasks with overlap (%)")
    if "distribution" in data:
        changes["distribution"] = _choice(data, "distribution", DISTRIBUTIONS, "Distribution")
    if "reservation_minutes" in data:
        changes["reservation_minutes"] = _int(data, "reservation_minutes", 1, 24 * 60, "Reservation (minutes)")
    if "skipped" in data:
        changes["skipped"] = _choice(data, "skipped", SKIP_POLICIES, "Skipped tasks")
    if "blind" in data:
        changes["blind"] = _bool(data["blind"])
    if "review" in data:
        changes["review"] = _choice(data, "review", REVIEW_MODES, "Review")
    if "review_share" in data:
        changes["review_share"] = _int(data, "review_share", 0, 100, "Share reviewed (%)")
    if "rejected_returns" in data:
        changes["rejected_returns"] = _bool(data["rejected_returns"])
    if "order" in data:
        changes["order"] = _choice(data, "order", ORDERS, "Task order")
    if "annotator_cap" in data:
        raw = data["annotator_cap"]
        changes["annotator_cap"] = (None if raw is None or str(raw).strip() == ""
                                    else _int(data, "annotator_cap", 1, 10_000_000, "Tasks per annotator"))
    return replace(base, **changes)
