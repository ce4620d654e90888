"""The %mlops magics through a real IPython shell: every command, its options and its mistakes."""

import re

import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mlops


def line(shell, text):
    return shell.run_line_magic("mlops", text)


def cell(shell, header, body):
    """Run ``%%mlops HEADER`` over ``body`` as a notebook cell; return the ExecutionResult."""
    return shell.run_cell(f"%%mlops {header}\n{body}")


def test_help_lists_every_command_and_each_command_documents_its_options(shell, capsys):
    line(shell, "help")
    overview = capsys.readouterr().out
    for name in ("status", "connect", "experiment", "run", "log", "param", "runs", "compare", "register",
                 "promote", "models", "load", "help"):
        assert f"\n  {name} " in overview
    line(shell, "help promote")
    assert "--reason TEXT" in capsys.readouterr().out
    assert "status" in shell.find_line_magic("mlops").__doc__


@pytest.mark.parametrize(
    "text, message",
    [
        ("rnus", "unknown command 'rnus' (did you mean 'runs'?)"),
        ("log auc", "must be written key=value"),
        ("log auc=high", "metric 'auc' must be a number"),
        ("runs --limit many", "invalid int value"),
        ("promote m 1", "the following arguments are required: --to"),
        ("register nothing_here --name m", "no variable 'nothing_here'"),
        ("register 1+1 --name m", "is not a variable name"),
        ("load m", "say which version"),
        ("run", "run start [NAME]"),
        ("run end", "no active run"),
        ("help nope", "no command 'nope'"),
    ],
)
def test_mistakes_are_one_usage_error_and_change_nothing(shell, text, message):
    before = mlops.registry_counts()
    with pytest.raises(UsageError, match=re.escape(message)):
        line(shell, text)
    assert mlops.registry_counts() == before


def test_logging_without_a_run_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="no active run"):
        line(shell, "log auc=0.5")


def test_a_mistake_in_a_notebook_cell_shows_one_line_not_a_traceback(shell, capsys):
    result = shell.run_cell("%mlops promote nope 1 --to staging")
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert "UsageError: no registered model 'nope'" in err and "Traceback" not in err


def test_connect_experiment_and_status(shell, registry_url, tmp_path, capsys):
    line(shell, "experiment churn")
    info = line(shell, "status")
    assert info["experiment"] == "churn" and info["active_run"] is None
    other = f"sqlite:///{tmp_path / 'other.db'}"
    line(shell, f"connect {other}")
    assert mlops.current_registry().url == other
    assert (tmp_path / "other.db").exists()


def test_line_runs_span_cells_and_log_metrics_and_params(shell):
    started = line(shell, "run start spanning --tags team=a")
    with pytest.raises(UsageError, match="is active"):
        line(shell, "run start another")
    line(shell, "param lr=0.1 model=rf")
    shell.user_ns["auc"] = 0.93
    line(shell, "log auc=$auc")
    line(shell, "log loss={1 / 4} --step 7")
    line(shell, "run end")
    recorded = mlops.get_run(started.id)
    assert recorded["status"] == "FINISHED"
    assert recorded["params"] == {"lr": "0.1", "model": "rf"}
    assert recorded["metrics"] == {"auc": 0.93, "loss": 0.25}
    assert recorded["tags"] == {"team": "a"}
    assert mlops.get_metric_history(started.id, "loss")[0][0] == 7


def test_a_cell_run_records_the_cell_and_finishes(shell):
    result = cell(shell, "run first --tags stage=dev --no-autolog", "x = 21 * 2\nmlops.log_metric('answer', x)")
    assert result.success
    assert shell.user_ns["x"] == 42
    (found,) = mlops.search_runs(output="list")
    recorded = mlops.get_run(found["id"])
    assert (recorded["name"], recorded["status"], recorded["metrics"]) == ("first", "FINISHED", {"answer": 42.0})
    assert recorded["code"] == "x = 21 * 2\nmlops.log_metric('answer', x)\n"
    assert recorded["tags"] == {"stage": "dev"}
    assert mlops.active_run() is None


def test_a_failing_cell_fails_its_run_stops_run_all_and_leaves_no_run_active(shell, capsys):
    result = cell(shell, "run broken", "1 / 0")
    assert not result.success and isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "marked FAILED" in err
    (found,) = mlops.search_runs(output="list")
    assert found["status"] == "FAILED"
    assert mlops.active_run() is None
    assert cell(shell, "run next", "pass").success  # the next run is not blocked


