"""result checksums: kl_results, weight_estimates and recipes carry a sha256 of their meaningful
fields, verified on read (a flipped bit in a stored KL or weight is refused, not shown). Additive:
nullable columns, filled here for existing rows.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-26 22:45:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ('kl_results', 'weight_estimates', 'recipes')


def upgrade() -> None:
    from lldmix_core.db.integrity import TABLES as FIELDS, row_checksum

    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('checksum', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    for table in TABLES:
        cols = ", ".join(("id",) + FIELDS[table])
        rows = conn.execute(sa.text(f"SELECT {cols} FROM {table}")).mappings().all()
        for row in rows:
            conn.execute(sa.text(f"UPDATE {table} SET checksum = :c WHERE id = :i"),
                         {"c": row_checksum(table, dict(row)), "i": row["id"]})


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('checksum')
