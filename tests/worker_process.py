"""Production mode with a real `workspace worker` process beside the web app: the settings both read
from one environment (PostgreSQL, Redis, a namespace of its own), the app's runtime, and the worker,
stopped (its whole process group) and its log closed whatever the test did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import SECRET
from workspace.config import Settings, load_settings
from workspace.runtime import build_runtime


@dataclass
class WorkerRun:
    settings: Settings
    runtime: Any
    worker: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:]


@contextmanager
def worker_process(database_url: str, redis_url: str, tmp_path: Path, **extra_env: str) -> Iterator[WorkerRun]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env.update({"WORKSPACE_DATA_DIR": str(tmp_path / "data"), "WORKSPACE_SECRET_KEY": SECRET,
                "WORKSPACE_DATABASE_URL": database_url, "WORKSPACE_REDIS_URL": redis_url,
                "WORKSPACE_JOBS_NAMESPACE": f"ws-test-{uuid.uuid4().hex[:8]}", "PYTHONUNBUFFERED": "1", **extra_env})
    settings = load_settings(env)
    runtime = build_runtime(settings, watch_policy=False)
    log_path = tmp_path / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115
    # Its own process group: dramatiq forks worker processes, and stopping it must stop them all.
    worker = subprocess.Popen([str(Path(sys.executable).with_name("workspace")), "worker", "--processes", "1",
                               "--threads", "2"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield WorkerRun(settings, runtime, worker, log_path)
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
        runtime.close()
