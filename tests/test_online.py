"""The online store: materialise the latest value per entity, read it back, on every backend.

Backends: the registry database (SQLite and PostgreSQL, from the ``registry`` fixture) and
Redis at ``MLOPS_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``; skipped with a reason
if that is unreachable and the variable is unset, failed if it is set). Redis tests use env
names ending in a per-test token and delete only keys carrying it.
"""

import math
import secrets

import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mlops
from mlops_jupyter import GateFailed, InvalidInput, NotFound

class Online:
    """Where a test materialises: ``store`` for the API, ``env(name)`` for its env names."""

    def __init__(self, store, token):
        self.store, self.token = store, token

    def env(self, name="staging"):
        return name if self.token is None else f"{name}-{self.token}"


@pytest.fixture(params=["database", "redis"])
def online(request, registry):
    if request.param == "database":
        yield Online(None, None)
        return
    import redis

    url = request.getfixturevalue("redis_url")
    token = secrets.token_hex(6)
    yield Online(url, token)
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"mlops:*-{token}*"))
    if keys:
        client.delete(*keys)
    client.close()


def events(values, customers=(1, 2, 3), days=("2026-01-01", "2026-01-02", "2026-01-03")):
    """One row per (customer, day), values in that order."""
    rows = [(c, pd.Timestamp(d)) for c in customers for d in days]
    return pd.DataFrame({"customer": [c for c, _ in rows], "at": [d for _, d in rows], "value": values})


def test_the_latest_value_per_entity_wins(online):
    frame = events([1.0, 3.0, 2.0, 10.0, 20.0, 30.0, 5.0, 6.0, 7.0]).sample(frac=1, random_state=1)
    # A tie on customer 3's latest day: the row that comes last wins.
    frame = pd.concat([frame, pd.DataFrame({"customer": [3], "at": [pd.Timestamp("2026-01-03")], "value": [8.0]})])
    mlops.register_feature("spend", frame, entity="customer", timestamp="at")
    assert mlops.materialize("spend", env=online.env(), store=online.store) == {
        "spend": {"version": 1, "entities": 3}
    }
    result = mlops.get_online_features(["spend"], [1, 2, 3], env=online.env(), store=online.store)
    assert list(result.index) == [1, 2, 3] and result.index.name == "customer"
    assert result["spend"].tolist() == [2.0, 30.0, 8.0]
    assert mlops.get_online_features("spend", 2, env=online.env(), store=online.store, output="dict") == {
        2: {"spend": 30.0}
    }
    entry = mlops.audit("spend")[0]
    assert entry["action"] == "materialize"
    assert entry["detail"]["env"] == online.env() and entry["detail"]["version"] == 1
    assert entry["detail"]["rows"] == 3


def test_values_of_several_dtypes_round_trip(online):
    times = pd.to_datetime(["2026-01-01", "2026-01-02"])
    columns = {
        "f_float": [1.5, np.nan],
        "f_int": [7, 8],
        "f_str": ["a", "b c"],
        "f_bool": [True, False],
        "f_time": pd.to_datetime(["2025-12-31T10:00:00", "2025-12-30T00:00:00"], utc=True),
    }
    for name, values in columns.items():
        frame = pd.DataFrame({"user": ["u1", "u2"], "at": times, name: values})
        mlops.register_feature(name, frame, entity="user", timestamp="at")
    mlops.materialize(",".join(columns), env=online.env(), store=online.store)
    got = mlops.get_online_features(list(columns), ["u1", "u2"], env=online.env(), store=online.store, output="dict")
    assert got["u1"] == {"f_float": 1.5, "f_int": 7, "f_str": "a", "f_bool": True,
                         "f_time": "2025-12-31T10:00:00+00:00"}
    assert got["u2"]["f_float"] is None  # null stays null
    assert type(got["u2"]["f_int"]) is int and got["u2"]["f_bool"] is False
    frame = mlops.get_online_features(list(columns), ["u2", "u1"], env=online.env(), store=online.store)
    assert list(frame.columns) == list(columns) and list(frame.index) == ["u2", "u1"]
    assert math.isnan(frame.loc["u2", "f_float"]) and frame.loc["u1", "f_time"] == "2025-12-31T10:00:00+00:00"


def test_envs_are_separate_and_a_newer_version_replaces_values(online):
    mlops.register_feature("score", events([1, 2, 3, 4, 5, 6, 7, 8, 9]), entity="customer", timestamp="at")
    staging, production = online.env("staging"), online.env("production")
    mlops.materialize("score", env=staging, store=online.store)
    mlops.materialize("score", env=production, store=online.store)
    # Version 2 has customers 1 and 4 only: customer 2 and 3 leave staging, 4 arrives.
    mlops.register_feature("score", events([10, 20, 30, 40, 50, 60], customers=(1, 4)), entity="customer",
                           timestamp="at")
    assert mlops.materialize("score@2", env=staging, store=online.store)["score"] == {"version": 2, "entities": 2}
    got = mlops.get_online_features("score", [1, 2, 4], env=staging, store=online.store, output="dict")
    assert got == {1: {"score": 30}, 2: {"score": None}, 4: {"score": 60}}
    got = mlops.get_online_features("score", [1, 2, 4], env=production, store=online.store, output="dict")
    assert got == {1: {"score": 3}, 2: {"score": 6}, 4: {"score": None}}
    # Back to version 1 by reference.
    mlops.materialize("score@1", env=staging, store=online.store)
    assert mlops.get_online_features("score", [2], env=staging, store=online.store, output="dict") == {
        2: {"score": 6}
    }


