"""project workflow settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('project') as batch:
        batch.add_column(sa.Column('workflow', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('project') as batch:
        batch.alter_column('workflow', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('project') as batch:
        batch.drop_column('workflow')
