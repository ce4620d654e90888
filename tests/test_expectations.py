"""Expectations on feature columns: parsing, checking, messages, JSON round trips."""

import json
import time

import numpy as np
import pandas as pd
import pytest

from mlops_jupyter.errors import GateFailed, InvalidInput
from mlops_jupyter.features.expectations import (
    CallableRule,
    DtypeRule,
    InRule,
    MaxRule,
    MeanBetweenRule,
    MinRule,
    NullsRule,
    Report,
    RuleResult,
    UniqueRule,
    callable_rule,
    check_all,
    parse_rule,
    parse_rules,
    rule_from_dict,
)


@pytest.fixture
def column():
    return pd.Series([1.0, 250.0, np.nan, 101.5, 5.0], index=[10, 17, 3, 44, 5])


def one(series, text):
    return parse_rule(text).check(series)


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, expected", [
    ("min=0", MinRule(0)),
    ("min>=0", MinRule(0)),
    ("max=1e6", MaxRule(1e6)),
    ("max<=1e6", MaxRule(1e6)),
    ("nulls<=0.01", NullsRule(0.01)),
    ("nulls<=1%", NullsRule(0.01)),
    ("not_null", NullsRule(0.0)),
    ("unique<=50", UniqueRule(50)),
    ("dtype=float64", DtypeRule("float64")),
    ("dtype=int", DtypeRule("int")),
    ("dtype=datetime", DtypeRule("datetime")),
    ("in=[a,b,c]", InRule(("a", "b", "c"))),
    ("in=['x y', 1, 2.5, \"q\"]", InRule(("x y", 1, 2.5, "q"))),
    ("mean_between=1,5", MeanBetweenRule(1.0, 5.0)),
    ("min=2026-01-01", MinRule("2026-01-01")),
])
def test_parse_rule(text, expected):
    assert parse_rule(text) == expected


def test_canonical_text():
    assert [r.text() for r in parse_rules("min>=0 max<=1e6 nulls<=1% not_null unique<=5 in=[a, 'b c', 3]")] == [
        "min=0", "max=1000000", "nulls<=0.01", "not_null", "unique<=5", "in=[a,'b c',3]"]
    assert parse_rule("nulls<=0").text() == "not_null"


def test_parse_rules_accepts_line_list_rules_and_callables():
    def positive(s):
        return s > 0

    rules = parse_rules(["min=0", MaxRule(3), positive])
    assert rules[:2] == [MinRule(0), MaxRule(3)]
    assert isinstance(rules[2], CallableRule) and rules[2].name == "positive"
    assert parse_rule("in=[a, 'b,c', \"it's\"]") == InRule(("a", "b,c", "it's"))
    assert parse_rule("in=a,b") == InRule(("a", "b"))
    assert parse_rules("min=0  in=[a, b]\tmax<=3") == [MinRule(0), InRule(("a", "b")), MaxRule(3)]


@pytest.mark.parametrize("text", [
    "min=abc", "max<=", "min", "min<=0", "max>=3", "nulls=0.1", "nulls<=1.5", "nulls<=-0.1",
    "unique<=2.5", "unique<=-1", "unique<=x", "dtype=foo", "in=[]", "in=[a", "in=[a,,b]",
    "in=[a,]", "in=['a' b]", "mean_between=5,1", "mean_between=1", "mean_between=a,b", "not_null=1",
    "max=nan", "min=inf",
    "=3", "",
])
def test_malformed_rules_name_the_rule(text):
    with pytest.raises(InvalidInput) as info:
        parse_rule(text)
    message = str(info.value)
    assert "\n" not in message
    assert repr(text.strip()) in message or "cannot read" in message


def test_unknown_rule_suggests_nearest():
    with pytest.raises(InvalidInput, match=r"'mx=1'.*did you mean max\?"):
        parse_rule("mx=1")
    with pytest.raises(InvalidInput, match="did you mean mean_between"):
        parse_rule("mean_betwen=1,2")
    with pytest.raises(InvalidInput, match="did you mean not_null"):
        parse_rule("notnull")
    with pytest.raises(InvalidInput, match="unknown expectation 'zzzz=1'"):
        parse_rule("zzzz=1")


def test_non_string_rules_are_refused():
    with pytest.raises(InvalidInput):
        parse_rules([3])
    with pytest.raises(InvalidInput):
        parse_rule(None)


# --------------------------------------------------------------------------- value rules

def test_min_and_max(column):
    result = one(column, "max=100")
    assert not result.passed and result.failing_rows == 2
    assert result.examples == ({"index": 17, "value": 250.0}, {"index": 44, "value": 101.5})
    assert result.observed == 250.0
    assert result.message() == "max=100 failed: 2 of 5 rows above 100 (e.g. 250.0 at index 17, 101.5 at index 44)"
    result = one(column, "min=2")
    assert not result.passed and result.failing_rows == 1 and result.observed == 1.0
    assert result.examples == ({"index": 10, "value": 1.0},)
    assert one(column, "min=1").passed and one(column, "max=250").passed
    assert one(column, "min=1").failing_rows == 0


