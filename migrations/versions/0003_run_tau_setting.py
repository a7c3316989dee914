"""runs.tau_setting: the spec's temperature, beside the resolved runs.tau

The spec's τ ("auto", "inf" or a number, as text; NULL for methods without τ) was only in the run's
JSON config, as str(), so pass 1 was found by parsing JSON and comparing strings. Additive: nullable.
Existing rows get it from config where the config holds one (and never the text "None").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 23:00:00
"""
import json
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tau_setting', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    runs = sa.table('runs', sa.column('id', sa.Integer), sa.column('config', sa.JSON),
                    sa.column('tau_setting', sa.String))
    for run_id, config in conn.execute(sa.select(runs.c.id, runs.c.config)).all():
        if isinstance(config, str):
            config = json.loads(config)
        value = (config or {}).get('tau_setting')
        if value is not None and str(value) != 'None':
            conn.execute(runs.update().where(runs.c.id == run_id).values(tau_setting=str(value)))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('tau_setting')
