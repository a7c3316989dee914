"""Alembic owns the schema: upgrade, no drift, down and up again; the engine refuses a stale schema."""

import pytest
from alembic import command

from lldmix_core.db.engine import alembic_config, current_revision, downgrade, head_revision, make_engine, require_current, upgrade
from lldmix_core.errors import SchemaBehindError

from test_db import _fresh_pg_url, need_pg


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'm.sqlite'}" if request.param == "sqlite" else _fresh_pg_url(need_pg())


def test_upgrade_check_downgrade_upgrade(url):
    upgrade(url)
    assert current_revision(make_engine(url)) == head_revision()
    command.check(alembic_config(url))  # raises when the models and the migrations disagree
    downgrade(url, "base")
    assert current_revision(make_engine(url)) is None
    upgrade(url)
    command.check(alembic_config(url))
    require_current(make_engine(url))


def test_engine_refuses_a_schema_behind_head(url):
    with pytest.raises(SchemaBehindError, match="run `lldmix db upgrade`"):
        require_current(make_engine(url))


def test_engine_refuses_a_schema_ahead_of_the_code(url):
    from sqlalchemy import text

    upgrade(url)
    with make_engine(url).begin() as c:
        c.execute(text("update alembic_version set version_num = 'ffff_future'"))
    with pytest.raises(SchemaBehindError, match="newer than this code"):
        require_current(make_engine(url))
