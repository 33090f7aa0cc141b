"""Pages and endpoints of the labeling workflow, one module per area; ``route_handlers`` collects them."""

from workspace.workflow.routes import datamanager, exports, imports, jobs, labeling, media, projects, webhooks

route_handlers = [
    *projects.route_handlers,
    *imports.route_handlers,
    *datamanager.route_handlers,
    *labeling.route_handlers,
    *media.route_handlers,
    *jobs.route_handlers,
    *exports.route_handlers,
    *webhooks.route_handlers,
]

__all__ = ["route_handlers"]
