"""Label Studio's object shapes (projects, tasks, annotations, predictions, users), from our models.

Pure functions: no database, no HTTP. Field names, defaults and types follow what Label Studio 1.23
returns (``shared/LS_API.md`` §5); fields Workspace has no equivalent for carry Label Studio's
default (``null``, ``0``, ``[]``) so that clients reading them keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Required, TypedDict, cast

from workspace.lib.timeutil import as_utc
from workspace.workflow.label_config import LabelConfig, LabelConfigError, parse_label_config
from workspace.workflow.models import COUNTED_STATUSES, SKIPPED, Annotation, Prediction, Project, Task

__all__ = ["iso", "user_brief", "project_json", "task_json", "annotation_json", "prediction_json",
           "parsed_label_config", "ProjectCounters", "UserInfo", "UserBrief", "ProjectOut", "ProjectPage",
           "AnnotationOut", "PredictionOut", "TaskOut", "TaskPage", "ImportOut"]

UserInfo = Mapping[str, Any]  # {"id", "email", "name"}


# --- response shapes (for the OpenAPI document; the values are plain dicts) --------------------


class UserBrief(TypedDict):
    id: int
    first_name: str
    last_name: str
    email: str
    avatar: str | None
    initials: str


class ProjectOut(TypedDict):
    id: int
    title: str
    description: str
    label_config: str
    expert_instruction: str
    show_instruction: bool
    show_skip_button: bool
    enable_empty_annotation: bool
    show_annotation_history: bool
    organization: int
    color: str
    maximum_annotations: int
    is_published: bool
    model_version: str
    is_draft: bool
    created_by: UserBrief | None
    created_at: str | None
    min_annotations_to_start_training: int
    start_training_on_annotation_update: bool
    show_collab_predictions: bool
    num_tasks_with_annotations: int | None
    task_number: int | None
    useful_annotation_number: int | None
    ground_truth_number: int | None
    skipped_annotations_number: int | None
    total_annotations_number: int | None
    total_predictions_number: int | None
    sampling: str
    show_ground_truth_first: bool
    annotator_evaluation_enabled: bool
    show_overlap_first: bool
    overlap_cohort_percentage: int
    task_data_login: str | None
    task_data_password: str | None
    control_weights: dict[str, Any]
    parsed_label_config: dict[str, Any]
    evaluate_predictions_automatically: bool
    config_has_control_tags: bool
    skip_queue: str
    reveal_preannotations_interactively: bool
    pinned_at: str | None
    finished_task_number: int | None
    queue_total: int | None
    queue_done: int | None
    config_suitable_for_bulk_annotation: bool
    workspace: int | None
    state: str | None


class ProjectPage(TypedDict):
    count: int
    next: str | None
    previous: str | None
    results: list[ProjectOut]


class AnnotationOut(TypedDict):
    id: int
    result: list[dict[str, Any]]
    task: int
    project: int
    completed_by: int | UserBrief | None  # the user id; expanded inside task objects
    updated_by: int | None
    was_cancelled: bool
    ground_truth: bool
    lead_time: float | None
    created_at: str | None
    updated_at: str | None
    draft_created_at: str | None
    created_username: str
    created_ago: str
    import_id: int | None
    last_action: str | None
    bulk_created: bool
    parent_prediction: int | None
    parent_annotation: int | None
    last_created_by: int | None
    result_count: int
    status: str


class PredictionOut(TypedDict):
    id: int
    result: list[dict[str, Any]]
    model_version: str
    score: float | None
    task: int
    project: int
    created_at: str | None
    updated_at: str | None
    created_ago: str
    cluster: int | None
    neighbors: list[Any] | None
    mislabeling: float
    model: int | None
    model_run: int | None


class TaskOut(TypedDict, total=False):
    id: Required[int]
    data: Required[dict[str, Any]]
    meta: dict[str, Any]
    project: Required[int]
    created_at: str | None
    updated_at: str | None
    is_labeled: bool
    overlap: int
    inner_id: int | None
    total_annotations: int
    cancelled_annotations: int
    total_predictions: int
    file_upload: int | None
    storage_filename: str | None
    comment_count: int
    unresolved_comment_count: int
    last_comment_updated_at: str | None
    updated_by: list[Any]
    completed_at: str | None
    avg_lead_time: float | None
    draft_exists: bool
    comment_authors: list[Any]
    drafts: list[Any]
    annotations: list[AnnotationOut]  # with fields=all
    annotators: list[int]
    annotations_results: str
    predictions: list[PredictionOut]  # with fields=all
    predictions_score: float | None
    predictions_results: str


class TaskPage(TypedDict):
    tasks: list[TaskOut]
    total: int
    total_annotations: int
    total_predictions: int


class ImportOut(TypedDict, total=False):
    task_count: Required[int]
    annotation_count: int
    prediction_count: int
    predictions_count: int
    duration: float
    file_upload_ids: list[int]
    could_be_tasks_list: bool
    found_formats: list[str]
    data_columns: list[str]
    task_ids: list[int]  # with return_task_ids=true, in import order


def iso(value: datetime | None) -> str | None:
    """Label Studio's timestamps: UTC, microseconds, ``Z``."""
    if value is None:
        return None
    if value.utcoffset():  # a page of tasks formats hundreds of these, nearly always already in UTC
        value = as_utc(value)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _names(name: str) -> tuple[str, str]:
    first, _, last = (name or "").strip().partition(" ")
    return first, last


