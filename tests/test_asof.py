"""Point-in-time joins: at-or-before semantics, nothing dropped, validation, and a brute-force cross-check."""

import numpy as np
import pandas as pd
import pytest

from mlops_jupyter.errors import InvalidInput
from mlops_jupyter.features import asof
from mlops_jupyter.features.asof import point_in_time_join

T = pd.Timestamp


def ts(*values, tz=None):
    return pd.to_datetime(list(values)).tz_localize(tz) if tz else pd.to_datetime(list(values))


@pytest.fixture(params=["sorted_key", "merge_asof"])
def path(request, monkeypatch):
    """Run a test on both search paths (the merge_asof one is the overflow fallback)."""
    if request.param == "merge_asof":
        monkeypatch.setattr(asof, "_combined_key_plan", lambda *args: None)
    return request.param


def join(labels, features, **kwargs):
    return point_in_time_join(labels, features, entity="e", timestamp="t", **kwargs)


def test_at_or_before_ties_and_rows_without_earlier_value(path):
    labels = pd.DataFrame({
        "e": [1, 1, 1, 2, 3],
        "t": ts("2024-01-01", "2024-01-02", "2024-01-04", "2024-01-03", "2024-01-09"),
        "y": [0, 1, 0, 1, 1],
    })
    feature = pd.DataFrame({
        "e": [1, 1, 2, 1],
        "t": ts("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"),
        "x": [10.0, 20.0, 30.0, 40.0],
    })
    out = join(labels, {"x": feature})
    # 1@01-01: nothing earlier; 1@01-02: exact tie counts; 1@01-04: 01-03 value, not 01-05;
    # 2@01-03: only a later value; entity 3: no values at all.
    assert out["x"].tolist()[1:3] == [10.0, 20.0]
    assert out["x"].isna().tolist() == [True, False, False, True, True]
    assert len(out) == len(labels)
    pd.testing.assert_frame_equal(out[["e", "t", "y"]], labels)


def test_duplicate_label_rows_kept_in_order_with_index_and_input_untouched(path):
    labels = pd.DataFrame(
        {"e": ["b", "a", "b", "a"], "t": ts("2024-01-05", "2024-01-05", "2024-01-05", "2024-01-01"),
         "y": [1, 2, 3, 4]},
        index=[7, 3, 7, 0],
    )
    before = labels.copy()
    feature = pd.DataFrame({"e": ["a", "b"], "t": ts("2024-01-02", "2024-01-03"), "x": [1, 2]})
    out = join(labels, {"x": feature})
    assert out.index.tolist() == [7, 3, 7, 0]
    assert out["y"].tolist() == [1, 2, 3, 4]
    assert out["x"].tolist()[:3] == [2, 1, 2] and np.isnan(out["x"].iloc[3])
    pd.testing.assert_frame_equal(labels, before)
    assert "x" not in labels.columns


def test_max_age(path):
    labels = pd.DataFrame({"e": [1, 1, 1, 1], "t": ts("2024-01-03", "2024-01-08", "2024-01-09", "2024-01-02")})
    feature = pd.DataFrame({"e": [1, 1], "t": ts("2024-01-01", "2024-01-02"), "x": [1.0, 2.0]})
    for max_age in ("7D", pd.Timedelta(days=7)):
        out = join(labels, {"x": feature}, max_age=max_age)
        # ages: 1 day, 6 days, exactly 7 days (kept), 0 days
        assert out["x"].tolist() == [2.0, 2.0, 2.0, 2.0]
    out = join(labels, {"x": feature}, max_age="6D")
    assert out["x"].isna().tolist() == [False, False, True, False]
    out = join(labels, {"x": feature}, max_age="0s")
    assert out["x"].isna().tolist() == [True, True, True, False]


def test_multiple_features_with_different_update_times_dict_and_list(path):
    labels = pd.DataFrame({"e": [1, 2, 1], "t": ts("2024-01-10", "2024-01-10", "2024-01-05")})
    daily = pd.DataFrame({"e": [1, 2, 1], "t": ts("2024-01-04", "2024-01-09", "2024-01-09"), "daily": [1, 2, 3]})
    weekly = pd.DataFrame({"e": [1, 2], "t": ts("2024-01-01", "2024-01-08"), "weekly": [10.5, 20.5]})
    expected = {"daily": [3, 2, 1], "weekly": [10.5, 20.5, 10.5]}
    for features in ({"daily": daily, "weekly": weekly}, [daily, weekly]):
        out = join(labels, features)
        assert list(out.columns) == ["e", "t", "daily", "weekly"]
        assert {k: out[k].tolist() for k in expected} == expected


def test_duplicate_feature_rows_last_in_frame_order_wins(path):
    labels = pd.DataFrame({"e": [1, 1], "t": ts("2024-01-02", "2024-01-03")})
    # not in time order, two rows at (1, 01-02): the later one in the frame wins
    feature = pd.DataFrame({"e": [1, 1, 1], "t": ts("2024-01-02", "2024-01-01", "2024-01-02"), "x": [1, 0, 2]})
    assert join(labels, {"x": feature})["x"].tolist() == [2, 2]
    in_order = feature.iloc[[1, 0, 2]]
    assert join(labels, {"x": in_order})["x"].tolist() == [2, 2]


