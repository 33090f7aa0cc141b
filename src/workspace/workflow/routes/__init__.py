"""Pages and endpoints of the labeling workflow, one module per area; ``route_handlers`` collects them."""

from workspace.workflow.routes import datamanager, exports, imports, jobs, labeling, media, ml, projects, webhooks
from workspace.workflow.routes import comments, notifications
from workspace.workflow.routes import dashboards
from workspace.workflow.routes import review
from workspace.workflow.routes import workflow
from workspace.workflow.routes import api_jobs, api_reviews

route_handlers = [
    *projects.route_handlers,
    *imports.route_handlers,
    *datamanager.route_handlers,
    *labeling.route_handlers,
    *media.route_handlers,
    *jobs.route_handlers,
    *exports.route_handlers,
    *webhooks.route_handlers,
    *ml.route_handlers,
    *comments.route_handlers,
    *notifications.route_handlers,
    *dashboards.route_handlers,
    *review.route_handlers,
    *workflow.route_handlers,
    *api_jobs.route_handlers,
    *api_reviews.route_handlers,
]

__all__ = ["route_handlers"]
