"""Finding the registry and its artifacts, and refusing URLs we cannot honour."""

import pytest

import mlops_jupyter as mlops
from mlops_jupyter import InvalidInput, config


def test_without_configuration_a_registry_is_made_in_the_working_directory(tmp_path):
    registry = mlops.connect()
    assert registry.url == f"sqlite:///{tmp_path / '.mlops' / 'registry.db'}"
    assert registry.artifacts.root == str(tmp_path / ".mlops" / "artifacts")
    assert (tmp_path / ".mlops" / "registry.db").is_file()


def test_the_nearest_registry_above_the_working_directory_is_found(tmp_path, monkeypatch):
    mlops.connect()
    mlops.disconnect()
    deeper = tmp_path / "project" / "notebooks"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    assert mlops.connect().url == f"sqlite:///{tmp_path / '.mlops' / 'registry.db'}"
    assert not (deeper / ".mlops").exists()


def test_the_environment_variable_wins_over_discovery(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_REGISTRY_URL", f"sqlite:///{tmp_path / 'team.db'}")
    assert mlops.connect().url.endswith("/team.db")
    assert not (tmp_path / ".mlops").exists()


def test_relative_sqlite_paths_become_absolute(tmp_path):
    assert config.normalize_registry_url("sqlite:///sub.db") == f"sqlite:///{tmp_path / 'sub.db'}"


def test_postgres_urls_use_psycopg():
    assert config.normalize_registry_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalize_registry_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@localhost/db", "unsupported registry URL"),
        ("sqlite://", "must name a file"),
        ("sqlite:///:memory:", "must name a file"),
        ("sqlite:///no/such/folder/r.db", "does not exist"),
        ("registry.db", "unsupported registry URL"),
        ("sqlite:///a\x00b", "NUL"),
    ],
)
def test_unusable_registry_urls_are_refused_with_a_reason(tmp_path, url, message):
    with pytest.raises(InvalidInput, match=message):
        mlops.connect(url)
    assert list(tmp_path.iterdir()) == []


def test_a_password_never_appears_in_a_refusal():
    with pytest.raises(InvalidInput) as error:
        mlops.connect("mysql://ana:s3cret@db/x")
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize("url", ["http://example.com/store", "ftp://host/x", "javascript:alert(1)", "data:,x"])
def test_artifact_urls_with_unexpected_schemes_are_refused(tmp_path, url):
    with pytest.raises(InvalidInput, match="not supported"):
        mlops.connect(f"sqlite:///{tmp_path / 'r.db'}", artifacts=url)


def test_fsspec_artifact_stores_work(tmp_path):
    mlops.connect(f"sqlite:///{tmp_path / 'r.db'}", artifacts="memory://mlops-test-artifacts")
    (tmp_path / "note.txt").write_text("hello")
    with mlops.start_run() as run:
        mlops.log_artifact(tmp_path / "note.txt")
    assert mlops.download_artifact(run.id, "note.txt", tmp_path / "out").read_text() == "hello"


@pytest.mark.postgres
def test_a_shared_database_remembers_where_its_artifacts_are(pg_schema_url, tmp_path, monkeypatch):
    mlops.connect(pg_schema_url, artifacts=str(tmp_path / "team-artifacts"))
    mlops.disconnect()
    colleague = tmp_path / "colleague"
    colleague.mkdir()
    monkeypatch.chdir(colleague)
    assert mlops.connect(pg_schema_url).artifacts.root == str(tmp_path / "team-artifacts")
