"""The data manager: a project's task table with filters, keyset paging and bulk deletion.

Who sees what (:func:`workspace.workflow.datamanager.own_tasks_of`): members holding ``project:review``
(in the tenant or on this project) see every task; everyone else who can read the project
(annotators, in the projects granted to them) sees only their own tasks.
Filters and paging swap only the table when asked by htmx (and push the URL); a plain request gets
the whole page. Bulk deletion is two steps: a first POST shows the count to confirm, a second POST
with ``confirm=1`` deletes. Any selected id that is not a task of this project answers 404 and
deletes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from workspace.tenancy.errors import Invalid
from workspace.web.blocking import in_thread
from workspace.web.forms import many, one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, is_htmx, notice, page, see_other
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.media_import import thumbnail_url
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import assignment as asg
from workspace.workflow import datamanager as dm
from workspace.workflow.settings import workflow_settings
from workspace.workflow import services as svc

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _can_delete(request: Request[Any, Any, Any]) -> bool:
    return ctx_of(request).has("project:update")  # the context holds this project's grants too


def _url(slug: str, project_id: int, params: dict[str, str]) -> str:
    base = f"/t/{slug}/projects/{project_id}/data"
    return f"{base}?{urlencode(params)}" if params else base


@dataclass(frozen=True)
class BulkSelection:
    """The tasks a bulk action of the data manager applies to: the ticked ``ids``, or (``all_matching``)
    every task matching ``filters``; ``back`` is the data manager's URL with those filters."""

    filters: dm.Filters
    back: str
    own_only: int | None
    all_matching: bool
    ids: list[int]
    count: int

    def scope(self) -> dict[str, Any]:
        """The keyword arguments that name these tasks to the bulk services (ids, or the filter)."""
        return {"ids": None if self.all_matching else self.ids,
                "filters": self.filters if self.all_matching else None, "only_own_of": self.own_only}

    def context(self, project: Any) -> dict[str, Any]:
        """What the confirmation templates show of the selection."""
        return {"project": project, "filters": self.filters, "ids": self.ids, "all_matching": self.all_matching,
                "count": self.count, "back_url": self.back, "hidden": self.filters.query()}


def bulk_selection(request: Request[Any, Any, Any], db: Any, slug: str, project_id: int, data: dict[str, Any],
                   verb: str, doing: str) -> BulkSelection | Redirect:
    """The selection a bulk-action form posted, or a redirect back (with a notice) when nothing is ticked.
    A foreign id answers 404; "every matching task" with a bad filter is Invalid. ``verb``/``doing``
    name the action in the messages ("delete"/"deleting")."""
    filters, errors = dm.parse_filters({k: one(data, k) for k in dm.FILTER_FIELDS})
    back = _url(slug, project_id, filters.query())
    own_only = dm.own_tasks_of(ctx_of(request))
    all_matching = one(data, "all_matching") == "1"
    ids: list[int] = []
    if not all_matching:
        ids = dm.selected_ids(db, project_id, many(data, "ids"), only_own_of=own_only)  # 404 on a foreign id
        if not ids:
            notice(request, f"Select the tasks to {verb} first.", "error")
            return see_other(back)
        count = len(ids)
    else:
        if errors:
            raise Invalid(f"Fix the filter before {doing} every task that matches it.")
        count = dm.count_matching(db, project_id, filters, only_own_of=own_only, cap=None)
    return BulkSelection(filters, back, own_only, all_matching, ids, count)


@get("/t/{slug:str}/projects/{project_id:int}/data", opt=requires("project:read", nav="projects"), name="data_manager")
@in_thread
def data_manager(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    params = {k: request.query_params.get(k) or "" for k in (*dm.FILTER_FIELDS, "after", "before", "select")}
    filters, errors = dm.parse_filters(params)
    own_only = dm.own_tasks_of(ctx_of(request))
    result = dm.list_tasks(db, project_id, filters, after=params["after"] or None, before=params["before"] or None,
                           only_own_of=own_only)
    matching = dm.count_matching(db, project_id, filters, only_own_of=own_only)
    base_query = filters.query()
    columns = dm.data_columns(project)
    image_fields = {o.field for o in parse_label_config(project.label_config).objects if o.tag == "Image" and o.field}
    runtime, tenant_id = runtime_of(request), ctx_of(request).tenant_id
    thumbs = {(r.id, c): url for r in result.rows for c in columns if c in image_fields
              for url in [thumbnail_url(runtime, tenant_id, r.data.get(c))] if url}
    context = {
        "thumbs": thumbs,
        "project": project, "filters": filters, "errors": errors, "page_rows": result.rows,
        "columns": columns, "short": dm.short, "other_summary": dm.other_summary, "matching": matching,
        "count_cap": dm.COUNT_CAP, "own_only": own_only is not None,
        "select_page": params["select"] == "page", "base_query": base_query,
        "data_url": _url(slug, project_id, {}),
        "first_url": _url(slug, project_id, base_query) if (result.prev_cursor or params["after"] or params["before"]) else None,
        "next_url": _url(slug, project_id, {**base_query, "after": result.next_cursor}) if result.next_cursor else None,
        "prev_url": _url(slug, project_id, {**base_query, "before": result.prev_cursor}) if result.prev_cursor else None,
        "select_page_url": _url(slug, project_id, {**base_query, **{k: params[k] for k in ("after", "before") if params[k]},
                                                   "select": "page"}),
        "sort_urls": {s: _url(slug, project_id, {**filters.query(), "sort": s}) for s in dm.SORTS},
        "sorts": dm.SORTS, "states": dm.STATES, "can_delete": _can_delete(request),
        # Assignees column (an annotator sees only their own assignments); with blind overlap an
        # annotator does not see how many others annotated a task either.
        "assignees": asg.assignees_of(db, result.ids, only=own_only),
        "hide_counts": own_only is not None and workflow_settings(project.workflow).blind,
    }
    if is_htmx(request):
        return fragment(request, "workflow/partials/_dm_table.html", oob=True, **context)
    members = [] if own_only is not None else dm.annotator_choices(db)
    return page(request, "workflow/datamanager.html", mode="table", members=members, **context)


@post("/t/{slug:str}/projects/{project_id:int}/data/delete", opt=requires("project:update", nav="projects"),
      name="data_manager_delete")
@in_thread
def delete_tasks(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                 data: Form) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    selection = bulk_selection(request, db, slug, project_id, data, "delete", "deleting")
    if isinstance(selection, Redirect):
        return selection
    if one(data, "confirm") != "1":
        context = selection.context(project)
        if is_htmx(request):
            return fragment(request, "workflow/partials/_dm_confirm.html", **context)
        return page(request, "workflow/datamanager.html", mode="confirm", **context)
    deleted = dm.delete_tasks(db, ctx_of(request), project_id, **selection.scope())
    notice(request, f"Deleted {deleted} {'task' if deleted == 1 else 'tasks'}.")
    return see_other(selection.back)


route_handlers = [data_manager, delete_tasks]
