"""kl_results: the sampled KL's standard error and sample count, the model map's clipping threshold;
runs: provenance (git commit and the rest as JSON)

Rows with estimator "sampled" hold KL(target ‖ model) estimated on texts drawn from the target:
bits_per_byte ± stderr_bits_per_byte over n_samples samples (nats_per_text the mean per sample).
Model-map rows store the one clipping threshold (nats/text, from the pooled matrix) they used; null
means no clipping. Additive: all three columns are nullable, existing rows keep null.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26 23:05:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('kl_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stderr_bits_per_byte', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('n_samples', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('clip_threshold', sa.Float(), nullable=True))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('git_commit', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('provenance', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('provenance')
        batch_op.drop_column('git_commit')
    with op.batch_alter_table('kl_results', schema=None) as batch_op:
        batch_op.drop_column('clip_threshold')
        batch_op.drop_column('n_samples')
        batch_op.drop_column('stderr_bits_per_byte')
