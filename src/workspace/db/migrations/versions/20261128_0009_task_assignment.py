"""task assignment and reservations

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('task_assignment',
    sa.Column('id', BigId, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('assigned_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['assigned_by_id'], ['user_account.id'], name=op.f('fk_task_assignment_assigned_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_task_assignment_project_id_project'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_task_assignment_task_id_task'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_task_assignment_team_id_team'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_task_assignment_tenant_id_tenant'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_task_assignment_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_assignment'))
    )
    with op.batch_alter_table('task_assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_assignment_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_task_assignment_project_user', ['project_id', 'user_id', 'role', 'task_id'], unique=False)
        batch_op.create_index('ux_task_assignment_task_user_role', ['task_id', 'user_id', 'role'], unique=True)

    op.create_table('task_reservation',
    sa.Column('id', BigId, nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_task_reservation_project_id_project'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['task.id'], name=op.f('fk_task_reservation_task_id_task'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_task_reservation_tenant_id_tenant'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_task_reservation_user_id_user_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_reservation'))
    )
    with op.batch_alter_table('task_reservation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_reservation_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_task_reservation_project_user', ['project_id', 'user_id'], unique=False)
        batch_op.create_index('ux_task_reservation_task_user', ['task_id', 'user_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('task_reservation', schema=None) as batch_op:
        batch_op.drop_index('ux_task_reservation_task_user')
        batch_op.drop_index('ix_task_reservation_project_user')
        batch_op.drop_index(batch_op.f('ix_task_reservation_tenant_id'))
    op.drop_table('task_reservation')
    with op.batch_alter_table('task_assignment', schema=None) as batch_op:
        batch_op.drop_index('ux_task_assignment_task_user_role')
        batch_op.drop_index('ix_task_assignment_project_user')
        batch_op.drop_index(batch_op.f('ix_task_assignment_tenant_id'))
    op.drop_table('task_assignment')
