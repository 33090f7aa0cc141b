"""Broker setup. Set the broker before any actor module is imported (dramatiq 2 defaults to RabbitMQ)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from workspace.config import Settings

__all__ = ["configure_broker"]

_configured: dramatiq.Broker | None = None


def configure_broker(settings: Settings) -> dramatiq.Broker:
    global _configured
    if _configured is not None:
        return _configured
    if settings.redis_url:
        broker: dramatiq.Broker = RedisBroker(url=settings.redis_url, namespace="workspace-jobs")
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    _configured = broker
    return broker
