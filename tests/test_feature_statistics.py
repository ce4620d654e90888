"""Feature statistics: describe, histogram_on, compare (PSI), two-sample KS."""

import json
import math
import re
import time

import numpy as np
import pandas as pd
import pytest

from mlops_jupyter.features.statistics import (
    PSI_EPSILON,
    QUANTILES,
    compare,
    describe,
    histogram_on,
    kolmogorov_sf,
    ks_statistic,
    psi,
    psi_band,
)


def _roundtrip(d):
    text = json.dumps(d, allow_nan=False)  # raises on NaN/inf; numpy types raise TypeError
    assert json.loads(text) == d
    return json.loads(text)


# ------------------------------------------------------------------ describe: numeric


def test_numeric_exact_values():
    s = pd.Series([1.0, 2.0, np.nan, 4.0, 3.0, None, 10.0])
    d = describe(s, bins=3)
    assert d["kind"] == "numeric"
    assert (d["rows"], d["count"], d["nulls"], d["distinct"]) == (7, 5, 2, 5)
    assert d["null_fraction"] == pytest.approx(2 / 7)
    assert d["min"] == 1.0 and d["max"] == 10.0
    vals = np.array([1.0, 2.0, 4.0, 3.0, 10.0])
    assert d["mean"] == pytest.approx(vals.mean())
    assert d["std"] == pytest.approx(vals.std(ddof=1))
    assert list(d["quantiles"]) == [str(q) for q in QUANTILES]
    for q in QUANTILES:
        assert d["quantiles"][str(q)] == pytest.approx(float(np.quantile(vals, q)))
    assert d["histogram"]["edges"] == pytest.approx([1.0, 4.0, 7.0, 10.0])
    assert d["histogram"]["counts"] == [3, 1, 1]  # [1,4) -> 1,2,3 ; [4,7) -> 4 ; [7,10] -> 10
    assert sum(d["histogram"]["counts"]) == d["count"]
    _roundtrip(d)


def test_numeric_types_are_plain_python():
    d = describe(pd.Series(np.arange(100, dtype="int32")), bins=7)
    assert d["kind"] == "numeric"
    for key in ("count", "nulls", "distinct"):
        assert type(d[key]) is int
    for key in ("min", "max", "mean", "std"):
        assert type(d[key]) is float
    assert all(type(c) is int for c in d["histogram"]["counts"])
    assert all(type(e) is float for e in d["histogram"]["edges"])
    assert len(d["histogram"]["edges"]) == 8 and len(d["histogram"]["counts"]) == 7
    assert sum(d["histogram"]["counts"]) == 100
    _roundtrip(d)


def test_nullable_integer_and_list_input():
    d = describe(pd.Series([1, None, 3], dtype="Int64"))
    assert (d["kind"], d["count"], d["nulls"], d["mean"]) == ("numeric", 2, 1, 2.0)
    d2 = describe([1.5, 2.5, None])
    assert (d2["kind"], d2["count"], d2["nulls"]) == ("numeric", 2, 1)


def test_infinite_values_are_counted_separately():
    d = describe(pd.Series([1.0, 2.0, np.inf, -np.inf, 3.0]))
    assert d["count"] == 5 and d["infinite"] == 2
    assert (d["min"], d["max"]) == (1.0, 3.0)
    assert sum(d["histogram"]["counts"]) == 3
    _roundtrip(d)


def test_constant_series_one_bin_std_zero():
    d = describe(pd.Series([5.0] * 10))
    assert d["std"] == 0.0 and d["mean"] == 5.0 and d["min"] == d["max"] == 5.0
    assert d["histogram"] == {"edges": [5.0, 5.0], "counts": [10]}
    assert d["distinct"] == 1
    _roundtrip(d)
    single = describe(pd.Series([7.0]))
    assert single["std"] is None and single["histogram"]["counts"] == [1]


