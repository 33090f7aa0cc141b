"""Background jobs on dramatiq: Redis broker in production, an in-process worker in embedded mode."""