def user_brief(user: UserInfo | None, user_id: int | None) -> UserBrief | None:
    """``completed_by``/``created_by`` expanded: ``{id, first_name, last_name, email, avatar, initials}``."""
    if user_id is None:
        return None
    email = str((user or {}).get("email") or "")
    first, last = _names(str((user or {}).get("name") or ""))
    initials = ((first[:1] + last[:1]) or email[:2]).lower()
    return UserBrief(id=user_id, first_name=first, last_name=last, email=email, avatar=None, initials=initials)


def parsed_label_config(config: LabelConfig) -> dict[str, Any]:
    """Label Studio's ``parsed_label_config``: per control, its type, targets, inputs and labels."""
    objects = {o.name: o for o in config.objects}
    out: dict[str, Any] = {}
    for control in config.controls:
        inputs = [{"type": objects[name].tag, "valueType": None, "value": objects[name].field or ""}
                  for name in control.to_names if name in objects]
        labels = [label.value for label in control.labels]
        out[control.name] = {"type": control.tag, "to_name": list(control.to_names), "inputs": inputs,
                             "labels": labels, "labels_attrs": {label.value: dict(label.attrs) for label in control.labels}}
    return out


class ProjectCounters:
    """A project's task, annotation and prediction counts (from one aggregate query)."""

    def __init__(self, tasks: int = 0, with_annotations: int = 0, annotations: int = 0, predictions: int = 0,
                 skipped: int = 0) -> None:
        self.tasks = tasks
        self.with_annotations = with_annotations
        self.annotations = annotations
        self.predictions = predictions
        self.skipped = skipped


def project_json(project: Project, *, counters: ProjectCounters | None, creator: UserInfo | None,
                 maximum_annotations: int = 1) -> ProjectOut:
    try:
        config = parse_label_config(project.label_config)
        parsed: dict[str, Any] = parsed_label_config(config)
    except LabelConfigError:
        parsed = {}
    c = counters
    return {  # type: ignore[return-value]
        "id": project.id,
        "title": project.title,
        "description": project.description,
        "label_config": project.label_config,
        "expert_instruction": project.instructions,
        "show_instruction": bool(project.instructions),
        "show_skip_button": True,
        "enable_empty_annotation": True,
        "show_annotation_history": False,
        "organization": project.tenant_id,
        "color": "#FFFFFF",
        "maximum_annotations": maximum_annotations,
        "is_published": False,
        "model_version": "",
        "is_draft": False,
        "created_by": user_brief(creator, project.created_by_id),
        "created_at": iso(project.created_at),
        "min_annotations_to_start_training": 0,
        "start_training_on_annotation_update": False,
        "show_collab_predictions": True,
        "num_tasks_with_annotations": c.with_annotations if c else None,
        "task_number": c.tasks if c else None,
        "useful_annotation_number": c.annotations if c else None,
        "ground_truth_number": 0 if c else None,
        "skipped_annotations_number": c.skipped if c else None,
        "total_annotations_number": c.annotations if c else None,
        "total_predictions_number": c.predictions if c else None,
        "sampling": "Sequential sampling",
        "show_ground_truth_first": False,
        "annotator_evaluation_enabled": False,
        "show_overlap_first": False,
        "overlap_cohort_percentage": 100,
        "task_data_login": None,
        "task_data_password": None,
        "control_weights": {},
        "parsed_label_config": parsed,
        "evaluate_predictions_automatically": False,
        "config_has_control_tags": bool(parsed),
        "skip_queue": "REQUEUE_FOR_OTHERS",
        "reveal_preannotations_interactively": False,
        "pinned_at": None,
        "finished_task_number": c.with_annotations if c else None,
        "queue_total": c.tasks if c else None,
        "queue_done": c.with_annotations if c else None,
        "config_suitable_for_bulk_annotation": False,
        "workspace": None,
        "state": None,
    }


