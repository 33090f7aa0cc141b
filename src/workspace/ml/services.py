"""ML backends of a project: configure them, train the built-in classifier, and run a backend over
tasks as a ``predict`` job that stores predictions (model version and score) shown as suggestions.

Jobs (kinds ``predict`` and ``ml_train``, registered in ``workspace.jobs.services.JOB_KINDS``) run in
one transaction: a prediction that does not fit the label config, a backend that is down, slow, too
big or answers nonsense, or a cancel, rolls the whole run back — no prediction of a failed run is
kept. A retried run replaces the predictions of the same model version for its tasks (idempotent).

The classifier retrains itself: when a commit adds or changes submitted/accepted annotations of a
project whose classifier has ``retrain_every = N``, and N new labeled annotations arrived since its
last training, a training job is created in that same transaction (sent after commit).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, event, func, insert, select, update
from sqlalchemy.orm import Session

from workspace.jobs.models import ACTIVE, FAILED, SUCCEEDED, Job
from workspace.jobs.services import create_job
from workspace.lib.timeutil import utcnow
from workspace.ml import tagger
from workspace.ml.models import CLASSIFIER, ERROR, KINDS, READY, REMOTE, TAGGER, UNTRAINED, MLBackend
from workspace.ml.remote import DEFAULT_TIMEOUT, MAX_TIMEOUT, RemoteBackend
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid, NotFound, ServiceError
from workspace.tenancy.repositories import fetch
from workspace.tenancy.scoping import current_tenant_id, stamp_rows
from workspace.workflow.annotations import ResultInvalid, task_text, validate_result
from workspace.workflow.datamanager import FILTER_FIELDS, conditions, parse_filters, selected_ids
from workspace.workflow.label_config import ControlTag, LabelConfig, ObjectTag, parse_label_config
from workspace.workflow.models import ACCEPTED, LABELED_PROJECTS, SUBMITTED, Annotation, Prediction, Project, Task
from workspace.workflow.services import get_project

if TYPE_CHECKING:
    from workspace.jobs.runner import JobContext
    from workspace.runtime import Runtime

__all__ = ["list_backends", "get_backend", "create_backend", "update_backend", "delete_backend", "queue_train",
           "queue_predict", "run_train", "run_predict", "classifier_target", "tagger_target", "labeled_count",
           "TRAINING_STATUSES", "SCOPES", "backend_jobs", "after_job", "retrain_due"]

log = logging.getLogger(__name__)

# Annotations the classifier learns from: submitted work and reviewed, accepted work (not rejected).
TRAINING_STATUSES = (SUBMITTED, ACCEPTED)
TEXT_TAGS = frozenset({"Text", "HyperText"})
SCOPES = {"all": "All tasks", "filter": "Tasks matching the data manager filter", "selected": "Selected tasks"}
BATCH = {CLASSIFIER: 500, TAGGER: 500, REMOTE: 50}
MAX_TRAINING_EXAMPLES = 200_000
MAX_SELECTED = 10_000
_PENDING_RETRAIN = LABELED_PROJECTS


# --------------------------------------------------------------------------------------------------
# Where a built-in model reads and writes in the label config
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    control: ControlTag
    obj: ObjectTag


def _target(config: LabelConfig, control_tag: str) -> Target | None:
    objects = {o.name: o for o in config.objects}
    for control in config.controls:
        if control.tag != control_tag or control.dynamic_field:
            continue
        for name in control.to_names:
            obj = objects.get(name)
            if obj is not None and obj.tag in TEXT_TAGS and obj.field:
                return Target(control, obj)
    return None


def classifier_target(config: LabelConfig) -> Target:
    found = _target(config, "Choices")
    if found is None:
        raise Invalid("The built-in classifier needs a <Choices> control over a <Text> object in the label config; "
                      "this project has none.", field="kind")
    return found


def tagger_target(config: LabelConfig) -> Target:
    found = _target(config, "Labels")
    if found is None:
        raise Invalid("The built-in tagger needs a <Labels> control over a <Text> object in the label config; "
                      "this project has none.", field="kind")
    return found


def _config(project: Project) -> LabelConfig:
    return parse_label_config(project.label_config)


# --------------------------------------------------------------------------------------------------
# Configuring backends
# --------------------------------------------------------------------------------------------------


def list_backends(session: Session, project_id: int) -> list[MLBackend]:
    return list(session.scalars(select(MLBackend).where(MLBackend.project_id == project_id).order_by(MLBackend.id)))


def get_backend(session: Session, project_id: int, backend_id: int) -> MLBackend:
    """A backend of the bound tenant AND of this project, or NotFound (same answer as a missing one)."""
    backend = fetch(session, MLBackend, backend_id, what="ML backend")
    if backend.project_id != project_id:
        raise NotFound("ML backend not found")
    return backend


def _name(raw: str, kind: str) -> str:
    name = (raw or "").strip() or KINDS[kind]
    if len(name) > 120:
        raise Invalid("The name is too long (120 characters at most).", field="name")
    return name


def _retrain_every(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise Invalid("Retrain every: enter a whole number of new annotations (1 or more), or leave it empty to "
                      "train only on demand.", field="retrain_every")
    return int(raw)


def _remote_settings(form: dict[str, str]) -> dict[str, Any]:
    url = (form.get("url") or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("Enter the backend's full http:// or https:// URL (for example https://ml.example.com).",
                      field="url")
    if parts.username or parts.password:
        raise Invalid("Leave the user name and password out of the URL.", field="url")
    if len(url) > 2000:
        raise Invalid("The URL is too long (2,000 characters at most).", field="url")
    raw = (form.get("timeout") or "").strip()
    try:
        timeout = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        timeout = -1.0
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise Invalid(f"Timeout: enter a number of seconds from 1 to {MAX_TIMEOUT:g}.", field="timeout")
    return {"url": url.rstrip("/"), "timeout": timeout}


def _settings_for(kind: str, form: dict[str, str], config: LabelConfig) -> dict[str, Any]:
    if kind == TAGGER:
        target = tagger_target(config)
        terms, patterns = form.get("terms") or "", form.get("patterns") or ""
        rules = tagger.parse_rules(terms, patterns, target.control.label_values)
        if rules.empty:
            raise Invalid("Enter at least one term (or pattern) and its label, one per line, e.g. \u201cParis => "
                          "Location\u201d.", field="terms")
        return {"terms": terms.strip(), "patterns": patterns.strip()}
    if kind == CLASSIFIER:
        classifier_target(config)
        return {}
    return _remote_settings(form)


def _next_version(current: str, prefix: str) -> str:
    match = re.fullmatch(rf"{prefix}-(\d+)", current or "")
    return f"{prefix}-{int(match.group(1)) + 1 if match else 1}"


def create_backend(session: Session, ctx: TenantContext, project_id: int, form: dict[str, str]) -> MLBackend:
    project = get_project(session, project_id)
    kind = (form.get("kind") or "").strip()
    if kind not in KINDS:
        raise Invalid("Choose a kind of backend: " + ", ".join(KINDS.values()) + ".", field="kind")
    settings = _settings_for(kind, form, _config(project))
    backend = MLBackend(project_id=project.id, kind=kind, name=_name(form.get("name", ""), kind), settings=settings,
                        retrain_every=_retrain_every(form.get("retrain_every")) if kind == CLASSIFIER else None,
                        status=UNTRAINED if kind == CLASSIFIER else READY,
                        model_version="tagger-1" if kind == TAGGER else "", created_by_id=ctx.user_id)
    session.add(backend)
    session.flush()
    return backend


def update_backend(session: Session, ctx: TenantContext, project_id: int, backend_id: int,
                   form: dict[str, str]) -> MLBackend:
    project = get_project(session, project_id)
    backend = get_backend(session, project.id, backend_id)
    settings = _settings_for(backend.kind, form, _config(project))
    backend.name = _name(form.get("name", ""), backend.kind)
    if backend.kind == CLASSIFIER:
        backend.retrain_every = _retrain_every(form.get("retrain_every"))
    if settings != (backend.settings or {}):
        backend.settings = settings
        if backend.kind == TAGGER:  # other rules: another model, whose predictions don't replace the old ones
            backend.model_version = _next_version(backend.model_version, "tagger")
    backend.updated_at = utcnow()
    session.flush()
    return backend


def delete_backend(session: Session, ctx: TenantContext, project_id: int, backend_id: int) -> None:
    """Delete the backend; its predictions stay (they are the project's data, like imported ones)."""
    backend = get_backend(session, project_id, backend_id)
    active = [j for j in backend_jobs(session, backend) if j.status in ACTIVE]
    if active:
        raise ServiceError(f"Job #{active[0].id} of this backend is still {active[0].status}; cancel it or wait for "
                           "it to finish before deleting the backend.")
    session.delete(backend)
    session.flush()


def backend_jobs(session: Session, backend: MLBackend, limit: int = 20) -> list[Job]:
    jobs = session.scalars(select(Job).where(Job.project_id == backend.project_id, Job.kind.in_(("predict", "ml_train")))
                           .order_by(Job.id.desc()).limit(200))
    return [j for j in jobs if (j.params or {}).get("backend_id") == backend.id][:limit]


# --------------------------------------------------------------------------------------------------
# Queueing jobs
# --------------------------------------------------------------------------------------------------


def queue_train(session: Session, ctx: TenantContext, project_id: int, backend_id: int) -> Job:
    backend = get_backend(session, project_id, backend_id)
    if backend.kind != CLASSIFIER:
        raise Invalid("Only the built-in classifier is trained here; other backends train themselves.", field="kind")
    return create_job(session, ctx, "ml_train", title=f"Train {backend.name}", project_id=project_id,
                      params={"backend_id": backend.id})


def queue_predict(session: Session, ctx: TenantContext, project_id: int, backend_id: int, *, scope: str = "all",
                  filters: dict[str, str] | None = None, task_ids: Sequence[str] = ()) -> Job:
    project = get_project(session, project_id)
    backend = get_backend(session, project.id, backend_id)
    if scope not in SCOPES:
        raise Invalid("Choose which tasks to predict: all, the data manager filter, or selected tasks.", field="scope")
    if backend.kind == CLASSIFIER and not backend.model_signature:
        raise Invalid(f"{backend.name} has not been trained yet: train it first (it learns from submitted and "
                      "accepted annotations).", field="backend")
    params: dict[str, Any] = {"backend_id": backend.id, "scope": scope}
    what = "all tasks"
    if scope == "filter":
        parsed, errors = parse_filters({k: (filters or {}).get(k, "") for k in FILTER_FIELDS})
        if errors:
            field, message = next(iter(errors.items()))
            raise Invalid(f"The task filter is not valid ({field}): {message}", field="scope")
        params["filters"] = parsed.query(with_sort=False)
        what = "filtered tasks"
    elif scope == "selected":
        if len(task_ids) > MAX_SELECTED:
            raise Invalid(f"Select at most {MAX_SELECTED:,} tasks, or run over a filter.", field="scope")
        ids = selected_ids(session, project.id, task_ids)
        if not ids:
            raise Invalid("Select at least one task in the data manager first.", field="scope")
        params["task_ids"] = ids
        what = f"{len(ids)} selected task{'s' if len(ids) != 1 else ''}"
    return create_job(session, ctx, "predict", title=f"Predict with {backend.name} ({what})", project_id=project.id,
                      params=params)


# --------------------------------------------------------------------------------------------------
# Training the built-in classifier
# --------------------------------------------------------------------------------------------------


def labeled_count(session: Session, project_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Annotation).where(
        Annotation.project_id == project_id, Annotation.status.in_(TRAINING_STATUSES))) or 0


