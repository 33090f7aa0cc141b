"""reviews and annotation revisions

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('annotation') as batch:
        batch.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))

    op.create_table('annotation_revision',
    sa.Column('id', BIG, nullable=False),
    sa.Column('annotation_id', BIG, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'], name=op.f('fk_annotation_revision_actor_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotation.id'], name=op.f('fk_annotation_revision_annotation_id_annotation'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_annotation_revision_project_id_project'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_annotation_revision_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotation_revision')),
    sa.UniqueConstraint('annotation_id', 'number', name=op.f('uq_annotation_revision_annotation_id_number'))
    )
    with op.batch_alter_table('annotation_revision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_revision_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('review',
    sa.Column('id', BIG, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('task_id', BIG, nullable=False),
    sa.Column('annotation_id', BIG, nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('annotation_version', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotation.id'], name=op.f('fk_review_annotation_id_annotation'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_review_project_id_project'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['user_account.id'], name=op.f('fk_review_reviewer_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_review_task_id_task'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_review_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review'))
    )
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_review_annotation_id', ['annotation_id', 'id'], unique=False)
        batch_op.create_index('ix_review_project_id', ['project_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_index('ix_review_project_id')
        batch_op.drop_index('ix_review_annotation_id')
        batch_op.drop_index(batch_op.f('ix_review_tenant_id'))
    op.drop_table('review')
    with op.batch_alter_table('annotation_revision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_revision_tenant_id'))
    op.drop_table('annotation_revision')
    with op.batch_alter_table('annotation') as batch:
        batch.drop_column('version')