def annotation_json(a: Annotation, *, expand_user: UserInfo | None = None, expand: bool = False) -> AnnotationOut:
    """One annotation; ``completed_by`` is the user id, or the expanded user (task objects) with ``expand``."""
    user = user_brief(expand_user, a.completed_by_id) if expand else a.completed_by_id
    email = str((expand_user or {}).get("email") or "")
    return {  # type: ignore[return-value]
        "id": a.id,
        "result": a.result,
        "task": a.task_id,
        "project": a.project_id,
        "completed_by": user,
        "updated_by": a.completed_by_id,
        "was_cancelled": a.status == SKIPPED,
        "ground_truth": bool(getattr(a, "ground_truth", False)),
        "lead_time": a.lead_time,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at or a.created_at),
        "draft_created_at": None,
        "created_username": f" {email}, {a.completed_by_id}" if a.completed_by_id is not None else "",
        "created_ago": "",
        "import_id": None,
        "last_action": None,
        "bulk_created": False,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
        "result_count": len(a.result) if isinstance(a.result, list) else 0,
        "status": a.status,  # Workspace's review state: submitted, accepted, rejected, skipped
    }


def prediction_json(p: Prediction) -> PredictionOut:
    return {  # type: ignore[return-value]
        "id": p.id,
        "result": p.result,
        "model_version": p.model_version,
        "score": p.score,
        "task": p.task_id,
        "project": p.project_id,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.created_at),
        "created_ago": "",
        "cluster": None,
        "neighbors": None,
        "mislabeling": 0.0,
        "model": None,
        "model_run": None,
    }


# The task fields Workspace has no counterpart for, the same in every task (a page builds hundreds).
_TASK_FIXED: dict[str, Any] = {
    "file_upload": None, "storage_filename": None, "comment_count": 0, "unresolved_comment_count": 0,
    "last_comment_updated_at": None, "completed_at": None, "avg_lead_time": None, "draft_exists": False,
}


def task_json(task: Task, *, inner_id: int | None, annotations: list[Annotation] | None,
              predictions: list[Prediction] | None, users: Mapping[int, UserInfo], maximum_annotations: int = 1,
              expand_users: bool = True) -> TaskOut:
    """A task; ``annotations``/``predictions`` None leaves those arrays out (a list without ``fields=all``)."""
    counted = [a for a in annotations or [] if a.status in COUNTED_STATUSES]
    total_annotations = task.annotation_count if annotations is None else len(counted)
    cancelled = sum(1 for a in annotations or [] if a.status == SKIPPED)
    created = iso(task.created_at)
    out: dict[str, Any] = {
        **_TASK_FIXED,
        "id": task.id,
        "data": task.data,
        "meta": {},
        "project": task.project_id,
        "created_at": created,
        "updated_at": created,
        "is_labeled": total_annotations >= max(1, maximum_annotations),
        "overlap": maximum_annotations,
        "inner_id": inner_id,
        "total_annotations": total_annotations,
        "cancelled_annotations": cancelled,
        "total_predictions": task.prediction_count if predictions is None else len(predictions),
        "updated_by": [],
        "comment_authors": [],
        "drafts": [],
    }
    if annotations is not None:
        out["annotations"] = [annotation_json(a, expand_user=users.get(a.completed_by_id or 0), expand=expand_users)
                              for a in annotations]
        out["annotators"] = sorted({a.completed_by_id for a in annotations if a.completed_by_id is not None})
        times = [a.lead_time for a in counted if a.lead_time is not None]
        out["avg_lead_time"] = sum(times) / len(times) if times else None
        out["annotations_results"] = ""
    if predictions is not None:
        out["predictions"] = [prediction_json(p) for p in predictions]
        scores = [p.score for p in predictions if p.score is not None]
        out["predictions_score"] = sum(scores) / len(scores) if scores else None
        out["predictions_results"] = ""
    return cast(TaskOut, out)