def test_all_null_numeric():
    d = describe(pd.Series([np.nan, np.nan, np.nan]))
    assert d["kind"] == "numeric"
    assert (d["count"], d["nulls"], d["null_fraction"], d["distinct"]) == (0, 3, 1.0, 0)
    assert d["min"] is None and d["mean"] is None and d["std"] is None
    assert all(v is None for v in d["quantiles"].values())
    assert d["histogram"] == {"edges": [], "counts": []}
    _roundtrip(d)


def test_empty_series():
    for s in (pd.Series([], dtype="float64"), pd.Series([], dtype=object)):
        d = describe(s)
        assert (d["rows"], d["count"], d["nulls"], d["null_fraction"], d["distinct"]) == (0, 0, 0, 0.0, 0)
        _roundtrip(d)
    assert describe(pd.Series([], dtype=object))["top"] == []


def test_timedelta_described_in_seconds():
    d = describe(pd.Series(pd.to_timedelta([1, 2, 3, None], unit="min")))
    assert (d["kind"], d["unit"], d["count"], d["nulls"]) == ("numeric", "seconds", 3, 1)
    assert (d["min"], d["max"], d["mean"]) == (60.0, 180.0, 120.0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        describe(pd.Series([1.0]), bins=0)


# ------------------------------------------------------------------ describe: other kinds


def test_categorical_top_and_other():
    s = pd.Series(["a", "b", "a", None, "c", "a", "b", "d"])
    d = describe(s, top=2)
    assert d["kind"] == "categorical"
    assert (d["count"], d["nulls"], d["distinct"]) == (7, 1, 4)
    assert d["top"] == [["a", 3], ["b", 2]]
    assert d["other_count"] == 2
    _roundtrip(d)


def test_categorical_dtype_ignores_unused_categories():
    s = pd.Series(pd.Categorical(["x", "y", "x"], categories=["x", "y", "z"]))
    d = describe(s)
    assert d["kind"] == "categorical" and d["distinct"] == 2
    assert d["top"] == [["x", 2], ["y", 1]] and d["other_count"] == 0


def test_unhashable_values_fall_back_to_text():
    d = describe(pd.Series([[1, 2], [1, 2], {"a": 1}]))
    assert d["kind"] == "categorical" and d["top"][0] == ["[1, 2]", 2]
    _roundtrip(d)


def test_boolean():
    d = describe(pd.Series([True, False, True, True]))
    assert d["kind"] == "boolean"
    assert d["top"] == [[True, 3], [False, 1]] and d["other_count"] == 0
    assert d["true_fraction"] == 0.75
    obj = describe(pd.Series([True, None, False], dtype=object))
    assert (obj["kind"], obj["count"], obj["nulls"], obj["true_fraction"]) == ("boolean", 2, 1, 0.5)
    nullable = describe(pd.Series([True, None, True], dtype="boolean"))
    assert (nullable["kind"], nullable["top"]) == ("boolean", [[True, 2]])
    _roundtrip(obj)


def test_datetime():
    s = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-03", None, "2024-01-02", "2024-01-05"]))
    d = describe(s, bins=4)
    assert d["kind"] == "datetime"
    assert (d["count"], d["nulls"], d["distinct"]) == (4, 1, 4)
    assert d["min"] == "2024-01-01T00:00:00" and d["max"] == "2024-01-05T00:00:00"
    assert d["histogram"]["edges"] == [f"2024-01-0{i}T00:00:00" for i in range(1, 6)]
    assert d["histogram"]["counts"] == [1, 1, 1, 1]
    assert d["quantiles"]["0.5"] == "2024-01-02T12:00:00"
    _roundtrip(d)


def test_datetime_tz_aware_and_constant():
    s = pd.Series(pd.date_range("2024-03-01", periods=5, freq="h", tz="Europe/Paris"))
    d = describe(s)
    assert d["min"] == "2024-03-01T00:00:00+01:00" and d["max"] == "2024-03-01T04:00:00+01:00"
    assert pd.Timestamp(d["histogram"]["edges"][0]) == s.iloc[0]
    assert sum(d["histogram"]["counts"]) == 5
    c = describe(pd.Series(pd.to_datetime(["2024-01-01"] * 3)))
    assert c["histogram"] == {"edges": ["2024-01-01T00:00:00"] * 2, "counts": [3]}


def test_all_null_datetime_and_categorical():
    d = describe(pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns]"))
    assert d["kind"] == "datetime" and d["count"] == 0 and d["min"] is None
    c = describe(pd.Series([None, None], dtype=object))
    assert c["count"] == 0 and c["top"] == [] and c["other_count"] == 0
    _roundtrip(d)
    _roundtrip(c)


@pytest.mark.parametrize("kind", ["numeric", "categorical", "boolean", "datetime"])
def test_fast_on_a_million_rows(kind):
    rng = np.random.default_rng(1)
    n = 1_000_000
    s = {
        "numeric": lambda: pd.Series(rng.normal(size=n)),
        "categorical": lambda: pd.Series(rng.choice(["a", "b", "c", "d", "e"], n)),
        "boolean": lambda: pd.Series(rng.random(n) < 0.3),
        "datetime": lambda: pd.Series(pd.to_datetime(rng.integers(1_600_000_000, 1_700_000_000, n), unit="s")),
    }[kind]()
    start = time.perf_counter()
    d = describe(s)
    assert time.perf_counter() - start < 2.0
    assert d["kind"] == kind and d["count"] == n
    json.dumps(d, allow_nan=False)


# ------------------------------------------------------------------ histogram_on


def test_histogram_on_matches_describe_and_clips():
    rng = np.random.default_rng(2)
    s = pd.Series(rng.normal(size=5000))
    d = describe(s)
    assert histogram_on(s, d["histogram"]["edges"]) == d["histogram"]["counts"]
    assert histogram_on([-100.0, 0.5, 100.0], [0.0, 1.0, 2.0]) == [2, 1]
    assert histogram_on([-100.0, 0.5, 2.0, 100.0], [0.0, 1.0, 2.0], clip=False) == [1, 1]
    assert histogram_on([1.0], [0.0]) == []


def test_histogram_on_datetime_edges():
    s = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-09"]))
    d = describe(s, bins=3)
    assert histogram_on(s, d["histogram"]["edges"]) == d["histogram"]["counts"]
    later = pd.Series(pd.to_datetime(["2024-02-01", "2024-02-02"]))
    assert histogram_on(later, d["histogram"]["edges"]) == [0, 0, 2]


# ------------------------------------------------------------------ PSI and compare


def test_psi_basics():
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-12)  # proportions only
    assert psi([0, 0], [1, 1]) is None
    # an empty bin is floored at epsilon: finite, large
    big = psi([100, 0], [50, 50])
    p, q = np.array([1.0, PSI_EPSILON]), np.array([0.5, 0.5])
    assert big == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0, None)] == [
        "stable", "stable", "moderate shift", "moderate shift", "major shift", "major shift", None,
    ]


