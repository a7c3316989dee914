"""stage claims: who is computing a stage, and their heartbeat

Two workers that need the same stage (a shared target, the same run) no longer both compute it:
the first claims the `stages` row (status "running", owner "host:pid", heartbeat_at), the others
wait for it to finish or for the claim to go stale. Additive: both columns are nullable.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stages', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('owner')