def test_a_cell_run_logs_scikit_learn_fits(shell):
    shell.run_cell(
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
    )
    assert cell(shell, "run fit", "model = LogisticRegression(max_iter=2000).fit(X, y)").success
    (found,) = mlops.search_runs(output="list")
    assert found["params"]["estimator"] == "LogisticRegression"
    assert "training_score" in found["metrics"]


def test_runs_returns_a_frame_and_filters(shell):
    for auc in (0.7, 0.9):
        cell(shell, f"run r{auc} --no-autolog", f"mlops.log_metric('auc', {auc})")
    frame = line(shell, "runs --filter 'metrics.auc > 0.8' --sort 'metrics.auc desc'")
    assert list(frame["name"]) == ["r0.9"]
    assert len(line(shell, "runs --limit 1")) == 1
    with pytest.raises(UsageError, match="invalid filter"):
        line(shell, "runs --filter 'metrics.auc >'")
    with pytest.raises(UsageError, match="no experiment named 'nope'"):
        line(shell, "runs --experiment nope")


def test_assigning_a_table_command_gives_its_value(shell):
    cell(shell, "run only --no-autolog", "pass")
    result = shell.run_cell("df = %mlops runs")
    assert result.success and list(shell.user_ns["df"]["name"]) == ["only"]


def test_compare_puts_runs_side_by_side(shell):
    for lr in ("0.1", "0.01"):
        cell(shell, f"run lr{lr} --no-autolog", f"mlops.log_param('lr', {lr})\nfor i in range(3): mlops.log_metric('loss', 1 / (i + {lr}))")
    table = line(shell, "compare lr0.1 lr0.01")
    assert table.loc["params.lr"].tolist() == ["0.1", "0.01"]
    with pytest.raises(UsageError, match="at least two runs"):
        line(shell, "compare lr0.1")
    with pytest.raises(UsageError, match="no run with id"):
        line(shell, "compare lr0.1 nope")


def test_register_promote_models_and_load(shell):
    shell.run_cell(
        "from sklearn.datasets import load_diabetes\n"
        "from sklearn.linear_model import Ridge\n"
        "X, y = load_diabetes(return_X_y=True, as_frame=True)\n"
    )
    cell(shell, "run ridge", "model = Ridge(alpha=0.5).fit(X, y)\nmlops.log_metric('r2', model.score(X, y))")
    version = line(shell, "register model --name diabetes")
    assert version["version"] == 1 and version["run_id"] is not None  # the last run, as the cell ended it
    assert line(shell, "promote diabetes 1 --to staging --reason ok")["changed"]
    versions = line(shell, "models diabetes")
    assert versions["aliases"].tolist() == [["staging"]]
    assert line(shell, "models")["name"].tolist() == ["diabetes"]
    loaded = line(shell, "load diabetes@staging")
    assert loaded.alpha == 0.5
    with pytest.raises(UsageError, match="already holds this exact model"):
        line(shell, "register model --name diabetes")
    line(shell, "promote diabetes 1 --to production")
    cell(shell, "run worse --no-autolog", "mlops.log_metric('r2', -1.0)")
    shell.run_cell("worse = Ridge(alpha=1e6).fit(X, y)")
    line(shell, "register worse --name diabetes")
    before = mlops.registry_counts()
    with pytest.raises(UsageError, match="worse: r2 -1 vs"):
        line(shell, "promote diabetes 2 --to production")
    assert mlops.registry_counts() == before
    line(shell, "demote diabetes staging")
    with pytest.raises(UsageError, match="no version with alias 'staging'"):
        line(shell, "load diabetes@staging")


def test_settings_are_traitlets(shell):
    shell.run_line_magic("config", "MlopsMagics.autolog = False")
    shell.run_cell("from sklearn.linear_model import Ridge\nimport numpy as np")
    cell(shell, "run quiet", "Ridge().fit(np.eye(3), [1, 2, 3])")
    (found,) = mlops.search_runs(output="list")
    assert found["params"] == {}
    shell.run_line_magic("config", "MlopsMagics.default_experiment = 'exp2'")
    cell(shell, "run elsewhere", "pass")
    assert mlops.search_runs(experiment="exp2")["name"].tolist() == ["elsewhere"]


def test_changing_a_setting_during_a_run_does_not_disturb_it(shell):
    started = line(shell, "run start long")
    shell.run_line_magic("config", "MlopsMagics.display_limit = 5")
    shell.run_line_magic("config", "MlopsMagics.default_experiment = 'later'")
    line(shell, "log auc=0.5")
    line(shell, "run end")
    assert mlops.get_run(started.id)["metrics"] == {"auc": 0.5}
    assert mlops.active_experiment() == "later"
