"""Workflow queries, including the fast paths for bulk task inserts.

Rows handed in here are already stamped with the tenant (``tenancy.scoping.stamp_rows``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from workspace.workflow.models import Task

__all__ = ["insert_tasks"]

_COPY_COLUMNS = ("tenant_id", "project_id", "data", "import_id", "created_at", "annotation_count", "prediction_count")


def insert_tasks(session: Session, rows: list[dict[str, Any]], *, need_ids: bool) -> list[int]:
    """Insert task rows; return their ids in order when ``need_ids`` (else an empty list).

    PostgreSQL without ids uses COPY (an order of magnitude faster than INSERT); with ids, one
    multi-row INSERT ... RETURNING per batch. SQLite uses executemany.
    """
    if not rows:
        return []
    if need_ids:
        return list(session.scalars(insert(Task).returning(Task.id, sort_by_parameter_order=True), rows))
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.dbapi_connection
        columns = ", ".join(_COPY_COLUMNS)
        with raw.cursor() as cursor, cursor.copy(f"COPY task ({columns}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row((row["tenant_id"], row["project_id"], json.dumps(row["data"], ensure_ascii=False),
                                row["import_id"], row["created_at"], row["annotation_count"],
                                row["prediction_count"]))
        return []
    connection.execute(insert(Task.__table__), rows)
    return []