def test_compare_identical_numeric_is_stable():
    rng = np.random.default_rng(3)
    s = pd.Series(rng.normal(10, 2, size=10_000))
    d = describe(s)
    c = compare(d, d)
    assert c["psi"] == pytest.approx(0.0, abs=1e-12)
    assert c["psi_band"] == "stable" and c["psi_method"] == "approximate"
    assert c["mean_shift"] == 0.0 and c["mean_shift_unit"] == "std" and c["std_ratio"] == 1.0
    assert c["null_fraction_change"] == 0.0
    assert c["summary"] == "mean +0.00σ, PSI 0.00 (stable)"
    _roundtrip(c)


def test_compare_shifted_normal_is_major_shift():
    rng = np.random.default_rng(4)
    old_s = pd.Series(rng.normal(0, 1, size=20_000))
    new_s = pd.Series(rng.normal(1, 1, size=20_000))
    old, new = describe(old_s), describe(new_s)
    approx = compare(old, new)
    exact = compare(old, new, new_counts_on_old_edges=histogram_on(new_s, old["histogram"]["edges"]))
    assert exact["psi_method"] == "exact"
    for c in (approx, exact):
        assert c["psi"] > 0.5 and c["psi_band"] == "major shift"
        assert c["mean_shift"] == pytest.approx(1.0, abs=0.05)
        assert c["std_ratio"] == pytest.approx(1.0, abs=0.05)
        assert re.fullmatch(r"mean \+(0\.9\d|1\.0\d)σ, PSI \d+\.\d\d \(major shift\)", c["summary"])
    # the uniform-density approximation is close to the exact PSI
    assert approx["psi"] == pytest.approx(exact["psi"], rel=0.15)


