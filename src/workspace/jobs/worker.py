"""``workspace worker`` (dramatiq worker processes) and the embedded in-process worker."""

from __future__ import annotations

import sys

from dramatiq import Worker

from workspace.config import Settings
from workspace.jobs.broker import configure_broker

__all__ = ["run_worker", "start_embedded_worker"]

ACTOR_MODULES = ["workspace.jobs.actors"]


def run_worker(settings: Settings, *, processes: int = 1, threads: int = 4) -> int:
    if not settings.redis_url:
        print("workspace worker: WORKSPACE_REDIS_URL is not set; in embedded mode `workspace serve` "
              "runs the jobs itself.", file=sys.stderr)
        return 2
    from dramatiq.cli import main as dramatiq_main

    sys.argv = ["dramatiq", "--processes", str(processes), "--threads", str(threads), *ACTOR_MODULES]
    return dramatiq_main() or 0


def start_embedded_worker(settings: Settings) -> Worker:
    broker = configure_broker(settings)
    from workspace.jobs import actors  # registers the actors on the broker

    actors.configure(settings)

    worker = Worker(broker, worker_threads=2)
    worker.start()
    return worker
