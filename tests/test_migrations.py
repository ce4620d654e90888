"""Migrations: they build exactly the declared schema and upgrade old registries without loss."""

import time

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import mlops_jupyter as mlops
from mlops_jupyter import MlopsError
from mlops_jupyter.registry import database, schema
from mlops_jupyter.registry.store import Store


def script_directory():
    config = Config()
    config.set_main_option("script_location", str(database.MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_head_revision_constant_matches_the_migrations():
    assert script_directory().get_current_head() == database.HEAD_REVISION


def test_migrations_build_exactly_the_declared_schema(registry_url):
    store = Store(registry_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    store.close()
    assert differences == []


def test_a_registry_at_the_first_revision_upgrades_without_loss(registry_url):
    engine = database.create_engine(registry_url)
    with engine.connect() as connection, database.begin(connection, write=True):
        database.upgrade(connection, "0001")
    now = time.time()
    with engine.begin() as connection:  # rows as the first release wrote them
        connection.execute(
            sa.text("INSERT INTO experiments (name, created_at, created_by) VALUES ('old', :t, 'ana')"), {"t": now}
        )
        connection.execute(
            sa.text(
                'INSERT INTO runs (id, experiment_id, name, status, "user", start_time) '
                "VALUES ('a' || :pad, 1, 'old-run', 'FINISHED', 'ana', :t)"
            ),
            {"pad": "0" * 31, "t": now},
        )
        connection.execute(
            sa.text("INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES ('a' || :pad, 'auc', 0.9, 0, :t)"),
            {"pad": "0" * 31, "t": now},
        )
    engine.dispose()
    assert database.current_revision(database.create_engine(registry_url)) == "0001"

    mlops.connect(registry_url)  # opening upgrades by itself
    old = mlops.get_run("old-run")
    assert (old["experiment"], old["metrics"], old["user"]) == ("old", {"auc": 0.9}, "ana")
    with mlops.start_run(experiment="old"):
        mlops.log_metric("auc", 0.95)
        mlops.register_model({"weights": [1, 2]}, "new-model")  # the new tables work
    assert mlops.list_models()[0]["name"] == "new-model"


def test_a_registry_from_a_newer_release_is_refused_not_damaged(registry_url):
    mlops.connect(registry_url)
    engine = database.create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    mlops.disconnect()
    with pytest.raises(MlopsError, match="newer than this mlops-jupyter knows"):
        mlops.connect(registry_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()