def _choice_of(result: Any, control: ControlTag) -> str | None:
    if not isinstance(result, list):
        return None
    for region in result:
        if isinstance(region, dict) and region.get("from_name") == control.name and region.get("type") == "choices":
            choices = (region.get("value") or {}).get("choices") if isinstance(region.get("value"), dict) else None
            if isinstance(choices, list) and choices and isinstance(choices[0], str):
                return choices[0]
    return None


def training_examples(session: Session, project_id: int, target: Target) -> tuple[list[str], list[str]]:
    """(texts, labels) from the project's submitted and accepted annotations (the newest first, capped)."""
    allowed = set(target.control.label_values)
    texts: list[str] = []
    labels: list[str] = []
    rows = session.execute(
        select(Annotation.result, Task.data).join(Task, Task.id == Annotation.task_id)
        .where(Annotation.project_id == project_id, Annotation.status.in_(TRAINING_STATUSES))
        .order_by(Annotation.id.desc()).limit(MAX_TRAINING_EXAMPLES)
        .execution_options(yield_per=1000))
    for result, data in rows:
        label = _choice_of(result, target.control)
        text = task_text(target.obj, data) if isinstance(data, dict) else None
        if label is None or label not in allowed or not text:
            continue
        texts.append(text)
        labels.append(label)
    return texts, labels


