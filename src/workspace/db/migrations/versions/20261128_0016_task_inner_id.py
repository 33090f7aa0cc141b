"""task.inner_id and project.task_seq: a task's position in its project, stored instead of counted

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28 23:40:00

Label Studio's API shows each task's ``inner_id``, its 1-based number in its project. It was counted on
every ``GET /api/tasks/{id}/`` (the project's tasks with a smaller or equal id): 4 to 8 ms at 100,000
tasks on PostgreSQL. Like Label Studio, the number is now given once, when the task is created, from a
per-project counter:

* ``project.task_seq`` is the last inner id given in the project; writers of tasks take a block of
  numbers from it with one ``UPDATE ... RETURNING`` (``workspace.workflow.repositories``);
* ``task.inner_id`` has no index: every insert would pay for one (imports write tens of thousands of
  tasks a second), and the number is only ever read from a task already in hand. It is nullable:
  a task written some other way (raw SQL in tests and tools) has none, and readers count for it.

Existing tasks are numbered 1..N per project in id order, the numbers the count gave them. On
PostgreSQL the backfill fires migration 0015's UPDATE trigger, which records nothing (no total changes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('project') as batch:
        batch.add_column(sa.Column('task_seq', sa.BigInteger(), server_default='0', nullable=False))
    with op.batch_alter_table('task') as batch:
        batch.add_column(sa.Column('inner_id', sa.BigInteger(), nullable=True))
    # UPDATE ... FROM: PostgreSQL, and SQLite since 3.33 (the app's RETURNING already needs 3.35).
    op.execute("""
        UPDATE task SET inner_id = numbered.position
        FROM (SELECT id, row_number() OVER (PARTITION BY project_id ORDER BY id) AS position FROM task) AS numbered
        WHERE task.id = numbered.id
    """)
    op.execute("""
        UPDATE project SET task_seq = numbered.last
        FROM (SELECT project_id, max(inner_id) AS last FROM task GROUP BY project_id) AS numbered
        WHERE project.id = numbered.project_id
    """)


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN, also on SQLite (3.35+): a batch would recreate project, and dropping
    # the old table with foreign keys on would cascade to its tasks.
    op.drop_column('task', 'inner_id')
    op.drop_column('project', 'task_seq')