def test_value_dtypes_string_categorical_bool_datetime(path):
    labels = pd.DataFrame({"e": [1, 2, 3], "t": ts("2024-01-05", "2024-01-05", "2024-01-05")})
    keys = {"e": [1, 2], "t": ts("2024-01-01", "2024-01-02")}
    features = {
        "s": pd.DataFrame({**keys, "s": ["x", "y"]}),
        "c": pd.DataFrame({**keys, "c": pd.Categorical(["lo", "hi"], categories=["lo", "hi"])}),
        "b": pd.DataFrame({**keys, "b": [True, False]}),
        "d": pd.DataFrame({**keys, "d": ts("2020-01-01", "2021-01-01")}),
    }
    out = join(labels, features)
    assert out["s"].tolist()[:2] == ["x", "y"] and pd.isna(out["s"].iloc[2])
    assert isinstance(out["c"].dtype, pd.CategoricalDtype)
    assert list(out["c"].cat.categories) == ["lo", "hi"]
    assert out["c"].tolist()[:2] == ["lo", "hi"] and pd.isna(out["c"].iloc[2])
    assert out["b"].tolist()[:2] == [True, False] and pd.isna(out["b"].iloc[2])
    assert out["d"].tolist()[:2] == [T("2020-01-01"), T("2021-01-01")] and pd.isna(out["d"].iloc[2])


def test_all_matched_keeps_integer_dtype(path):
    labels = pd.DataFrame({"e": [1, 2], "t": ts("2024-01-05", "2024-01-05")})
    feature = pd.DataFrame({"e": [1, 2], "t": ts("2024-01-01", "2024-01-02"), "x": [5, 6]})
    out = join(labels, {"x": feature})
    assert out["x"].dtype == np.int64 and out["x"].tolist() == [5, 6]


def test_tz_aware_same_zone_and_mixed_units(path):
    labels = pd.DataFrame({"e": [1, 1], "t": ts("2024-01-01 10:00", "2024-01-01 12:00", tz="Europe/Paris")})
    feature = pd.DataFrame({
        "e": [1], "t": ts("2024-01-01 11:00", tz="Europe/Paris").as_unit("ns"), "x": [1.0],
    })
    out = join(labels.assign(t=labels["t"].dt.as_unit("s")), {"x": feature})
    assert np.isnan(out["x"].iloc[0]) and out["x"].iloc[1] == 1.0
    assert str(out["t"].dt.tz) == "Europe/Paris"


def test_string_entities_null_entity_and_null_time_kept(path):
    labels = pd.DataFrame({"e": ["a", None, "a"], "t": [T("2024-01-02"), T("2024-01-02"), pd.NaT]})
    feature = pd.DataFrame({"e": ["a", None], "t": ts("2024-01-01", "2024-01-01"), "x": [1.0, 2.0]})
    out = join(labels, {"x": feature})
    assert out["x"].iloc[0] == 1.0 and out["x"].iloc[1:].isna().all()
    assert len(out) == 3


def test_float_entity_matches_int_entity(path):
    labels = pd.DataFrame({"e": [1, 2], "t": ts("2024-01-05", "2024-01-05")})
    feature = pd.DataFrame({"e": [1.0, 2.0], "t": ts("2024-01-01", "2024-01-02"), "x": [5, 6]})
    assert join(labels, {"x": feature})["x"].tolist() == [5, 6]


def test_shared_source_keys_give_same_result_as_separate_frames(path):
    rng = np.random.default_rng(1)
    source = pd.DataFrame({
        "e": rng.integers(0, 20, 300),
        "t": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, 300), unit="s"),
        "a": rng.normal(size=300), "b": rng.integers(0, 9, 300),
    })
    labels = source[["e", "t"]].sample(200, random_state=2, replace=True).reset_index(drop=True)
    shared = join(labels, {"a": source[["e", "t", "a"]], "b": source[["e", "t", "b"]]})
    alone = join(labels, {"b": source[["e", "t", "b"]].copy()})
    pd.testing.assert_series_equal(shared["b"], alone["b"])


# -- errors --------------------------------------------------------------------------------

LABELS = pd.DataFrame({"e": [1], "t": ts("2024-01-02"), "y": [1]})
FEATURE = pd.DataFrame({"e": [1], "t": ts("2024-01-01"), "x": [1.0]})


