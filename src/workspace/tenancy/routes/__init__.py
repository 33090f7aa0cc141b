"""Pages and API endpoints of tenancy, one module per area; ``route_handlers`` collects them."""

from workspace.tenancy.routes import access, account, api, auth, members
from workspace.tenancy.routes import api_admin

route_handlers = [
    *auth.route_handlers,
    *members.route_handlers,
    *access.route_handlers,
    *account.route_handlers,
    *api.route_handlers,
    *api_admin.route_handlers,
]

__all__ = ["route_handlers"]