def run_train(session: Session, job: JobContext) -> tuple[dict[str, Any], str]:
    project = get_project(session, int(job.project_id or 0))
    backend = get_backend(session, project.id, int(job.params["backend_id"]))
    target = classifier_target(_config(project))
    job.progress(0, None, "Reading labeled tasks")
    count = labeled_count(session, project.id)
    texts, labels = training_examples(session, project.id, target)
    job.progress(0, None, f"Training on {len(texts)} labeled texts")
    from workspace.ml import classifier  # scikit-learn: loaded by the jobs that use it, not by every process

    model = classifier.train(texts, labels)
    blob, signature = classifier.dumps(model, job.runtime.settings.secret_key)
    backend.model_blob, backend.model_signature = blob, signature
    backend.model_version = _next_version(backend.model_version, "clf")
    backend.trained_on, backend.status, backend.last_error = count, READY, ""
    backend.updated_at = utcnow()
    session.flush()
    spread = Counter(labels)
    summary = ", ".join(f"{k} {v}" for k, v in spread.most_common())
    return ({"model_version": backend.model_version, "examples": len(texts), "classes": dict(spread)},
            f"Trained {backend.model_version} on {len(texts)} labeled texts ({summary}).")


# --------------------------------------------------------------------------------------------------
# Predicting
# --------------------------------------------------------------------------------------------------

