"""Fixtures: a fresh registry per test on SQLite and, where reachable, on the real PostgreSQL.

PostgreSQL and Redis tests use ``MLOPS_TEST_POSTGRES_URL`` / ``MLOPS_TEST_REDIS_URL``
(``.ci/run`` sets them, and then an unreachable server fails the run), else the local
default, else they skip with a reason.
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
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/15"
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


def reachable_service(variable, default, probe, what):
    """The URL in ``variable`` (which must answer), else ``default`` if it answers, else skip."""
    url = os.environ.get(variable)
    try:
        probe(url or default)
    except Exception as error:  # each client raises its own connection errors
        if url:
            pytest.fail(f"{variable} is set but {what} is unreachable: {error}")
        pytest.skip(f"{what} not reachable at {default}; set {variable} to require it")
    return url or default


def _probe_postgres(url):
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _probe_redis(url):
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


@pytest.fixture(scope="session")
def pg_url():
    return reachable_service("MLOPS_TEST_POSTGRES_URL", PG_DEFAULT_URL, _probe_postgres, "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url():
    return reachable_service("MLOPS_TEST_REDIS_URL", REDIS_DEFAULT_URL, _probe_redis, "Redis")


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
