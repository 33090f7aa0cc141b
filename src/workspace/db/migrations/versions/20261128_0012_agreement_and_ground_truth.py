"""agreement and ground truth

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('task') as batch:
        batch.add_column(sa.Column('agreement', sa.Float(), nullable=True))
        batch.create_index('ix_task_project_agreement', ['project_id', 'agreement', 'id'], unique=False,
                           postgresql_where=sa.text('agreement IS NOT NULL'),
                           sqlite_where=sa.text('agreement IS NOT NULL'))
    with op.batch_alter_table('annotation') as batch:
        batch.add_column(sa.Column('ground_truth', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('gt_score', sa.Float(), nullable=True))
        batch.create_index('ix_annotation_project_created', ['project_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('annotation') as batch:
        batch.drop_index('ix_annotation_project_created')
        batch.drop_column('gt_score')
        batch.drop_column('ground_truth')
    with op.batch_alter_table('task') as batch:
        batch.drop_index('ix_task_project_agreement')
        batch.drop_column('agreement')