Predicted = tuple[int, list[dict[str, Any]], float | None, str]  # task id, result, score, model version
Predictor = Callable[[list[Task]], list[Predicted]]


def after_job(runtime: Runtime, job: Job) -> None:
    """Once a predict or training job has finished (its own transaction is over, rolled back if it
    failed): show the outcome on the backend — the failure's message, or nothing after a success."""
    backend_id = (job.params or {}).get("backend_id")
    if not isinstance(backend_id, int) or job.status not in (SUCCEEDED, FAILED):
        return
    with runtime.unit_of_work(job.tenant_id) as db:
        backend = db.scalars(select(MLBackend).where(MLBackend.id == backend_id)).first()
        if backend is None:
            return
        if job.status == FAILED:
            backend.status, backend.last_error = ERROR, f"Job #{job.id} failed: {job.message}"[:2000]
        elif backend.last_error or backend.status == ERROR:
            backend.status = READY if backend.model_signature or backend.kind != CLASSIFIER else UNTRAINED
            backend.last_error = ""


def _without_required(config: LabelConfig) -> LabelConfig:
    """The config with no control required: a prediction suggests some regions, the annotator adds the rest."""
    controls = tuple(replace(c, options={k: v for k, v in c.options.items() if k != "required"})
                     for c in config.controls)
    return replace(config, controls=controls)


def _classifier_predictor(backend: MLBackend, config: LabelConfig, job: JobContext) -> Predictor:
    target = classifier_target(config)
    from workspace.ml import classifier  # scikit-learn: loaded by the jobs that use it, not by every process

    model = classifier.loads(backend.model_blob, backend.model_signature, job.runtime.settings.secret_key)
    version = backend.model_version

    def run(tasks: list[Task]) -> list[Predicted]:
        texts = [(t.id, task_text(target.obj, t.data) if isinstance(t.data, dict) else None) for t in tasks]
        usable = [(tid, text) for tid, text in texts if text]
        out: list[Predicted] = []
        for (tid, _text), (label, probability) in zip(usable, classifier.predict(model, [t for _i, t in usable]),
                                                       strict=True):
            score = round(probability, 6)
            out.append((tid, [{"id": "clf-0", "from_name": target.control.name, "to_name": target.obj.name,
                               "type": "choices", "value": {"choices": [label]}, "score": score}], score, version))
        return out

    return run


