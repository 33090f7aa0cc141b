"""The job queue of one runtime: dramatiq on Redis in production, dramatiq's in-process broker otherwise.

Each runtime declares its own ``run_job`` actor on its own broker (rather than on dramatiq's global
one), so the web process, the embedded worker and tests with several runtimes never share a broker by
accident. Worker processes (``workspace worker``) declare the same actor name and queue in
``workspace.jobs.actors``, so a message sent here is consumed there.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from workspace.jobs.runner import execute_job
from workspace.jobs.services import RetryLater

if TYPE_CHECKING:
    from workspace.config import Settings
    from workspace.runtime import Runtime

__all__ = ["JobQueue", "ACTOR_OPTIONS", "QUEUE_NAME", "make_redis_broker"]

log = logging.getLogger(__name__)

QUEUE_NAME = "jobs"


def _retry_when(retries: int, exc: BaseException) -> bool:
    # The runner decides what is transient and counts attempts in the job row; dramatiq only waits.
    return isinstance(exc, RetryLater) and retries < 10


ACTOR_OPTIONS = {"retry_when": _retry_when, "min_backoff": 1_000, "max_backoff": 60_000,
                 "time_limit": 6 * 3600 * 1000}


def make_redis_broker(settings: Settings) -> RedisBroker:
    """A dead worker's unacknowledged messages go back to the queue once its heartbeat is older than
    ``jobs_redeliver_seconds``; live workers look for such messages on about
    ``jobs_maintenance_per_million`` of their Redis commands (dramatiq's default: 1,000)."""
    assert settings.redis_url
    return RedisBroker(url=settings.redis_url, namespace=settings.jobs_namespace,
                       heartbeat_timeout=settings.jobs_redeliver_seconds * 1000,
                       maintenance_chance=max(0, min(1_000_000, settings.jobs_maintenance_per_million)),
                       dead_message_ttl=7 * 24 * 3600 * 1000)


class JobQueue:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        if runtime.settings.redis_url:
            self.broker: dramatiq.Broker = make_redis_broker(runtime.settings)
        else:
            self.broker = StubBroker()
            self.broker.emit_after("process_boot")

        def run_job(job_id: int) -> None:
            execute_job(runtime, job_id)

        self.actor = dramatiq.Actor(run_job, broker=self.broker, actor_name="run_job", queue_name=QUEUE_NAME,
                                    priority=0, options=dict(ACTOR_OPTIONS))
        self._worker: dramatiq.Worker | None = None
        self._lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def send(self, job_id: int) -> None:
        self.actor.send(job_id)

    def start_worker(self, threads: int = 2) -> None:
        """Embedded mode: run jobs in this process (production runs them in ``workspace worker``)."""
        if not self.embedded:
            return
        with self._lock:
            if self._worker is None:
                self._worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=200)
                self._worker.start()

    def join(self, timeout_ms: int = 60_000) -> None:
        """Tests and the CLI: wait until the embedded queue is empty and every job has finished."""
        if isinstance(self.broker, StubBroker):
            self.broker.join(QUEUE_NAME, timeout=timeout_ms)
            if self._worker is not None:
                self._worker.join()

    def stop_worker(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None

    def stop(self) -> None:
        self.stop_worker()
        self.broker.close()
