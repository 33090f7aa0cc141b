"""imports routes (being built)."""

route_handlers: list = []
