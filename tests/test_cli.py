"""The `mlops` command: every subcommand, its errors, and the README's copy of its --help."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlops_jupyter as mlops
from mlops_jupyter import cli

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = ["runs", "show", "experiments", "models", "history", "promote", "demote", "audit", "convert", "pipeline",
            "pipeline run", "pipeline export", "pipeline verify", "demo",
            "serve", "token", "token create", "token list", "token revoke"]


def run_cli(capsys, *args):
    """``(exit status, stdout, stderr)`` of ``mlops ARGS`` run in this process."""
    try:
        status = cli.main(list(args))
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def filled(registry, registry_url):
    """Two runs and a model 'churn' with v1 in production (auc 0.9) and a worse v2."""
    for name, auc in (("good", 0.9), ("worse", 0.7)):
        with mlops.start_run(name, experiment="churn"):
            mlops.log_params({"model": name})
            mlops.log_metric("auc", auc)
            mlops.register_model({"name": name, "weights": [auc]}, "churn")
    mlops.promote("churn", 1, to="production")
    mlops.disconnect()
    return registry_url


def test_the_demo_tours_the_whole_registry(tmp_path):
    registry = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = subprocess.run(
        [sys.executable, "-m", "mlops_jupyter.cli", "demo", "--registry", registry],
        capture_output=True, text=True, timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    assert "same as the run's" in demo.stdout
    assert re.search(r"production +v- -> v1", demo.stdout)
    mlops.connect(registry)
    assert mlops.list_models()[0]["aliases"] == {"staging": 1, "production": 1}
    assert len(mlops.search_runs(experiment="demo")) == 3
    again = subprocess.run(
        [sys.executable, "-m", "mlops_jupyter.cli", "demo", "--registry", registry],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "already version 1" in again.stdout


def test_runs_lists_filters_and_sorts(filled, capsys):
    status, out, _ = run_cli(capsys, "runs", "--registry", filled, "--sort", "metrics.auc", "--filter", "params.model != 'x'")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run", "name", "experiment", "status", "started", "metrics.auc", "params.model"]
    assert [line.split()[1] for line in lines[1:]] == ["worse", "good"]


def test_runs_as_json_and_csv(filled, capsys):
    status, out, _ = run_cli(capsys, "runs", "--registry", filled, "--format", "json", "--limit", "1", "--sort=-metrics.auc")
    assert status == 0
    (run,) = json.loads(out)
    assert run["metrics"] == {"auc": 0.9} and run["params"] == {"model": "good"}
    status, out, _ = run_cli(capsys, "runs", "--registry", filled, "--format", "csv", "--experiment", "churn")
    assert status == 0 and out.splitlines()[0] == "run,name,experiment,status,started,metrics.auc"
    assert len(out.splitlines()) == 3


def test_show_prints_everything_about_a_run(filled, capsys):
    status, out, _ = run_cli(capsys, "show", "good", "--registry", filled)
    assert status == 0
    assert re.search(r"^status +FINISHED$", out, re.M)
    assert re.search(r"^  auc +0.9$", out, re.M)
    status, out, _ = run_cli(capsys, "show", "good", "--registry", filled, "--format", "json")
    assert json.loads(out)["params"] == {"model": "good"}


def test_models_versions_history_and_experiments(filled, capsys):
    _, out, _ = run_cli(capsys, "models", "--registry", filled)
    assert re.search(r"^churn +2 +production=v1 +tester$", out, re.M)
    _, out, _ = run_cli(capsys, "models", "churn", "--registry", filled)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["2", "1"]
    _, out, _ = run_cli(capsys, "history", "churn", "--registry", filled)
    assert re.search(r"production +- +v1 +tester", out)
    _, out, _ = run_cli(capsys, "experiments", "--registry", filled)
    assert re.search(r"^churn +2 +tester$", out, re.M)


def test_promote_reports_gates_and_refuses_a_worse_version(filled, capsys):
    status, out, err = run_cli(capsys, "promote", "churn", "2", "--to", "production", "--registry", filled)
    assert status == 1 and out == ""
    assert err.startswith("mlops: error: cannot promote churn v2 to production: worse: auc 0.7 vs 0.9")
    assert err.count("\n") == 1
    status, out, err = run_cli(capsys, "promote", "churn", "2", "--to", "production", "--force", "--registry", filled)
    assert status == 1 and "needs a reason" in err
    status, out, _ = run_cli(
        capsys, "promote", "churn", "2", "--to", "production", "--force", "--reason", "hotfix", "--registry", filled
    )
    assert status == 0 and "churn@production: v1 -> v2" in out and "FAILED (forced)" in out
    status, out, _ = run_cli(capsys, "demote", "churn", "production", "--registry", filled)
    assert status == 0 and "v2 -> nobody" in out
    _, out, _ = run_cli(capsys, "audit", "--object", "churn", "--registry", filled, "--limit", "2")
    assert [line.split()[3] for line in out.splitlines()[1:]] == ["demote", "promote"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "nope"], "no run with id, id prefix or name 'nope'"),
        (["runs", "--filter", "metrics.auc >"], "invalid filter at column 14"),
        (["runs", "--filter", "auc > 1"], "unknown attribute 'auc'"),
        (["runs", "--experiment", "chrun"], "did you mean 'churn'"),
        (["models", "chrun"], "did you mean 'churn'"),
        (["promote", "churn", "9", "--to", "staging"], "no version 9"),
        (["promote", "churn", "x", "--to", "staging"], "positive whole number"),
        (["promote", "churn", "1", "--to", "../prod"], "must not contain '/'"),
        (["history", "nope"], "no registered model 'nope'"),
        (["runs", "--limit", "0"], "limit"),
    ],
)
def test_mistakes_print_one_line_and_change_nothing(filled, capsys, args, message):
    mlops.connect(filled)
    before = mlops.registry_counts()
    mlops.disconnect()
    status, out, err = run_cli(capsys, *args, "--registry", filled)
    assert status == 1
    assert err.startswith("mlops: error: ") and message in err and err.count("\n") == 1
    mlops.connect(filled)
    assert mlops.registry_counts() == before


def test_argument_errors_exit_2_with_usage(capsys):
    status, _, err = run_cli(capsys, "promote", "churn", "1")
    assert status == 2 and "the following arguments are required: --to" in err
    status, _, err = run_cli(capsys, "launch")
    assert status == 2 and "invalid choice: 'launch'" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_a_registry_url(capsys, command):
    status, out, _ = run_cli(capsys, *command.split(), "--help")
    assert status == 0 and "--registry URL" in out


def help_text(capsys, command):
    status, out, _ = run_cli(capsys, *command.split(), "--help")
    assert status == 0
    return out.rstrip("\n") + "\n"


def test_the_readme_command_reference_matches_help(capsys):
    """The README quotes each command's --help; regenerate with MLOPS_UPDATE_README=1."""
    text = README.read_text()
    pattern = re.compile(r"(<!-- help: ?([\w ]*) -->\n```text\n)(.*?)(```)", re.S)
    quoted = {match.group(2): match.group(3) for match in pattern.finditer(text)}
    expected = {command: help_text(capsys, command) for command in ["", *COMMANDS]}
    if os.environ.get("MLOPS_UPDATE_README"):
        README.write_text(pattern.sub(lambda m: m.group(1) + expected[m.group(2)] + m.group(4), text))
        quoted = expected
    assert quoted == expected
