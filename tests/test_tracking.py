"""Runs, metrics, params, tags, datasets and artifacts through the Python API, on both databases."""

import math
import subprocess

import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mlops
from mlops_jupyter import InvalidInput, IntegrityError, NoActiveRun, NotFound


def test_a_run_block_finishes_and_records_what_was_logged(registry):
    with mlops.start_run("baseline", tags={"team": "vision"}) as run:
        mlops.log_params({"lr": 0.1, "model": "rf", "layers": [64, 32]})
        mlops.log_metric("auc", 0.91)
        mlops.log_metrics({"loss": 0.3, "acc": 0.8}, step=3)
    recorded = mlops.get_run(run.id)
    assert recorded["status"] == "FINISHED"
    assert recorded["name"] == "baseline"
    assert recorded["experiment"] == "default"
    assert recorded["user"] == "tester"
    assert recorded["end_time"] >= recorded["start_time"]
    assert recorded["params"] == {"lr": "0.1", "model": "rf", "layers": "[64, 32]"}
    assert recorded["metrics"] == {"auc": 0.91, "loss": 0.3, "acc": 0.8}
    assert recorded["tags"] == {"team": "vision"}
    assert mlops.active_run() is None


def test_a_block_that_raises_fails_the_run_and_leaves_no_run_active(registry):
    with pytest.raises(ZeroDivisionError):
        with mlops.start_run() as run:
            mlops.log_metric("x", 1)
            1 / 0
    assert mlops.get_run(run.id)["status"] == "FAILED"
    assert mlops.active_run() is None
    with mlops.start_run() as next_run:  # the next run starts cleanly, not as a child
        pass
    assert mlops.get_run(next_run.id)["parent_run_id"] is None


def test_interrupting_a_run_marks_it_killed(registry):
    with pytest.raises(KeyboardInterrupt):
        with mlops.start_run() as run:
            raise KeyboardInterrupt
    assert mlops.get_run(run.id)["status"] == "KILLED"


def test_a_run_started_inside_another_is_its_child_and_ends_with_it(registry):
    outer = mlops.start_run("outer")
    inner = mlops.start_run("inner")
    assert mlops.get_run(inner.id)["parent_run_id"] == outer.id
    mlops.end_run(run=outer)
    assert mlops.get_run(inner.id)["status"] == "FINISHED"
    assert mlops.active_run() is None


def test_metric_history_counts_steps_and_latest_is_the_highest_step(registry):
    with mlops.start_run() as run:
        for loss in (0.9, 0.5, 0.4):
            mlops.log_metric("loss", loss)
        mlops.log_metric("val", 2.0, step=10)
        mlops.log_metric("val", 9.0, step=4)  # a late point for an earlier step
    assert [(s, v) for s, v, _ in mlops.get_metric_history(run.id, "loss")] == [(0, 0.9), (1, 0.5), (2, 0.4)]
    assert mlops.get_run(run.id)["metrics"] == {"loss": 0.4, "val": 2.0}


def test_nan_and_infinite_metrics_are_kept(registry):
    with mlops.start_run() as run:
        mlops.log_metric("loss", float("nan"))
        mlops.log_metric("ratio", float("inf"))
        mlops.log_metric("count", np.int64(3))
    metrics = mlops.get_run(run.id)["metrics"]
    assert math.isnan(metrics["loss"]) and metrics["ratio"] == math.inf and metrics["count"] == 3.0


@pytest.mark.parametrize("value", ["0.5", None, True, [1], object()])
def test_non_numeric_metrics_are_refused_and_nothing_is_written(registry, value):
    with mlops.start_run():
        before = mlops.registry_counts()
        with pytest.raises(InvalidInput, match="must be a number"):
            mlops.log_metric("auc", value)
        assert mlops.registry_counts() == before


def test_params_are_fixed_once_logged(registry):
    with mlops.start_run() as run:
        mlops.log_param("lr", 0.1)
        mlops.log_param("lr", 0.1)  # the same value again is fine
        before = mlops.registry_counts()
        with pytest.raises(InvalidInput, match="'lr' is already '0.1'"):
            mlops.log_params({"depth": 3, "lr": 0.2})
        assert mlops.registry_counts() == before  # depth was not half-written either
    assert mlops.get_run(run.id)["params"] == {"lr": "0.1"}