def test_compare_same_distribution_new_sample_is_stable():
    rng = np.random.default_rng(5)
    a = pd.Series(rng.normal(size=50_000))
    b = pd.Series(rng.normal(size=50_000))
    da, db = describe(a), describe(b)
    assert compare(da, db)["psi_band"] == "stable"
    exact = compare(da, db, new_counts_on_old_edges=histogram_on(b, da["histogram"]["edges"]))
    assert exact["psi"] < 0.01 and exact["psi_band"] == "stable"


def test_compare_new_counts_must_match_bins():
    d = describe(pd.Series([1.0, 2.0, 3.0]), bins=3)
    with pytest.raises(ValueError):
        compare(d, d, new_counts_on_old_edges=[1, 2])


def test_compare_constant_old():
    const = describe(pd.Series([5.0] * 100))
    same = compare(const, const)
    assert same["mean_shift"] == 0.0 and same["mean_shift_unit"] == "absolute"
    assert same["std_ratio"] == 1.0 and same["psi"] == 0.0 and same["psi_band"] == "stable"
    moved = compare(const, describe(pd.Series([7.0] * 100)))
    assert moved["mean_shift"] == 2.0 and moved["mean_shift_unit"] == "absolute"
    assert moved["psi_band"] == "major shift"
    assert moved["summary"] == f"mean +2, PSI {moved['psi']:.2f} (major shift)"
    spread = compare(const, describe(pd.Series(np.linspace(0, 10, 100))))
    assert spread["std_ratio"] is None and spread["psi_band"] == "major shift"
    _roundtrip(spread)


def test_compare_null_fraction_and_empty():
    old = describe(pd.Series([1.0, 2.0, 3.0, 4.0]))
    new = describe(pd.Series([1.0, 2.0, None, None]))
    c = compare(old, new)
    assert c["null_fraction_change"] == 0.5
    assert "nulls +50.0pp" in c["summary"]
    empty = compare(old, describe(pd.Series([np.nan, np.nan])))
    assert empty["psi"] is None and empty["psi_band"] is None and empty["mean_shift"] is None
    assert "PSI n/a" in empty["summary"]
    _roundtrip(empty)


def test_compare_categorical_new_value():
    old = describe(pd.Series(["a"] * 50 + ["b"] * 50))
    new = describe(pd.Series(["a"] * 40 + ["b"] * 40 + ["c"] * 20))
    c = compare(old, new)
    assert c["kind"] == "categorical"
    assert c["new_values"] == ["c"] and c["missing_values"] == []
    assert c["psi"] > 0.25 and c["psi_band"] == "major shift"
    assert c["summary"].endswith("(major shift), 1 new value")
    same = compare(old, old)
    assert same["psi"] == 0.0 and same["new_values"] == [] and same["summary"] == "PSI 0.00 (stable)"
    _roundtrip(c)


