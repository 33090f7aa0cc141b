"""task: one composite (tenant_id, project_id) key to the project instead of three foreign keys

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 20:50:00

PostgreSQL checks each foreign key row by row during COPY; the task table had three (tenant, project,
import batch) and an index on tenant_id that no query uses (tasks are always read by project). One
composite key to project(tenant_id, id) keeps the cascade from project (and so from tenant) and also
guarantees that a task's tenant is its project's.
"""

from __future__ import annotations

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('project') as batch:
        batch.create_unique_constraint('uq_project_tenant_id_id', ['tenant_id', 'id'])
    with op.batch_alter_table('task') as batch:
        batch.drop_constraint('fk_task_import_id_import_batch', type_='foreignkey')
        batch.drop_constraint('fk_task_project_id_project', type_='foreignkey')
        batch.drop_constraint('fk_task_tenant_id_tenant', type_='foreignkey')
        batch.drop_index('ix_task_tenant_id')
        batch.create_foreign_key('fk_task_tenant_id_project', 'project', ['tenant_id', 'project_id'],
                                 ['tenant_id', 'id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('task') as batch:
        batch.drop_constraint('fk_task_tenant_id_project', type_='foreignkey')
        batch.create_index('ix_task_tenant_id', ['tenant_id'], unique=False)
        batch.create_foreign_key('fk_task_tenant_id_tenant', 'tenant', ['tenant_id'], ['id'], ondelete='CASCADE')
        batch.create_foreign_key('fk_task_project_id_project', 'project', ['project_id'], ['id'], ondelete='CASCADE')
        batch.create_foreign_key('fk_task_import_id_import_batch', 'import_batch', ['import_id'], ['id'],
                                 ondelete='SET NULL')
    with op.batch_alter_table('project') as batch:
        batch.drop_constraint('uq_project_tenant_id_id', type_='unique')
