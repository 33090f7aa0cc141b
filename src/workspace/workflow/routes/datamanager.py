"""datamanager routes (being built)."""

route_handlers: list = []
