"""Quality and progress: the project dashboard, the tenant overview, a task's agreement view and
ground-truth marks.

Who sees what: ``report:read`` (managers and above, auditors) sees every figure; anyone else who can
label the project (``project:annotate``) sees the same page restricted to their own numbers — their
throughput, median time, acceptance rate and accuracy — computed by queries filtered to their id, so
other people's figures are never read. A task's agreement view shows everyone's annotations side by
side: reviewers and above (``project:review``). Marking ground truth and recomputing agreement are
project settings (``project:update``).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from workspace.tenancy.errors import Forbidden
from workspace.web import charts
from workspace.web.blocking import in_thread
from workspace.web.forms import one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.workflow import dashboards as dash
from workspace.workflow import quality
from workspace.workflow import services as svc
from workspace.workflow.agreement import result_agreement
from workspace.workflow.annotations import get_task

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]

FULL, HALF = 1000, 520  # chart widths (SVG units) for a full-width and a half-width panel
_STATE_KEYS = ("accepted", "submitted", "rejected", "in_progress", "unlabeled")


def _label(emails: dict[int, str], uid: int) -> str:
    return emails.get(uid, f"member #{uid}")


@get("/t/{slug:str}/projects/{project_id:int}/dashboard", opt=requires("project:read", nav="projects"),
     name="project_dashboard")
@in_thread
def project_dashboard(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    db, ctx = _db(request), ctx_of(request)
    project = svc.get_project(db, project_id)
    full = ctx.has("report:read")
    if not full and not ctx.has("project:annotate"):
        raise Forbidden("You don't have permission to see this project's dashboard.")
    only = None if full else ctx.user_id
    axis, per_day = dash.throughput(db, project.id, user_id=only)
    overall_median, times = dash.lead_times(db, project.id, user_id=only)
    accept = dash.acceptance(db, project.id, user_id=only)
    accuracy = dash.gt_accuracy(db, project.id, user_id=only)
    people = set(per_day) | {p.user_id for p in (*times, *accept, *accuracy)}
    emails = dash.emails(db, people)
    if not full:
        emails = {uid: "You" for uid in emails}
    order = sorted(people, key=lambda u: _label(emails, u))

    context: dict[str, Any] = {"project": project, "full": full, "emails": emails,
                               "overall_median": overall_median, "seconds": charts.seconds, "percent": charts.percent}
    context["throughput_chart"] = charts.line(
        "throughput", f"Annotations per day, last {dash.THROUGHPUT_DAYS} days",
        axis, [(_label(emails, u), per_day[u]) for u in order if u in per_day], y_label="annotations",
        empty="Submitted annotations will be counted here day by day.", width=FULL)
    context["throughput_total"] = sum(sum(v) for v in per_day.values())
    context["time_chart"] = charts.hbar(
        "lead-time", "Median time per task", [(_label(emails, p.user_id), p.value, f"{p.count} tasks") for p in times],
        fmt=charts.seconds, axis_label="median time per task",
        empty="Time spent on each task is measured while labeling.", width=HALF)
    context["acceptance_chart"] = charts.hbar(
        "acceptance", "Acceptance rate", [(_label(emails, p.user_id), p.value,
                                           f"{p.extra['accepted']} of {p.count}") for p in accept],
        top=1.0, fmt=charts.percent, axis_label="share of review verdicts that accepted the work",
        empty="Reviewers' verdicts on submitted work show up here.", width=HALF)
    context["accuracy_chart"] = charts.hbar(
        "accuracy", "Accuracy against ground truth", [(_label(emails, p.user_id), p.value, f"{p.count} tasks")
                                                      for p in accuracy],
        top=1.0, fmt=charts.percent, axis_label="mean agreement with the ground-truth annotation",
        empty="Mark annotations as ground truth to measure each annotator against them.", width=HALF)
    context["accept_rows"], context["accuracy_rows"], context["time_rows"] = accept, accuracy, times
    if full:
        states = dash.progress(db, project)
        context["states"] = states
        context["task_total"] = sum(states.values())
        context["progress_chart"] = charts.stacked(
            "progress", "Tasks by state", [(k, dash.STATES[k], states[k]) for k in _STATE_KEYS],
            empty="Import tasks to start the project.", width=FULL)
        hist = dash.agreement_histogram(db, project.id)
        context["hist"] = hist
        context["agreement_chart"] = charts.histogram(
            "agreement", "Agreement per task", hist.bins, x_label="agreement between annotators (0 = none, 1 = full)",
            y_label="tasks", fmt=lambda v: f"{v:.1f}",
            empty="Tasks labeled by two or more annotators get an agreement score.", width=HALF)
        summaries = dash.choices_agreement(db, project)
        pair_people = {u for s in summaries for a, b, _n, _k in s.pairs for u in (a, b)}
        context["summaries"] = summaries
        context["pair_emails"] = dash.emails(db, pair_people)
        context["sample"] = dash.AGREEMENT_SAMPLE
    return page(request, "workflow/dashboard.html", **context)


@post("/t/{slug:str}/projects/{project_id:int}/agreement/refresh", opt=requires("project:update", nav="projects"),
      name="refresh_agreement")
@in_thread
def refresh_agreement(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Redirect:
    count = quality.refresh_project(_db(request), ctx_of(request), project_id)
    notice(request, f"Agreement recomputed for {count:,} {'task' if count == 1 else 'tasks'}.")
    return see_other(f"/t/{slug}/projects/{project_id}/dashboard")


@get("/t/{slug:str}/projects/{project_id:int}/tasks/{task_id:int}/agreement",
     opt=requires("project:review", nav="projects"), name="task_agreement")
@in_thread
def task_agreement_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                        task_id: FromPath[int]) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    task = get_task(db, project.id, task_id)
    annotations = quality.counted_annotations(db, [task.id])[task.id]
    emails = dash.emails(db, {a.completed_by_id for a in annotations if a.completed_by_id is not None})
    matrix = [[None if a is b else result_agreement(a.result, b.result) for b in annotations] for a in annotations]
    return page(request, "workflow/task_agreement.html", project=project, task=task, annotations=annotations,
                emails=emails, matrix=matrix, percent=charts.percent, summary=_summary)


def _summary(region: dict[str, Any]) -> str:
    """One line describing a region: its control, labels and where it is."""
    value = region.get("value") if isinstance(region.get("value"), dict) else {}
    labels = next((value[k] for k in ("choices", "labels", "rectanglelabels", "polygonlabels", "keypointlabels")
                   if isinstance(value.get(k), list)), None)
    what = ", ".join(str(v) for v in labels) if labels else ""
    if "start" in value and "end" in value:
        where = f'“{value.get("text", "")}” [{value["start"]}–{value["end"]}]'
    elif all(k in value for k in ("x", "y", "width", "height")):
        where = f'box at ({value["x"]:.1f}, {value["y"]:.1f}) {value["width"]:.1f}×{value["height"]:.1f}%'
    elif "text" in value:
        where = "“" + " / ".join(str(t) for t in value["text"]) + "”" if isinstance(value["text"], list) else ""
    elif "rating" in value:
        where = f'{value["rating"]} stars'
    elif "number" in value:
        where = str(value["number"])
    else:
        where = ""
    return " · ".join(p for p in (str(region.get("from_name", "")), what, where) if p)


@post("/t/{slug:str}/projects/{project_id:int}/annotations/{annotation_id:int}/ground-truth",
      opt=requires("project:update", nav="projects"), name="mark_ground_truth")
@in_thread
def mark_ground_truth(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                      annotation_id: FromPath[int], data: Form) -> Redirect:
    value = one(data, "value") != "0"
    annotation = quality.mark_ground_truth(_db(request), ctx_of(request), project_id, annotation_id, value)
    notice(request, f"Annotation {annotation.id} {'is now' if value else 'is no longer'} the task's ground truth.")
    return see_other(f"/t/{slug}/projects/{project_id}/tasks/{annotation.task_id}/agreement")


@get("/t/{slug:str}/dashboard", opt=requires("report:read", nav="dashboard"), name="tenant_dashboard")
@in_thread
def tenant_dashboard(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    db = _db(request)
    rows = dash.tenant_overview(db, svc.visible_projects(db, ctx_of(request)))
    rows.sort(key=lambda r: r.project.title.lower())
    progress_chart = charts.hbar(
        "projects-progress", "Labeled share per project", [(r.project.title, r.done_share if r.tasks else None,
                                                            f"{r.labeled:,} of {r.tasks:,}") for r in rows],
        top=1.0, fmt=charts.percent, axis_label="share of tasks with at least one annotation",
        empty="Create a project and import tasks to see its progress here.", width=HALF)
    quality_chart = charts.hbar(
        "projects-agreement", "Mean agreement per project", [(r.project.title, r.agreement,
                                                              f"{r.agreement_tasks:,} tasks") for r in rows],
        top=1.0, fmt=charts.percent, axis_label="mean agreement of tasks labeled by two or more annotators",
        empty="Projects with overlap get an agreement score per task.", width=HALF)
    totals = {"tasks": sum(r.tasks for r in rows), "labeled": sum(r.labeled for r in rows),
              "annotations": sum(r.annotations for r in rows), "accepted": sum(r.accepted for r in rows),
              "rejected": sum(r.rejected for r in rows)}
    return page(request, "workflow/tenant_dashboard.html", rows=rows, progress_chart=progress_chart,
                quality_chart=quality_chart, totals=totals, percent=charts.percent)


route_handlers = [project_dashboard, refresh_agreement, task_agreement_page, mark_ground_truth, tenant_dashboard]

__all__ = ["route_handlers"]
