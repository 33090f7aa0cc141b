"""task_tally: a project's task totals kept by PostgreSQL triggers, read in O(1)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 23:10:00

The Label Studio API's task list and project JSON showed a project's totals (tasks, tasks with
annotations, annotations, predictions) by aggregating all its tasks on every request: about 10 ms at
100,000 tasks. Counters on the project row would serialize every annotator of a project on that row
(and deadlock concurrent ones), so on PostgreSQL the totals are kept as *insert-only delta rows*:

* statement-level AFTER INSERT / DELETE / UPDATE triggers on task read the statement's transition
  tables (so COPY, bulk deletes and single-row updates all count) and insert one row of deltas per
  (tenant, project) the statement touched, when some delta is not zero. An update counts as "minus the
  old rows, plus the new rows", which needs no join and stays right if a task ever changes project.
  Inserting takes no lock that concurrent writers wait for;
* the totals are the sum of a project's rows. So that they stay few, about one statement in fifty
  replaces the touched projects' rows by their sum (``task_tally_compact``, also callable directly);
* deleting a project (whose tasks migration 0014's trigger deletes first) inserts negative deltas,
  which the foreign key's ON DELETE CASCADE then removes with the project.

The table exists on SQLite too (one schema for the models); SQLite has no triggers for it and its
readers keep aggregating the tasks (see workspace.workflow.tally).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

COMPACT_PROBABILITY = 0.02


def _signed(sign: int, rows: str) -> str:
    return f"SELECT tenant_id, project_id, {sign} AS sign, annotation_count, prediction_count FROM {rows}"


# The changed rows of each kind of statement, each with the sign it contributes.
_CHANGES = {
    "INSERT": _signed(1, "new_rows"),
    "DELETE": _signed(-1, "old_rows"),
    "UPDATE": f"{_signed(1, 'new_rows')} UNION ALL {_signed(-1, 'old_rows')}",
}


def _record(changes: str) -> str:
    """One delta row per (tenant, project) among ``changes``, unless all its deltas are zero (an
    update of other columns, or of counts that cancel out); the touched projects go into ``touched``."""
    return f"""
        WITH delta AS (
            SELECT tenant_id, project_id, sum(sign) AS tasks,
                   sum(CASE WHEN annotation_count > 0 THEN sign ELSE 0 END) AS labeled,
                   sum(sign * annotation_count) AS annotations, sum(sign * prediction_count) AS predictions
            FROM ({changes}) AS change GROUP BY tenant_id, project_id),
        added AS (
            INSERT INTO task_tally (tenant_id, project_id, tasks, labeled, annotations, predictions)
            SELECT tenant_id, project_id, tasks, labeled, annotations, predictions FROM delta
            WHERE (tasks, labeled, annotations, predictions) <> (0, 0, 0, 0)
            RETURNING project_id)
        SELECT array_agg(DISTINCT project_id) INTO touched FROM added;"""


def upgrade() -> None:
    op.create_table('task_tally',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('tasks', sa.BigInteger(), nullable=False),
    sa.Column('labeled', sa.BigInteger(), nullable=False),
    sa.Column('annotations', sa.BigInteger(), nullable=False),
    sa.Column('predictions', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_task_tally_project_id_project'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_tally'))
    )
    with op.batch_alter_table('task_tally') as batch:
        batch.create_index('ix_task_tally_project_id', ['project_id'], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    # Why concurrent compactions can neither lose nor double-count a delta: a compaction deletes only
    # rows it has locked (FOR UPDATE SKIP LOCKED: rows another compaction holds, or that it already
    # deleted, are skipped instead of waited for, so compactions never block or deadlock each
    # other), and re-inserts their sum in the same statement. Each delta row is thus deleted by at
    # most one transaction, which commits or rolls back its deletions together with their sum.
    # Rows not yet committed by other transactions are invisible to it and stay as they are. A
    # reader sees, for each compaction, either its old rows or their sum, never both or neither.
    op.execute("""
        CREATE FUNCTION task_tally_compact(target_project integer) RETURNS void LANGUAGE sql AS $$
            WITH gone AS (
                DELETE FROM task_tally WHERE id IN (
                    SELECT id FROM task_tally WHERE project_id = target_project FOR UPDATE SKIP LOCKED)
                RETURNING tenant_id, project_id, tasks, labeled, annotations, predictions)
            INSERT INTO task_tally (tenant_id, project_id, tasks, labeled, annotations, predictions)
            SELECT tenant_id, project_id, sum(tasks), sum(labeled), sum(annotations), sum(predictions)
            FROM gone GROUP BY tenant_id, project_id
        $$
    """)
    op.execute(f"""
        CREATE FUNCTION task_tally_record() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched integer[];
        BEGIN
            IF TG_OP = 'INSERT' THEN {_record(_CHANGES['INSERT'])}
            ELSIF TG_OP = 'DELETE' THEN {_record(_CHANGES['DELETE'])}
            ELSE {_record(_CHANGES['UPDATE'])}
            END IF;
            IF touched IS NOT NULL AND random() < {COMPACT_PROBABILITY} THEN
                PERFORM task_tally_compact(p) FROM unnest(touched) AS p;
            END IF;
            RETURN NULL;
        END $$
    """)
    # A trigger with transition tables serves one event only, hence three.
    for event, tables in (("INSERT", "NEW TABLE AS new_rows"), ("DELETE", "OLD TABLE AS old_rows"),
                          ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows")):
        op.execute(f"""
            CREATE TRIGGER task_tally_on_{event.lower()} AFTER {event} ON task
            REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION task_tally_record()
        """)
    # The backfill runs in the migration's transaction after CREATE TRIGGER, whose lock on task keeps
    # writers out until commit: no change is both backfilled and recorded by a trigger, or neither.
    op.execute("""
        INSERT INTO task_tally (tenant_id, project_id, tasks, labeled, annotations, predictions)
        SELECT p.tenant_id, p.id, count(t.id), count(t.id) FILTER (WHERE t.annotation_count > 0),
               coalesce(sum(t.annotation_count), 0), coalesce(sum(t.prediction_count), 0)
        FROM project AS p LEFT JOIN task AS t ON t.tenant_id = p.tenant_id AND t.project_id = p.id
        GROUP BY p.tenant_id, p.id
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER task_tally_on_{event} ON task")
        op.execute("DROP FUNCTION task_tally_record()")
        op.execute("DROP FUNCTION task_tally_compact(integer)")
    with op.batch_alter_table('task_tally') as batch:
        batch.drop_index('ix_task_tally_project_id')
    op.drop_table('task_tally')