def test_tags_can_change(registry):
    with mlops.start_run() as run:
        mlops.set_tag("stage", "draft")
        mlops.set_tags({"stage": "final", "owner": "ana"})
    assert mlops.get_run(run.id)["tags"] == {"stage": "final", "owner": "ana"}


def test_logging_without_a_run_says_how_to_start_one(registry):
    with pytest.raises(NoActiveRun, match="start_run"):
        mlops.log_metric("auc", 0.5)


def test_logging_to_an_unknown_run_is_not_found_and_writes_nothing(registry):
    before = mlops.registry_counts()
    with pytest.raises(NotFound):
        mlops.log_metric("auc", 0.5, run="0" * 32)
    with pytest.raises(NotFound):
        mlops.log_params({"a": 1}, run="f" * 32)
    with pytest.raises(NotFound):
        mlops.set_tags({"a": "b"}, run="e" * 32)
    assert mlops.registry_counts() == before


BAD_NAMES = ["../x", "/etc/passwd", "a/b", "a\\b", "nul\x00byte", ".hidden", "x" * 256, "", "   ", "tab\tname"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_path_like_names_are_refused_everywhere(registry, name):
    with mlops.start_run():
        before = mlops.registry_counts()
        for call in (
            lambda: mlops.set_experiment(name),
            lambda: mlops.start_run(name),
            lambda: mlops.start_run(experiment=name),
        ):
            with pytest.raises(InvalidInput):
                call()
        assert mlops.registry_counts() == before


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "nul\x00", "x" * 256, ""])
def test_bad_metric_param_and_tag_keys_are_refused(registry, key):
    with mlops.start_run():
        before = mlops.registry_counts()
        for call in (
            lambda: mlops.log_metric(key, 1.0),
            lambda: mlops.log_param(key, 1),
            lambda: mlops.set_tag(key, "v"),
        ):
            with pytest.raises(InvalidInput):
                call()
        assert mlops.registry_counts() == before


def test_grouped_keys_with_slashes_are_allowed(registry):
    with mlops.start_run() as run:
        mlops.log_metric("val/loss", 0.2)
    assert mlops.get_run(run.id)["metrics"] == {"val/loss": 0.2}


def test_dataset_fingerprints_follow_content(registry):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]})
    with mlops.start_run() as run:
        first = mlops.log_dataset(frame, "train")
        same = mlops.log_dataset(frame.copy(), "train-copy")
        changed = mlops.log_dataset(frame.assign(x=[1.0, 2.0, 3.5]), "train-edited")
        array = mlops.log_dataset(np.arange(12.0).reshape(4, 3), "features", context="evaluation")
    assert first == same != changed
    datasets = mlops.get_run(run.id)["datasets"]
    assert datasets[0]["schema"] == {"kind": "DataFrame", "shape": [3, 2], "columns": {"x": "float64", "city": pd.Series(["a"]).dtype.name}}
    assert datasets[0]["rows"] == 3
    assert datasets[3]["context"] == "evaluation" and datasets[3]["digest"] == array
    with mlops.start_run(), pytest.raises(InvalidInput, match="cannot fingerprint"):
        mlops.log_dataset({"not": "a frame"})


def test_artifacts_are_stored_once_by_content_and_verified_on_download(registry, tmp_path):
    (tmp_path / "report.txt").write_text("accuracy 0.9\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.csv").write_text("0,0\n1,1\n")
    (tmp_path / "plots" / "copy.txt").write_text("accuracy 0.9\n")
    with mlops.start_run() as run:
        assert mlops.log_artifact(tmp_path / "report.txt") == ["report.txt"]
        assert mlops.log_artifact(tmp_path / "plots") == ["plots/copy.txt", "plots/roc.csv"]
    recorded = {a["path"]: a for a in mlops.get_run(run.id)["artifacts"]}
    assert recorded["report.txt"]["sha256"] == recorded["plots/copy.txt"]["sha256"]
    blobs = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert len(blobs) == 2  # identical content is kept once
    out = mlops.download_artifact(run.id, "plots/roc.csv", tmp_path / "out")
    assert out.read_text() == "0,0\n1,1\n"

    blob = registry.artifacts.location(recorded["report.txt"]["sha256"])
    with open(blob, "w") as handle:
        handle.write("accuracy 1.0\n")
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        mlops.download_artifact(run.id, "report.txt", tmp_path / "out")


