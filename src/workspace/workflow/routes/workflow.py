"""Workflow configuration and assignment: the project's workflow settings page (and its JSON API), and
bulk assign / unassign from the data manager.

* ``GET/POST /t/{slug}/projects/{id}/settings/workflow`` (``project:update``): a form for every
  workflow setting; each invalid field gets its message beside it and nothing is saved.
* ``GET/PATCH /api/projects/{id}/workflow/`` (``project:read`` / ``project:update``): the same
  settings as JSON; a PATCH changes only the keys sent and answers 400 with ``{"detail", "errors"}``.
* ``POST /t/{slug}/projects/{id}/data/assign`` (``project:update``): like the bulk delete, two steps —
  the selection (checked rows, or every task matching the filter) first opens a dialog to choose
  members/teams, role and assign/unassign; its submit (``confirm=1``) applies it and writes one audit
  event with the counts. A selected id that is not a task of this project answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody
from litestar.response import Redirect, Template

from workspace.tenancy.errors import Invalid
from workspace.web.blocking import in_thread
from workspace.web.forms import many, one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, is_htmx, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.workflow import assignment as asg
from workspace.workflow import configure
from workspace.workflow import services as svc
from workspace.workflow.routes.datamanager import bulk_selection
from workspace.workflow.settings import DISTRIBUTIONS, MAX_OVERLAP, ORDERS, REVIEW_MODES, SKIP_POLICIES

assert set(DISTRIBUTIONS) == {"auto", "manual"} and set(ORDERS) == {"id", "random", "uncertainty"}
assert set(SKIP_POLICIES) == {"never", "requeue", "back"} and set(REVIEW_MODES) == {"all", "share", "none"}

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]

# How each choice reads on the settings page: (title, explanation); the keys are the settings' values.
_DISTRIBUTIONS = {"auto": ("Automatic queue", "“Label next” hands out tasks: those assigned to the annotator "
                                              "first, then unassigned ones"),
                  "manual": ("Manual", "annotators label only the tasks assigned to them")}
_ORDERS = {"id": ("Import order", "oldest task first"),
           "random": ("Random", "a shuffled order, different for each annotator and stable across reloads"),
           "uncertainty": ("Most uncertain first", "lowest prediction score first (active learning)")}
_SKIPS = {"never": ("Never again", "a skipped task is not shown to that annotator again"),
          "requeue": ("Requeue", "back in the annotator's queue right away"),
          "back": ("End of the queue", "served again after the annotator's other tasks")}
_REVIEWS = {"all": ("All", "every submitted annotation is reviewed"),
            "share": ("A random share", "the share set beside this is reviewed"),
            "none": ("None", "annotations are not reviewed")}


def _settings_page(request: Request[Any, Any, Any], project_id: int, *, status: int = 200,
                   errors: dict[str, str] | None = None, form: dict[str, Any] | None = None) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    current = configure.settings_of(project).to_json()
    values = {**current, **(form or {})}
    return page(request, "workflow/workflow_settings.html", status=status, project=project, values=values,
                errors=errors or {}, distributions=_DISTRIBUTIONS, skip_policies=_SKIPS,
                review_modes=_REVIEWS, orders=_ORDERS, max_overlap=MAX_OVERLAP,
                has_assignments=asg.has_assignments(db, project.id))


@get("/t/{slug:str}/projects/{project_id:int}/settings/workflow", opt=requires("project:update", nav="projects"),
     name="workflow_settings")
@in_thread
def get_workflow_settings(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return _settings_page(request, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/settings/workflow", opt=requires("project:update", nav="projects"),
      name="update_workflow_settings")
@in_thread
def update_workflow_settings(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                             data: Form) -> Template | Redirect:
    svc.get_project(_db(request), project_id)
    # Checkboxes send nothing when unticked: the form carries a hidden "0" before each one.
    form = {key: one(data, key) for key in configure.FIELDS if key in data}
    try:
        configure.update_workflow(_db(request), ctx_of(request), project_id, form)
    except configure.SettingsInvalid as exc:
        _db(request).rollback()
        return _settings_page(request, project_id, status=422, errors=exc.errors, form=form)
    notice(request, "Workflow settings saved.")
    return see_other(f"/t/{slug}/projects/{project_id}/settings/workflow")


# --- JSON API -------------------------------------------------------------------------------------


@get("/api/projects/{project_id:int}/workflow/", opt=requires("project:read"), name="api_workflow_settings")
@in_thread
def api_get_workflow(request: Request[Any, Any, Any], project_id: FromPath[int]) -> dict[str, Any]:
    return configure.settings_of(svc.get_project(_db(request), project_id)).to_json()


@patch("/api/projects/{project_id:int}/workflow/", opt=requires("project:update"), name="api_update_workflow_settings")
@in_thread
def api_update_workflow(request: Request[Any, Any, Any], project_id: FromPath[int],
                        data: JSONBody[dict[str, Any]]) -> Response[dict[str, Any]]:
    if not isinstance(data, dict):
        raise Invalid("Send a JSON object of settings, e.g. {\"overlap\": 2}.")
    try:
        new = configure.update_workflow(_db(request), ctx_of(request), project_id, data)
    except configure.SettingsInvalid as exc:
        _db(request).rollback()
        return Response({"detail": exc.message, "errors": exc.errors}, status_code=400)
    return Response(new.to_json(), status_code=200)


# --- bulk assignment from the data manager --------------------------------------------------------


@post("/t/{slug:str}/projects/{project_id:int}/data/assign", opt=requires("project:update", nav="projects"),
      name="data_manager_assign")
@in_thread
def assign_tasks(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                 data: Form) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    selection = bulk_selection(request, db, slug, project_id, data, "assign", "assigning")
    if isinstance(selection, Redirect):
        return selection
    form = {"users": many(data, "users"), "teams": many(data, "teams"), "role": one(data, "role") or "annotator",
            "action": one(data, "action") or "assign"}
    errors: dict[str, str] = {}
    if one(data, "confirm") == "1":
        try:
            if form["action"] not in ("assign", "unassign"):
                raise Invalid("Choose to assign or to unassign.", field="action")
            assignees = asg.resolve_assignees(db, project.id, form["users"], form["teams"])
            apply = asg.assign_tasks if form["action"] == "assign" else asg.unassign_tasks
            counts = apply(db, ctx_of(request), project.id, assignees, form["role"],
                           **selection.scope())
        except Invalid as exc:
            db.rollback()
            project = svc.get_project(db, project_id)
            errors = {exc.field or "assignees": exc.message}
        else:
            people = counts["assignees"]
            who = f"{people} {'person' if people == 1 else 'people'}"
            tasks = f"{counts['tasks']} {'task' if counts['tasks'] == 1 else 'tasks'}"
            role = asg.ROLES.get(form["role"], form["role"]).lower()
            if form["action"] == "assign":
                notice(request, f"Assigned {tasks} to {who} as {role} ({counts['added']} new assignments).")
            else:
                notice(request, f"Unassigned {who} as {role} from {tasks} ({counts['removed']} assignments removed).")
            return see_other(selection.back)
    members, teams = asg.assignee_choices(db)
    context = {**selection.context(project), "members": members, "teams": teams, "roles": asg.ROLES,
               "form": form, "errors": errors}
    if is_htmx(request):
        return fragment(request, "workflow/partials/_dm_assign.html", status=422 if errors else 200, **context)
    return page(request, "workflow/dm_assign.html", status=422 if errors else 200, **context)


route_handlers = [get_workflow_settings, update_workflow_settings, api_get_workflow, api_update_workflow, assign_tasks]