def _tagger_predictor(backend: MLBackend, config: LabelConfig, job: JobContext) -> Predictor:
    target = tagger_target(config)
    settings = backend.settings or {}
    rules = tagger.parse_rules(settings.get("terms", ""), settings.get("patterns", ""), target.control.label_values)
    version = backend.model_version or "tagger-1"

    def run(tasks: list[Task]) -> list[Predicted]:
        out: list[Predicted] = []
        for t in tasks:
            text = task_text(target.obj, t.data) if isinstance(t.data, dict) else None
            if not text:
                continue
            regions = tagger.tag(rules, text, from_name=target.control.name, to_name=target.obj.name)
            if regions:
                out.append((t.id, regions, 1.0, version))
        return out

    return run


def _remote_predictor(backend: MLBackend, project: Project, job: JobContext) -> Predictor:
    settings = backend.settings or {}
    client = RemoteBackend(str(settings.get("url", "")), timeout=float(settings.get("timeout") or DEFAULT_TIMEOUT),
                           policy=job.runtime.outbound_policy)  # type: ignore[arg-type]
    label_config = project.label_config
    ls_project = f"{project.id}.{int(project.created_at.timestamp())}"
    job.progress(0, None, f"Connecting to {client.url}")
    client.health()
    version = client.setup(ls_project, label_config, backend.model_version) or backend.model_version or "remote"

    def run(tasks: list[Task]) -> list[Predicted]:
        payload = [{"id": t.id, "data": t.data} for t in tasks]
        answers = client.predict(payload, label_config, ls_project)
        out: list[Predicted] = []
        for t, answer in zip(tasks, answers, strict=True):
            result = answer.result
            if isinstance(result, list) and not result:
                continue  # nothing to suggest for this task
            if isinstance(result, list):
                result = [({**r, "id": f"ml-{i}"} if isinstance(r, dict) and not r.get("id") else r)
                          for i, r in enumerate(result)]
            out.append((t.id, result, answer.score, answer.model_version or version))
        return out

    return run


def _tasks(session: Session, project_id: int, params: dict[str, Any]) -> tuple[list[Any], int]:
    scope = params.get("scope", "all")
    where: list[Any]
    if scope == "selected":
        where = [Task.project_id == project_id, Task.id.in_([int(i) for i in params.get("task_ids") or []])]
    else:
        parsed, _errors = parse_filters({k: (params.get("filters") or {}).get(k, "") for k in FILTER_FIELDS}
                                        if scope == "filter" else {})
        where = conditions(session, project_id, parsed)
    total = session.scalar(select(func.count()).select_from(Task).where(*where)) or 0
    return where, total


def _batches(session: Session, where: list[Any], size: int) -> Iterator[list[Task]]:
    last_id = 0
    while True:
        tasks = list(session.scalars(select(Task).where(*where, Task.id > last_id).order_by(Task.id).limit(size)))
        if not tasks:
            return
        last_id = tasks[-1].id
        yield tasks


def _store(session: Session, project_id: int, task_ids: list[int], predicted: list[Predicted]) -> None:
    """Replace the batch's predictions of the same model versions, then refresh the tasks' counts."""
    versions = sorted({p[3] for p in predicted})
    if versions:
        session.execute(delete(Prediction).where(Prediction.task_id.in_([p[0] for p in predicted]),
                                                 Prediction.model_version.in_(versions))
                        .execution_options(synchronize_session=False))
        now = utcnow()
        rows = stamp_rows(session, [{"project_id": project_id, "task_id": tid, "result": result, "score": score,
                                     "model_version": version, "created_at": now}
                                    for tid, result, score, version in predicted])
        session.execute(insert(Prediction), rows)
    counts = (select(func.count()).select_from(Prediction).where(Prediction.task_id == Task.id)
              .correlate(Task).scalar_subquery())
    session.execute(update(Task).where(Task.id.in_(task_ids)).values(prediction_count=counts)
                    .execution_options(synchronize_session=False))


