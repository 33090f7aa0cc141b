"""ML backends and pre-annotation

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ml_backend',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=120), nullable=False),
    sa.Column('retrain_every', sa.Integer(), nullable=True),
    sa.Column('trained_on', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('model_blob', sa.LargeBinary(), nullable=True),
    sa.Column('model_signature', sa.String(length=64), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_ml_backend_created_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_ml_backend_project_id_project'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_ml_backend_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ml_backend'))
    )
    with op.batch_alter_table('ml_backend', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ml_backend_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_ml_backend_project_id', ['project_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ml_backend', schema=None) as batch_op:
        batch_op.drop_index('ix_ml_backend_project_id')
        batch_op.drop_index(batch_op.f('ix_ml_backend_tenant_id'))

    op.drop_table('ml_backend')