def test_examples_are_capped_at_five():
    series = pd.Series(range(100))
    result = one(series, "max=10")
    assert result.failing_rows == 89 and len(result.examples) == 5
    assert [e["index"] for e in result.examples] == [11, 12, 13, 14, 15]
    assert "89 of 100 rows above 10" in result.message()


def test_thousands_separator_in_message():
    result = one(pd.Series(np.arange(1000)), "max=996")
    assert result.message().startswith("max=996 failed: 3 of 1,000 rows above 996 (e.g. 997 at index 997")


def test_nulls_ignored_by_value_rules():
    series = pd.Series([1.0, None, np.nan, 2.0])
    for text in ("min=1", "max=2", "in=[1,2]", "mean_between=1.5,1.5"):
        assert one(series, text).passed, text
    objects = pd.Series(["a", None, pd.NA, "b"], dtype=object)
    assert one(objects, "in=[a,b]").passed


def test_nulls_and_not_null():
    series = pd.Series([1.0, None, 3.0, np.nan], index=list("wxyz"))
    result = one(series, "not_null")
    assert not result.passed and result.failing_rows == 2 and result.observed == 0.5
    assert [e["index"] for e in result.examples] == ["x", "z"]
    assert result.message() == "not_null failed: 2 of 4 rows null (50.00%; none allowed) (e.g. index 'x', 'z')"
    assert one(series, "nulls<=0.5").passed
    failed = one(series, "nulls<=0.25")
    assert not failed.passed and failed.observed == 0.5 and failed.failing_rows == 2
    assert one(pd.Series(pd.to_datetime(["2026-01-01", None])), "not_null").failing_rows == 1
    assert one(pd.Series(["a", pd.NA], dtype="string"), "not_null").failing_rows == 1
    assert one(pd.Series([1.0, 2.0]), "not_null").passed


def test_unique():
    series = pd.Series(["a", "b", "a", None, "c"])
    result = one(series, "unique<=3")
    assert result.passed and result.observed == 3 and result.failing_rows is None
    result = one(series, "unique<=2")
    assert not result.passed and result.observed == 3 and result.failing_rows is None
    assert [e["value"] for e in result.examples] == ["a", "b", "c"]
    assert result.message() == "unique<=2 failed: 3 distinct values, at most 2 allowed (e.g. 'a', 'b', 'c')"


def test_in_compares_numbers_numerically_and_strings_exactly():
    assert one(pd.Series([1.0, 2.0, 1.0]), "in=[1,2]").passed
    assert one(pd.Series([1, 2, 2]), "in=[1.0,2.0]").passed
    result = one(pd.Series([1, 2, 3, 4, 3]), "in=[1,2]")
    assert result.failing_rows == 3
    assert result.examples == ({"index": 2, "value": 3}, {"index": 3, "value": 4}, {"index": 4, "value": 3})
    assert result.message() == "in=[1,2] failed: 3 of 5 rows not in [1,2] (e.g. 3 at index 2, 4 at index 3, 3 at index 4)"
    strings = pd.Series(["a", "b", "A", "1"])
    result = one(strings, "in=[a,b,1]")
    assert result.failing_rows == 2
    assert [e["value"] for e in result.examples] == ["A", "1"]
    assert one(strings, "in=[a,b,A,'1']").passed
    assert one(pd.Series(["x y", "q"]), "in=['x y', \"q\"]").passed
    assert one(pd.Series([1, 2]), "in=[a]").failing_rows == 2
    assert one(pd.Series(["a", "b"], dtype="category"), "in=[a]").failing_rows == 1


def test_mean_between():
    series = pd.Series([1.0, 2.0, 3.0, None])
    result = one(series, "mean_between=1.5,2.5")
    assert result.passed and result.observed == 2.0 and result.failing_rows is None
    result = one(series, "mean_between=3,4")
    assert not result.passed and result.observed == 2.0
    assert result.message() == "mean_between=3,4 failed: mean 2 is below the range [3, 4] over 3 non-null rows"
    assert "above" in one(series, "mean_between=0,1").message()
    assert not one(pd.Series(["a", "b"]), "mean_between=0,1").passed