def run_predict(session: Session, job: JobContext) -> tuple[dict[str, Any], str]:
    project = get_project(session, int(job.project_id or 0))
    backend = get_backend(session, project.id, int(job.params["backend_id"]))
    config = _config(project)
    if backend.kind == CLASSIFIER:
        predictor = _classifier_predictor(backend, config, job)
    elif backend.kind == TAGGER:
        try:
            predictor = _tagger_predictor(backend, config, job)
        except Invalid as exc:
            raise ServiceError(f"The tagger's rules no longer fit the label config: {exc.message}") from None
    else:
        predictor = _remote_predictor(backend, project, job)
    checking = _without_required(config)
    where, total = _tasks(session, project.id, job.params)
    job.progress(0, total, f"Predicting {total} tasks")
    done = stored = 0
    versions: set[str] = set()
    for tasks in _batches(session, where, BATCH.get(backend.kind, 100)):
        predicted = predictor(tasks)
        data = {t.id: t.data if isinstance(t.data, dict) else {} for t in tasks}
        for tid, result, _score, _version in predicted:
            try:
                validate_result(checking, data[tid], result)
            except ResultInvalid as exc:
                raise ServiceError(f"{backend.name} returned a prediction for task {tid} that does not fit the label "
                                   f"config: {exc.message}. No predictions of this run were kept.") from None
        _store(session, project.id, [t.id for t in tasks], predicted)
        stored += len(predicted)
        versions.update(p[3] for p in predicted)
        done += len(tasks)
        job.progress(done, total, f"{done} of {total} tasks, {stored} predictions")
    backend.status, backend.last_error = READY, ""
    session.flush()
    version = ", ".join(sorted(versions)) or backend.model_version or "-"
    nothing = done - stored
    message = (f"Stored {stored} prediction{'s' if stored != 1 else ''} ({version}) for {done} task{'s' if done != 1 else ''}"
               + (f"; {nothing} had nothing to suggest" if nothing else "") + ".")
    return {"tasks": done, "predictions": stored, "model_versions": sorted(versions)}, message


# --------------------------------------------------------------------------------------------------
# Retraining every N new annotations
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Starter:
    """Who a retraining job runs as: the member who configured the classifier (it needs project:update)."""

    user_id: int | None


# Built once: every annotation submit asks (SQLAlchemy memoizes the cache key on the object).
_RETRAINING_BACKENDS = select(MLBackend).where(MLBackend.project_id.in_(bindparam("project_ids", expanding=True)),
                                               MLBackend.kind == CLASSIFIER, MLBackend.retrain_every.is_not(None))


def retrain_due(session: Session, project_ids: set[int]) -> list[Job]:
    """Create a training job for each classifier of these projects that has seen ``retrain_every`` new
    labeled annotations since its last training (and has no training queued or running)."""
    jobs: list[Job] = []
    backends = list(session.scalars(_RETRAINING_BACKENDS, {"project_ids": sorted(project_ids)}))
    for backend in backends:
        count = labeled_count(session, backend.project_id)
        recent = [j for j in backend_jobs(session, backend, limit=10) if j.kind == "ml_train"]
        if any(j.status in ACTIVE for j in recent):
            continue
        # Counted from the last training, or the last automatic attempt (one that failed, e.g. with a
        # single class so far, is tried again only after another N annotations, not on every one).
        since = max([backend.trained_on, *(int((j.params or {}).get("at_count") or 0) for j in recent)])
        if count - since < int(backend.retrain_every or 0) or backend.created_by_id is None:
            continue
        jobs.append(create_job(session, _Starter(backend.created_by_id), "ml_train",  # type: ignore[arg-type]
                               title=f"Retrain {backend.name} ({count - backend.trained_on} new annotations)",
                               project_id=backend.project_id,
                               params={"backend_id": backend.id, "auto": True, "at_count": count}))
    return jobs


@event.listens_for(Session, "after_flush")
def _note_labeled_work(session: Session, _ctx: Any) -> None:
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Annotation) and obj.status in TRAINING_STATUSES and obj.project_id:
            session.info.setdefault(_PENDING_RETRAIN, set()).add(obj.project_id)


@event.listens_for(Session, "before_commit", insert=True)  # before the audit chain appends the flushed events
def _queue_retraining(session: Session) -> None:
    projects = session.info.pop(_PENDING_RETRAIN, None)
    if not projects or current_tenant_id(session) is None:
        return
    # No savepoint here: releasing one fires after_commit, which would send the new job's message
    # before the transaction that holds it has committed. The check is two small queries.
    retrain_due(session, projects)
    session.info.pop(_PENDING_RETRAIN, None)


@event.listens_for(Session, "after_rollback")
def _forget_labeled_work(session: Session) -> None:
    session.info.pop(_PENDING_RETRAIN, None)
