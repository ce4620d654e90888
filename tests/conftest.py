"""Fixtures: a fresh registry per test on SQLite and, where reachable, on the real PostgreSQL.

PostgreSQL tests use ``MLOPS_TEST_POSTGRES_URL`` (``.ci/run`` sets it, and then an
unreachable server fails the run), else the local default, else they skip with a reason.
Each test gets its own PostgreSQL schema, dropped afterwards.
"""

import os
import secrets

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import mlops_jupyter as mlops
from mlops_jupyter import api

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test touches the developer's own registry or depends on who runs it."""
    monkeypatch.delenv("MLOPS_REGISTRY_URL", raising=False)
    monkeypatch.delenv("MLOPS_ARTIFACTS_URL", raising=False)
    monkeypatch.setenv("MLOPS_USER", "tester")
    monkeypatch.chdir(tmp_path)
    yield
    api.disconnect()


@pytest.fixture(scope="session")
def pg_url():
    url = os.environ.get("MLOPS_TEST_POSTGRES_URL")
    engine = sa.create_engine(url or PG_DEFAULT_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as error:
        if url:
            pytest.fail(f"MLOPS_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {error}")
        pytest.skip(f"PostgreSQL not reachable at {PG_DEFAULT_URL}; set MLOPS_TEST_POSTGRES_URL to require it")
    finally:
        engine.dispose()
    return url or PG_DEFAULT_URL


@pytest.fixture
def pg_schema_url(pg_url):
    """A URL whose connections see only a new, empty schema."""
    name = f"t_{secrets.token_hex(8)}"  # generated here, never user input
    admin = sa.create_engine(pg_url, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    separator = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{separator}options=-csearch_path%3D{name}"
    finally:
        api.disconnect()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def registry_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def registry(registry_url, tmp_path):
    """The current registry, empty, with artifacts in the test's folder."""
    return mlops.connect(registry_url, artifacts=str(tmp_path / "artifacts"))


@pytest.fixture
def shell(registry, registry_url):
    """A real IPython shell with %mlops loaded and pointed at the test's registry."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryAccessor.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "mlops_jupyter")
    shell.run_line_magic("config", f"MlopsMagics.registry_url = {registry_url!r}")
    shell.run_cell("import mlops_jupyter as mlops")
    yield shell
    InteractiveShell.clear_instance()