@pytest.mark.parametrize("series, family, ok", [
    (pd.Series([1, 2]), "int", True),
    (pd.Series([1, 2]), "int64", True),
    (pd.Series([1, 2]), "float", False),
    (pd.Series([1.5]), "float", True),
    (pd.Series([1.5]), "float64", True),
    (pd.Series([1.5], dtype="float32"), "float64", False),
    (pd.Series([1.5], dtype="float32"), "float", True),
    (pd.Series([True, False]), "bool", True),
    (pd.Series([True, False]), "int", False),
    (pd.Series([1, 0]), "bool", False),
    (pd.Series(["a", "b"]), "string", True),
    (pd.Series(["a", "b"], dtype=object), "string", True),
    (pd.Series(["a", 1], dtype=object), "string", False),
    (pd.Series(["a"], dtype="string"), "string", True),
    (pd.Series([1.5]), "string", False),
    (pd.Series(pd.to_datetime(["2026-01-01"])), "datetime", True),
    (pd.Series(pd.to_datetime(["2026-01-01"])).dt.tz_localize("UTC"), "datetime", True),
    (pd.Series([1.5]), "datetime", False),
    (pd.Series([1, 2.5]), "numeric", True),
    (pd.Series(["a"], dtype="category"), "category", True),
])
def test_dtype_families(series, family, ok):
    result = DtypeRule(family).check(series)
    assert result.passed is ok
    assert result.observed == str(series.dtype)
    if not ok:
        assert result.message() == f"dtype={family} failed: column dtype is {series.dtype}, expected {family}"


def test_datetime_min_and_max_with_iso_dates():
    series = pd.Series(pd.to_datetime(["2025-12-31", "2026-02-01", None, "2027-06-01"]))
    result = one(series, "min=2026-01-01")
    assert not result.passed and result.failing_rows == 1
    assert result.examples == ({"index": 0, "value": "2025-12-31T00:00:00"},)
    assert result.observed == "2025-12-31T00:00:00"
    assert one(series, "max=2027-01-01").failing_rows == 1
    assert one(series, "min=2025-01-01").passed
    aware = series.dt.tz_localize("UTC")
    assert one(aware, "min=2026-01-01").failing_rows == 1
    assert one(aware, "max=2026-03-01T00:00:00+00:00").failing_rows == 1
    json.dumps(one(aware, "min=2026-01-01").as_dict())


def test_type_mismatch_fails_without_raising():
    dates = pd.Series(pd.to_datetime(["2026-01-01"]))
    result = one(dates, "min=0")
    assert not result.passed and "cannot be compared" in result.message()
    result = one(pd.Series([1.0]), "min=2026-01-01")
    assert not result.passed and "cannot be compared" in result.message()
    words = pd.Series(["3", "x", None], dtype=object)
    result = one(words, "min=0")
    assert result.failing_rows == 1 and result.examples == ({"index": 1, "value": "x"},)


def test_empty_series_passes_value_rules():
    empty = pd.Series([], dtype="float64")
    report = check_all(empty, "min=0 max=1 mean_between=1,2 nulls<=0 in=[1] unique<=0")
    assert report.passed
    for result in report.results:
        assert result.observed in (None, 0)
    assert check_all(empty, "min=0 max=1 mean_between=1,2").results[0].observed is None
    all_null = pd.Series([np.nan, np.nan])
    assert check_all(all_null, "min=0 max=1 mean_between=1,2 in=[3]").passed


# --------------------------------------------------------------------------- callables

def test_row_wise_callable():
    def is_even(s):
        return s % 2 == 0

    series = pd.Series([2, 3, 4, 5, 7], index=list("abcde"))
    result = callable_rule(is_even).check(series)
    assert not result.passed and result.failing_rows == 3
    assert result.examples == ({"index": "b", "value": 3}, {"index": "d", "value": 5}, {"index": "e", "value": 7})
    assert result.message() == "is_even failed: 3 of 5 rows failed (e.g. 3 at index 'b', 5 at index 'd', 7 at index 'e')"
    assert callable_rule(is_even).check(series[series % 2 == 0]).passed
    numpy_mask = callable_rule(lambda s: (s > 2).to_numpy(), name="gt2").check(series)
    assert numpy_mask.failing_rows == 1 and numpy_mask.rule == "gt2"


def test_aggregate_callable():
    rule = callable_rule(lambda s: s.std() < 1, name="low_spread")
    assert rule.check(pd.Series([1.0, 1.1, 0.9])).passed
    result = rule.check(pd.Series([1.0, 10.0, -5.0]))
    assert not result.passed and result.failing_rows is None
    assert result.message() == "low_spread failed: the function returned False for the column"
    assert callable_rule(lambda s: np.bool_(True)).check(pd.Series([1])).passed


def test_callable_errors():
    def broken(s):
        raise ValueError("boom")

    result = callable_rule(broken).check(pd.Series([1]))
    assert not result.passed and result.message() == "broken failed: the function raised ValueError: boom"
    with pytest.raises(InvalidInput, match="must return a bool"):
        callable_rule(lambda s: 3, name="three").check(pd.Series([1]))
    with pytest.raises(InvalidInput):
        callable_rule("not a function")


