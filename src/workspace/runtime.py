"""The process-wide resources built from settings: engine, session factory, authorization.

Shared by the web app, the CLI and job workers, so all three run the same services the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from workspace.audit.chain import SYSTEM, Actor, set_actor
from workspace.config import Settings
from workspace.db import make_engine, make_session_factory
from workspace.db.registry import load_models
from workspace.jobs.live import LiveBoard
from workspace.tenancy.authz import Authz, attach_redis_watcher
from workspace.tenancy.scoping import bind_tenant

if TYPE_CHECKING:
    from workspace.jobs.queue import JobQueue
    from workspace.media import MediaStore

__all__ = ["Runtime", "build_runtime"]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    authz: Authz
    watcher: object | None = field(default=None)
    job_board: LiveBoard = field(default_factory=LiveBoard, repr=False, compare=False)
    # The guarded outbound client's policy for jobs (webhooks, ML backends); None = the strict default.
    # Tests that talk to a receiver on 127.0.0.1 set one that allows loopback.
    outbound_policy: object | None = field(default=None, repr=False, compare=False)
    _media: MediaStore | None = field(default=None, repr=False, compare=False)
    _media_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _jobs: JobQueue | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Sessions send the jobs they create after commit through this runtime's queue.
        info = self.session_factory.kw.setdefault("info", {})
        info["job_dispatch"] = self.dispatch_job
        info["job_board"] = self.job_board

    @property
    def jobs(self) -> JobQueue:
        """The job queue: dramatiq on Redis when configured, else an in-process broker and worker."""
        if self._jobs is None:
            with self._media_lock:
                if self._jobs is None:
                    from workspace.jobs.queue import JobQueue

                    self._jobs = JobQueue(self)
        return self._jobs

    def dispatch_job(self, job_id: int) -> None:
        self.jobs.send(job_id)

    @property
    def media(self) -> MediaStore:
        """The tenant-prefixed media store (S3 when ``settings.s3`` is set, else the local folder),
        built on first use so processes that never touch media don't load minio."""
        if self._media is None:
            with self._media_lock:
                if self._media is None:
                    from workspace.media import media_store_from_settings

                    self._media = media_store_from_settings(self.settings)
        return self._media

    @contextmanager
    def unit_of_work(self, tenant_id: int | None = None, actor: Actor = SYSTEM) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on error (CLI, jobs, side records)."""
        session = self.session_factory()
        set_actor(session, actor)
        if tenant_id is not None:
            bind_tenant(session, tenant_id)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.stop()
            self._jobs = None
        if self.watcher is not None:
            try:
                self.watcher.close = True  # type: ignore[attr-defined]
            except Exception:
                pass
        self.engine.dispose()


def build_runtime(settings: Settings, *, watch_policy: bool = True) -> Runtime:
    load_models()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    authz = Authz(engine)
    watcher = None
    if settings.redis_url and watch_policy:
        watcher = attach_redis_watcher(authz, settings.redis_url)
    runtime = Runtime(settings, engine, make_session_factory(engine, audit_key=settings.secret_key, authz=authz), authz,
                      watcher)
    if settings.outbound_allowed_hosts:  # an operator's explicit exception for named internal hosts
        from workspace.lib.outbound import OutboundPolicy

        runtime.outbound_policy = OutboundPolicy(allowed_hosts=frozenset(settings.outbound_allowed_hosts))
    return runtime
