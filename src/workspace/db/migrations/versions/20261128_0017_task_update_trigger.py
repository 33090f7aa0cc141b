"""task: on PostgreSQL, one UPDATE trigger that checks only moved tasks' project and records the tally

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 00:20:00

Every ``UPDATE task`` (a prediction or annotation counted, an agreement refreshed: the annotation and
prediction API's hot path, mostly one row) fired two statement-level triggers: migration 0014's key check
and migration 0015's tally. Together they were most of the statement's server time, and the check locked
the task's project row FOR KEY SHARE on every update, though tasks practically never change project.
One trigger now does both, with the least work:

* the key check covers only the rows whose (tenant, project) changed, found by comparing the new rows
  with the old ones by id. That is what PostgreSQL's own foreign key does: it skips the check and its
  lock when an update leaves the key unchanged, because the task already refers to an existing project,
  and deleting that project must first delete the task (0014's delete trigger), which waits for the
  updating transaction's row lock. A row moving to another (tenant, project) gets exactly 0014's check:
  the pair's project row is locked FOR KEY SHARE, and a pair without a project raises
  foreign_key_violation;
* the tally is 0015's UPDATE branch unchanged: one delta row per (tenant, project) with some non-zero
  delta, "minus the old rows, plus the new rows", and the same occasional compaction.

The INSERT and DELETE triggers of 0014 and 0015 stay. SQLite has none of these triggers.
"""

from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# Migration 0015's compaction rate: one update in fifty, like its insert and delete triggers.
COMPACT_PROBABILITY = 0.02

# The distinct (tenant, project) pairs of the new rows whose (id, tenant, project) is not among the old
# rows: the rows an update gave another key (or another id). A grouping rather than a join or EXCEPT: the
# function's plans are made once, for the first statement's row counts, and a hash aggregate stays linear
# and within work_mem (spilling to disk) whatever the size of a later statement.
_MOVED = """
    SELECT DISTINCT tenant_id, project_id FROM (
        SELECT id, tenant_id, project_id, 1 AS sign FROM new_rows
        UNION ALL SELECT id, tenant_id, project_id, -1 FROM old_rows) AS row_key
    GROUP BY id, tenant_id, project_id HAVING sum(sign) > 0"""

_SIGNED = "SELECT tenant_id, project_id, {sign} AS sign, annotation_count, prediction_count FROM {rows}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER task_project_exists_on_update ON task")
    op.execute("DROP TRIGGER task_tally_on_update ON task")
    op.execute(f"""
        CREATE FUNCTION task_update_check_and_tally() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            wanted bigint;
            found bigint;
            touched integer[];
        BEGIN
            SELECT count(*) INTO wanted FROM ({_MOVED}) AS n;
            IF wanted > 0 THEN
                SELECT count(*) INTO found FROM (
                    SELECT p.id FROM project AS p
                    JOIN ({_MOVED}) AS n ON p.tenant_id = n.tenant_id AND p.id = n.project_id
                    FOR KEY SHARE OF p) AS locked;
                IF found < wanted THEN
                    RAISE EXCEPTION 'task rows refer to a project that does not exist in their tenant'
                        USING ERRCODE = 'foreign_key_violation';
                END IF;
            END IF;
            WITH delta AS (
                SELECT tenant_id, project_id, sum(sign) AS tasks,
                       sum(CASE WHEN annotation_count > 0 THEN sign ELSE 0 END) AS labeled,
                       sum(sign * annotation_count) AS annotations, sum(sign * prediction_count) AS predictions
                FROM ({_SIGNED.format(sign=1, rows='new_rows')}
                      UNION ALL {_SIGNED.format(sign=-1, rows='old_rows')}) AS change
                GROUP BY tenant_id, project_id),
            added AS (
                INSERT INTO task_tally (tenant_id, project_id, tasks, labeled, annotations, predictions)
                SELECT tenant_id, project_id, tasks, labeled, annotations, predictions FROM delta
                WHERE (tasks, labeled, annotations, predictions) <> (0, 0, 0, 0)
                RETURNING project_id)
            SELECT array_agg(DISTINCT project_id) INTO touched FROM added;
            IF touched IS NOT NULL AND random() < {COMPACT_PROBABILITY} THEN
                PERFORM task_tally_compact(p) FROM unnest(touched) AS p;
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER task_check_and_tally_on_update AFTER UPDATE ON task
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION task_update_check_and_tally()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER task_check_and_tally_on_update ON task")
    op.execute("DROP FUNCTION task_update_check_and_tally()")
    # Migrations 0014's and 0015's UPDATE triggers, on their functions (which their other triggers kept).
    op.execute("""
        CREATE TRIGGER task_project_exists_on_update AFTER UPDATE ON task
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_project_exists()
    """)
    op.execute("""
        CREATE TRIGGER task_tally_on_update AFTER UPDATE ON task
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_tally_record()
    """)
