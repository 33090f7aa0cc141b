"""In-process live state of running jobs: progress and cancel requests that cannot wait for the database.

On SQLite a job's work holds the database's single write lock for its whole transaction (an import is
all or nothing), so progress and cancel requests cannot be written to the job row while it runs. In
embedded mode the worker runs in the server's process, so they meet here instead. On PostgreSQL the
job row is the source of truth and this board only mirrors it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["LiveBoard", "LiveProgress"]


@dataclass(frozen=True)
class LiveProgress:
    done: int
    total: int | None
    message: str


class LiveBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[int, LiveProgress] = {}
        self._cancel: dict[int, str] = {}

    def set_progress(self, job_id: int, done: int, total: int | None, message: str) -> None:
        with self._lock:
            self._progress[job_id] = LiveProgress(done, total, message)

    def progress(self, job_id: int) -> LiveProgress | None:
        with self._lock:
            return self._progress.get(job_id)

    def request_cancel(self, job_id: int, by: str) -> None:
        with self._lock:
            self._cancel[job_id] = by

    def cancel_requested_by(self, job_id: int) -> str | None:
        with self._lock:
            return self._cancel.get(job_id)

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._progress.pop(job_id, None)
            self._cancel.pop(job_id, None)