@pytest.mark.parametrize("path", ["../escape.txt", "/tmp/abs.txt", "a/../../b", "a\\b", "nul\x00"])
def test_artifact_paths_that_would_escape_the_store_are_refused(registry, tmp_path, path):
    (tmp_path / "f.txt").write_text("x")
    with mlops.start_run():
        before = mlops.registry_counts()
        with pytest.raises(InvalidInput):
            mlops.log_artifact(tmp_path / "f.txt", path)
        assert mlops.registry_counts() == before
    assert not (tmp_path / "artifacts").exists()
    assert not (tmp_path.parent / "escape.txt").exists()


def test_missing_artifact_file_is_not_found(registry, tmp_path):
    with mlops.start_run(), pytest.raises(NotFound):
        mlops.log_artifact(tmp_path / "nope.txt")


def test_runs_record_code_environment_and_git_commit(registry, tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "train.py").write_text("print(1)\n")
    subprocess.run(["git", "add", "train.py"], cwd=tmp_path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
        cwd=tmp_path,
        check=True,
    )
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    with mlops.start_run(code="x = 1\n") as run:
        pass
    recorded = mlops.get_run(run.id)
    assert recorded["code"] == "x = 1\n"
    assert len(recorded["code_hash"]) == 64
    assert recorded["git_commit"] == head
    assert recorded["packages"]["pandas"] == pd.__version__
    assert recorded["python_version"].count(".") == 2


def test_runs_can_be_found_by_id_prefix_or_unique_name(registry):
    with mlops.start_run("unique-name") as run:
        pass
    assert mlops.get_run(run.id[:8])["id"] == run.id
    assert mlops.get_run("unique-name")["id"] == run.id
    with pytest.raises(NotFound):
        mlops.get_run("no-such-run")


def test_every_write_is_audited(registry):
    with mlops.start_run() as run:
        mlops.log_params({"a": 1})
        mlops.set_tag("t", "v")
    actions = [entry["action"] for entry in mlops.audit(run.id)]
    assert actions == ["end", "set_tags", "log_params", "start"]
    assert all(entry["user"] == "tester" for entry in mlops.audit(run.id))


def test_search_returns_a_frame_with_metrics_params_and_tags(registry):
    for model, auc in (("rf", 0.9), ("lr", 0.7), ("rf", 0.85)):
        with mlops.start_run(model, tags={"team": "a"}):
            mlops.log_param("model", model)
            mlops.log_metric("auc", auc)
    found = mlops.search_runs("metrics.auc > 0.8 and params.model = 'rf'", order_by="metrics.auc desc")
    assert list(found["metrics.auc"]) == [0.9, 0.85]
    assert {"run_id", "status", "start_time", "params.model", "tags.team"} <= set(found.columns)
    assert str(found["start_time"].dtype).startswith("datetime64")
    assert mlops.search_runs("metrics.auc < 0").empty
    with pytest.raises(NotFound, match="did you mean 'default'"):
        mlops.search_runs(experiment="defualt")
    with pytest.raises(InvalidInput):
        mlops.search_runs("metrics.auc > 0.8; DROP TABLE runs")
    assert len(mlops.search_runs()) == 3


def test_experiments_group_runs(registry):
    mlops.set_experiment("churn")
    with mlops.start_run():
        pass
    with mlops.start_run(experiment="other"):
        pass
    assert mlops.search_runs(experiment="churn")["experiment"].tolist() == ["churn"]
    assert {(e["name"], e["runs"]) for e in mlops.list_experiments()} == {("churn", 1), ("other", 1)}


def test_switching_registries_with_a_run_open_is_refused(registry, tmp_path):
    with mlops.start_run("open") as run:
        with pytest.raises(InvalidInput, match="run open is still active"):
            mlops.connect(f"sqlite:///{tmp_path / 'other.db'}")
        mlops.log_metric("auc", 0.5)  # still logging into the first registry
    assert mlops.get_run(run.id)["metrics"] == {"auc": 0.5}
    assert not (tmp_path / "other.db").exists()