@pytest.mark.parametrize(
    "labels, features, kwargs, message",
    [
        ([1, 2], {"x": FEATURE}, {}, "labels must be a pandas DataFrame"),
        (LABELS.drop(columns="e"), {"x": FEATURE}, {}, "labels has no entity column 'e'"),
        (LABELS.drop(columns="t"), {"x": FEATURE}, {}, "labels has no timestamp column 't'"),
        (LABELS, {"x": FEATURE.drop(columns="t")}, {}, "feature 'x' has no timestamp column 't'"),
        (LABELS, [FEATURE.drop(columns="e")], {}, "feature frame #0 has no entity column 'e'"),
        (LABELS, {"z": FEATURE}, {}, "feature 'z' has no column named 'z'"),
        (LABELS, [FEATURE.assign(w=1)], {}, "exactly one value column"),
        (LABELS, {}, {}, "features is empty"),
        (LABELS, FEATURE, {}, "features must be a dict"),
        (LABELS, {"x": [1]}, {}, "feature 'x' must be a pandas DataFrame"),
        (LABELS, {"y": FEATURE.rename(columns={"x": "y"})}, {}, "collides with a labels column"),
        (LABELS, [FEATURE, FEATURE], {}, "given more than once"),
        (LABELS.assign(t=["2024-01-02"]), {"x": FEATURE}, {}, "timestamp column 't' of labels is"),
        (LABELS, {"x": FEATURE.assign(t=[1])}, {}, "timestamp column 't' of feature 'x' is int64, not datetime"),
        (LABELS, {"x": FEATURE.assign(t=FEATURE["t"].dt.tz_localize("UTC"))}, {},
         "feature 'x' has time-zone-aware timestamps but labels has naive ones; convert"),
        (LABELS.assign(t=LABELS["t"].dt.tz_localize("UTC")), {"x": FEATURE}, {},
         "labels has time-zone-aware timestamps but feature 'x' has naive ones"),
        (LABELS.assign(t=LABELS["t"].dt.tz_localize("UTC")),
         {"x": FEATURE.assign(t=FEATURE["t"].dt.tz_localize("US/Eastern"))}, {},
         "labels timestamps are in UTC but feature 'x''s are in US/Eastern; convert"),
        (LABELS, {"x": FEATURE.assign(e=["1"])}, {}, "holds numeric values in labels but string values in feature 'x'"),
        (LABELS.assign(e=["a"]), {"x": FEATURE}, {}, "holds string values in labels but numeric"),
        (LABELS, {"x": FEATURE}, {"max_age": "soon"}, "max_age must be a pandas.Timedelta"),
        (LABELS, {"x": FEATURE}, {"max_age": "-1D"}, "max_age must be a non-negative"),
    ],
)
def test_errors(labels, features, kwargs, message):
    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(labels, features, entity="e", timestamp="t", **kwargs)
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text


def test_timestamp_name_as_feature_name_is_refused():
    frame = pd.DataFrame({"e": [1], "t": ts("2024-01-01"), "x": [1]})
    with pytest.raises(InvalidInput, match="entity or timestamp column"):
        point_in_time_join(LABELS, {"e": frame}, entity="e", timestamp="t")


# -- randomized cross-check against a brute-force reference ------------------------------------


def brute_force(labels, features, max_age=None):
    out = {}
    age = None if max_age is None else pd.Timedelta(max_age)
    for name, frame in features.items():
        rows = {}
        for position, (e, t) in enumerate(zip(frame["e"], frame["t"])):
            rows.setdefault(e, []).append((t, position))
        values = []
        for e, t in zip(labels["e"], labels["t"]):
            best = None
            for ft, position in rows.get(e, []):
                usable = ft <= t and (age is None or t - ft <= age)
                if usable and (best is None or (ft, position) > best):
                    best = (ft, position)
            values.append(None if best is None else frame[name].iloc[best[1]])
        out[name] = values
    return out


@pytest.mark.parametrize("max_age", [None, "3h"])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_random_cross_check(path, max_age, nanoseconds):
    rng = np.random.default_rng(20261126)
    n, entities = 2000, 40
    span = 10**13 if nanoseconds else 2 * 86400  # nanoseconds over ~3 hours, or seconds over 2 days
    unit = "ns" if nanoseconds else "s"
    start = pd.Timestamp("2024-01-01")

    def times(k):
        return start + pd.to_timedelta(rng.integers(0, span, k), unit=unit)

    labels = pd.DataFrame({
        "e": rng.integers(0, entities, n), "t": times(n), "y": rng.integers(0, 2, n),
    }, index=rng.permutation(n))
    labels = pd.concat([labels, labels.iloc[:50]])  # duplicate label rows
    features = {}
    for i, kind in enumerate(("float", "int", "str")):
        k = 1500
        frame = pd.DataFrame({"e": rng.integers(0, entities + 5, k), "t": times(k)})
        frame = pd.concat([frame, frame.iloc[:100]])  # duplicate (entity, time) rows
        values = rng.integers(0, 10**6, len(frame))
        frame[f"f{i}"] = {"float": values / 7, "int": values, "str": values.astype(str)}[kind]
        if i == 1:
            frame = frame.sort_values("t", kind="stable")  # one frame already in time order
        features[f"f{i}"] = frame
    out = point_in_time_join(labels, features, entity="e", timestamp="t", max_age=max_age)
    expected = brute_force(labels, features, max_age=max_age)
    assert len(out) == len(labels)
    assert out.index.equals(labels.index)
    for name, values in expected.items():
        got = out[name].tolist()
        assert [None if pd.isna(v) else v for v in got] == values, name
    assert any(v is None for v in expected["f0"])  # some rows had no earlier value
