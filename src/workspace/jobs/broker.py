"""Broker setup. The broker is set before any actor module is imported (dramatiq 2 defaults to RabbitMQ)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from workspace.config import Settings, load_settings

__all__ = ["configure_broker", "ensure_broker"]

_configured: dramatiq.Broker | None = None


def configure_broker(settings: Settings) -> dramatiq.Broker:
    """Redis broker in production; a stub broker served by an in-process worker in embedded mode."""
    global _configured
    if _configured is not None:
        return _configured
    if settings.redis_url:
        from workspace.jobs.queue import make_redis_broker

        broker: dramatiq.Broker = make_redis_broker(settings)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    _configured = broker
    return broker


def ensure_broker() -> dramatiq.Broker:
    """For worker processes started by the dramatiq CLI: the broker comes from the environment."""
    return _configured or configure_broker(load_settings())