def test_callable_as_dict_records_source_but_cannot_be_rebuilt():
    def positive(s):
        return s > 0

    data = callable_rule(positive).as_dict()
    assert data["rule"] == "callable" and data["name"] == "positive"
    assert "return s > 0" in data["source"]
    json.dumps(data)
    with pytest.raises(InvalidInput, match="cannot be rebuilt"):
        rule_from_dict(data)
    assert callable_rule(len, name="builtin").as_dict()["source"] is None


# --------------------------------------------------------------------------- JSON and reports

@pytest.mark.parametrize("text", [
    "min=0", "min=-2.5", "max=1e6", "nulls<=0.01", "not_null", "unique<=50", "dtype=float64",
    "dtype=string", "in=[a,'b c',1,2.5,'3']", "mean_between=0.5,2", "min=2026-01-01", "max=2026-01-01T12:00:00",
])
def test_round_trip(text):
    rule = parse_rule(text)
    data = json.loads(json.dumps(rule.as_dict()))
    rebuilt = rule_from_dict(data)
    assert rebuilt == rule
    assert rebuilt.text() == rule.text()
    assert parse_rule(rule.text()) == rule


def test_rule_from_dict_refuses_garbage():
    for bad in ({}, {"rule": "nope"}, {"rule": "min"}, "min=0", {"rule": "unique", "max_count": "x"}):
        with pytest.raises(InvalidInput):
            rule_from_dict(bad)


def test_report(column):
    report = check_all(column, ["max=100", "min=0", "not_null", "unique<=10", lambda s: s.notna().all()])
    assert isinstance(report, Report) and not report.passed
    assert [r.rule for r in report.failures] == ["max=100", "not_null", "lambda"]
    assert all(isinstance(r, RuleResult) for r in report.results)
    lines = report.message().split("\n")
    assert len(lines) == 3 and lines[0].startswith("max=100 failed: 2 of 5 rows above 100")
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert data["passed"] is False and len(data["results"]) == 5
    assert data["results"][0]["examples"][0] == {"index": 17, "value": 250.0}
    with pytest.raises(GateFailed) as info:
        report.raise_if_failed("feature price v3")
    message = str(info.value)
    assert "\n" not in message and message.startswith("feature price v3 refused: 3 expectations failed: max=100 failed")
    assert len(info.value.verdicts) == 3 and info.value.verdicts[0]["rule"] == "max=100"
    passing = check_all(column, "min=0 max=1000")
    assert passing.passed and passing.failures == [] and passing.message() == "all 2 expectations passed"
    assert passing.raise_if_failed() is passing


def test_messages_are_one_line():
    series = pd.Series(["line\none", "x" * 200, None, 5], dtype=object, index=["a\nb", 1, 2, 3])
    rules = ["in=[q]", "not_null", "unique<=1", "dtype=float", "min=0", "mean_between=0,1",
             callable_rule(lambda s: s.isna(), name="nulls_only")]
    report = check_all(series, rules)
    assert len(report.failures) == len(rules)
    for result in report.results:
        assert "\n" not in result.message()
        json.dumps(result.as_dict(), allow_nan=False)
    assert report.message().count("\n") == len(rules) - 1


def test_json_safe_examples_for_odd_values():
    series = pd.Series([pd.Timedelta("1D"), pd.Timedelta("3D")])
    result = check_all(series, [callable_rule(lambda s: s < pd.Timedelta("2D"), name="short")]).results[0]
    assert result.examples == ({"index": 1, "value": "3 days 00:00:00"},)
    multi = pd.Series([1, 5], index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)]))
    result = one(multi, "max=2")
    assert result.examples == ({"index": ["b", 2], "value": 5},)
    json.dumps(result.as_dict(), allow_nan=False)


def test_check_all_accepts_plain_sequences():
    assert check_all([1, 2, 3], "min=1 max=3").passed
    with pytest.raises(InvalidInput):
        check_all(pd.DataFrame({"a": [1], "b": [2]}), "min=0")


def test_million_rows_is_fast():
    rng = np.random.default_rng(0)
    values = pd.Series(rng.integers(0, 50, 1_000_000).astype("float64"))
    values[::1000] = np.nan
    rules = parse_rules("min=0 max=49 nulls<=0.01 not_null unique<=50 dtype=float64 dtype=float "
                        "in=[" + ",".join(str(i) for i in range(50)) + "] mean_between=20,30")
    start = time.perf_counter()
    report = check_all(values, rules)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, elapsed
    assert [r.rule for r in report.failures] == ["not_null"]
    assert report.failures[0].failing_rows == 1000