def test_a_failing_expectation_writes_nothing(online):
    mlops.register_feature("good", events([1, 2, 3, 4, 5, 6, 7, 8, 9]), entity="customer", timestamp="at")
    mlops.register_feature("risky", events([1, 2, 3, 4, 5, 6, 7, 8, 9]), entity="customer", timestamp="at")
    mlops.materialize("risky", env=online.env(), store=online.store)
    mlops.expect("risky", lambda s: bool((s < 5).all()))  # a callable rule the stored v1 fails
    before = mlops.registry_counts()
    with pytest.raises(GateFailed, match="materialize 'risky' v1"):
        mlops.materialize(["good", "risky"], env=online.env(), store=online.store)
    assert mlops.registry_counts() == before
    with pytest.raises(NotFound, match="not been materialised in env"):  # 'good' was not written either
        mlops.get_online_features("good", [1], env=online.env(), store=online.store)


def test_missing_entities_come_back_null(online):
    mlops.register_feature("spend", events([1.0] * 9), entity="customer", timestamp="at")
    mlops.materialize("spend", env=online.env(), store=online.store)
    frame = mlops.get_online_features("spend", [1, 404, np.int64(2), 3.0], env=online.env(), store=online.store)
    assert frame["spend"].iloc[0] == 1.0 and math.isnan(frame["spend"].iloc[1])
    assert frame["spend"].iloc[2:].tolist() == [1.0, 1.0]  # numpy and integral-float keys match ints
    assert mlops.get_online_features("spend", ["nobody"], env=online.env(), store=online.store,
                                     output="dict") == {"nobody": {"spend": None}}


def test_bad_input_is_refused_with_one_line(online):
    mlops.register_feature("spend", events([1.0] * 9), entity="customer", timestamp="at")
    mlops.materialize("spend", env=online.env(), store=online.store)
    kwargs = {"env": online.env(), "store": online.store}
    cases = [
        (NotFound, "no feature 'spnd'", lambda: mlops.get_online_features("spnd", [1], **kwargs)),
        (NotFound, "no feature 'spnd'", lambda: mlops.materialize("spnd", **kwargs)),
        (NotFound, "not been materialised in env 'production", lambda: mlops.get_online_features(
            "spend", [1], env=online.env("production"), store=online.store)),
        (InvalidInput, "env", lambda: mlops.materialize("spend", env="../prod", store=online.store)),
        (InvalidInput, "env", lambda: mlops.get_online_features("spend", [1], env="a:b", store=online.store)),
        (InvalidInput, "env", lambda: mlops.get_online_features("spend", [1], env="", store=online.store)),
        (InvalidInput, "unsupported online store 'mysql'", lambda: mlops.materialize(
            "spend", env=online.env(), store="mysql://host/db")),
        (InvalidInput, "unsupported online store", lambda: mlops.get_online_features(
            "spend", [1], env=online.env(), store="/tmp/x")),
        (InvalidInput, "entities must not be empty", lambda: mlops.get_online_features("spend", [], **kwargs)),
        (InvalidInput, "must be an int or a string", lambda: mlops.get_online_features("spend", [1.5], **kwargs)),
        (InvalidInput, "must be an int or a string", lambda: mlops.get_online_features("spend", [None], **kwargs)),
        (InvalidInput, "looked up by name", lambda: mlops.get_online_features("spend@1", [1], **kwargs)),
        (InvalidInput, "output", lambda: mlops.get_online_features("spend", [1], output="xml", **kwargs)),
        (InvalidInput, "at least one feature", lambda: mlops.materialize([], **kwargs)),
        (InvalidInput, "named twice", lambda: mlops.materialize("spend,spend@1", **kwargs)),
        (NotFound, "no version 9", lambda: mlops.materialize("spend@9", **kwargs)),
    ]
    before = mlops.registry_counts()
    for error, message, call in cases:
        with pytest.raises(error, match=message) as caught:
            call()
        assert "\n" not in str(caught.value), str(caught.value)
    assert mlops.registry_counts() == before


def test_materialising_ten_thousand_entities_is_quick(registry):
    import time

    n = 10_000
    frame = pd.DataFrame({"customer": np.arange(n), "at": pd.Timestamp("2026-01-01"), "x": np.arange(n) * 0.5})
    mlops.register_feature("x", frame, entity="customer", timestamp="at")
    started = time.perf_counter()
    assert mlops.materialize("x", env="production")["x"]["entities"] == n
    assert time.perf_counter() - started < 2  # typically ~0.1 s on SQLite; generous for slow CI
    got = mlops.get_online_features("x", list(range(0, n, 100)), env="production", output="dict")
    assert got[9900] == {"x": 4950.0} and len(got) == 100