def test_compare_categorical_uses_other_bucket():
    old = describe(pd.Series(list("aaaabbbcd")), top=2)  # top a, b; other 2
    new = describe(pd.Series(list("aaaabbbcd")), top=2)
    assert compare(old, new)["psi"] == 0.0
    # 1 and "1" and true are different values
    o = describe(pd.Series(["1", "1", "x"], dtype=object))
    n = describe(pd.Series([1, 1, "x"], dtype=object))
    assert compare(o, n)["new_values"] == [1]


def test_compare_boolean():
    old = describe(pd.Series([True] * 50 + [False] * 50))
    new = describe(pd.Series([True] * 90 + [False] * 10))
    c = compare(old, new)
    assert c["kind"] == "boolean" and c["true_fraction_change"] == pytest.approx(0.4)
    assert c["psi_band"] == "major shift" and c["summary"].startswith("true +40.0pp, PSI")


def test_compare_datetime():
    rng = np.random.default_rng(6)
    base = pd.Timestamp("2024-01-01")
    old_s = pd.Series(base + pd.to_timedelta(rng.integers(0, 86400 * 30, 5000), unit="s"))
    new_s = pd.Series(base + pd.to_timedelta(rng.integers(86400 * 20, 86400 * 50, 5000), unit="s"))
    old, new = describe(old_s), describe(new_s)
    assert compare(old, old)["psi"] == pytest.approx(0.0, abs=1e-12)
    c = compare(old, new)
    assert c["psi_band"] == "major shift"
    exact = compare(old, new, new_counts_on_old_edges=histogram_on(new_s, old["histogram"]["edges"]))
    assert exact["psi_band"] == "major shift"
    _roundtrip(c)


def test_compare_kind_changed():
    c = compare(describe(pd.Series([1.0, 2.0])), describe(pd.Series(["a", "b"])))
    assert c["kind_changed"] is True and c["psi"] is None
    assert c["summary"] == "kind changed: numeric → categorical"


# ------------------------------------------------------------------ KS


def test_ks_identical_and_disjoint():
    a = np.arange(100.0)
    assert ks_statistic(a, a) == (0.0, 1.0)
    r = ks_statistic(np.arange(50.0), np.arange(100.0, 180.0))
    assert r.statistic == 1.0 and r.pvalue < 1e-10
    # NaNs dropped; pandas input; ties handled
    r2 = ks_statistic(pd.Series([1.0, 1.0, 2.0, np.nan]), [1.0, 2.0, 2.0])
    assert r2.statistic == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        ks_statistic([], [1.0])


def test_ks_statistic_by_hand():
    # F_a jumps at 1,2,3; F_b at 2.5, 3.5: max gap at 2 (2/3 - 0)
    assert ks_statistic([1.0, 2.0, 3.0], [2.5, 3.5]).statistic == pytest.approx(2 / 3)


def test_kolmogorov_series():
    # known values of the Kolmogorov distribution's survival function
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(1.36) == pytest.approx(0.0494, abs=2e-4)  # the 5% critical value
    assert kolmogorov_sf(1.63) == pytest.approx(0.0098, abs=2e-4)  # 1%
    # both branches agree at the switch point
    assert kolmogorov_sf(1.0 - 1e-12) == pytest.approx(kolmogorov_sf(1.0), abs=1e-10)
    assert 0.0 <= kolmogorov_sf(5.0) < 1e-20


@pytest.mark.parametrize(
    "n_a,n_b,shift",
    [(200, 200, 0.0), (200, 200, 0.2), (200, 300, 0.15), (1000, 700, 0.1), (3000, 3000, 0.05), (500, 500, 1.0)],
)
def test_ks_against_scipy(n_a, n_b, shift):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n_a + n_b)
    a = rng.normal(size=n_a)
    b = rng.normal(shift, size=n_b)
    ours = ks_statistic(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-3)
    if not math.isclose(ref.pvalue, 0.0, abs_tol=1e-12):
        assert ours.pvalue > 0


def test_ks_against_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    a = rng.integers(0, 10, 400).astype(float)
    b = rng.integers(1, 11, 300).astype(float)
    ours = ks_statistic(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-3)
