"""The feature magics: define a feature in a cell, expect, browse, build a training set."""

import pytest
from IPython.core.error import UsageError

import mlops_jupyter as mlops

EVENTS = """
import pandas as pd
events = pd.DataFrame({
    "customer": [1, 1, 2, 2, 3],
    "at": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02", "2026-01-05", "2026-01-04"]),
    "amount": [10.0, 30.0, 5.0, 7.0, 100.0],
})
labels = pd.DataFrame({"customer": [1, 2, 9], "at": pd.to_datetime(["2026-01-03", "2026-01-01", "2026-01-09"]),
                       "churned": [1, 0, 1]})
"""
SPEND = 'events.assign(spend=events.groupby("customer")["amount"].cumsum())[["customer", "at", "spend"]]'


@pytest.fixture
def shell(shell):
    """The shared shell, with a small purchase table and labels in its namespace."""
    shell.run_cell(EVENTS)
    return shell


def define(shell, header="spend --entity customer --timestamp at", body=SPEND):
    return shell.run_cell_magic("mlops", f"feature {header}", body)


def test_a_cell_defines_a_feature_with_its_code_and_sources(shell, capsys):
    define(shell)
    assert "feature spend registered as version 1 (5 rows, float64)" in capsys.readouterr().out
    entry = mlops.get_feature("spend")
    assert entry["code"].strip() == SPEND
    assert [s["name"] for s in entry["sources"]] == ["events"]  # found from the names the cell uses
    define(shell)
    assert "unchanged: still version 1" in capsys.readouterr().out


def test_expect_then_a_bad_version_is_refused(shell):
    define(shell)
    report = shell.run_line_magic("mlops", "expect spend min=0 not_null")
    assert report.passed
    shell.run_cell("events['amount'] = -events['amount']")
    with pytest.raises(UsageError, match="min=0 failed"):
        define(shell)
    assert mlops.get_feature("spend")["version"] == 1
    with pytest.raises(UsageError, match="unknown rule 'mni'|did you mean"):
        shell.run_line_magic("mlops", "expect spend mni=0")
    with pytest.raises(UsageError, match="no feature 'nope'"):
        shell.run_line_magic("mlops", "expect nope min=0")


@pytest.mark.parametrize(
    "header, body, message",
    [
        ("spend --entity customer", SPEND, "needs --entity COL and --timestamp COL"),
        ("spend --entity customer --timestamp at --source missing", SPEND, "no variable 'missing'"),
        ("spend --entity customer --timestamp at", "42", "must be a DataFrame or Series"),
        ("spend --entity client --timestamp at", SPEND, "no column 'client'"),
        ("spend --entity customer --timestamp at", "1 / 0", "the cell raised ZeroDivisionError"),
    ],
)
def test_feature_cell_mistakes_register_nothing(shell, header, body, message):
    with pytest.raises(UsageError, match=message):
        define(shell, header, body)
    assert mlops.list_features() == []


def test_features_show_and_training_set(shell):
    define(shell)
    listed = shell.run_line_magic("mlops", "features --search spe")
    assert listed["name"].tolist() == ["spend"]
    shown = shell.run_line_magic("mlops", "feature show spend@1")
    assert shown["version"] == 1
    built = shell.run_line_magic("mlops", "training-set churn --entities labels --features spend --label churned")
    assert built["spend"].iloc[0] == 40.0 and built["spend"].isna().tolist() == [False, True, True]
    with pytest.raises(UsageError, match="no variable 'nothing'"):
        shell.run_line_magic("mlops", "training-set churn --entities nothing --features spend")
    with pytest.raises(UsageError, match="feature show NAME"):
        shell.run_line_magic("mlops", "feature spend")


def test_show_compares_a_version_with_the_one_before(shell, capsys):
    define(shell)
    shell.run_cell("events['amount'] = events['amount'] * 10")
    define(shell)
    capsys.readouterr()
    assert shell.run_line_magic("mlops", "feature show spend")["version"] == 2
    assert "v2 against v1: " in capsys.readouterr().out
