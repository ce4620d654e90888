"""The feature views: the list of features and one feature's card, from real registry data."""

import base64
import re

import pandas as pd
import pytest

import mlops_jupyter as mlops
from mlops_jupyter import api
from mlops_jupyter.jupyter import display
from mlops_jupyter.jupyter.display import WIDGET_MIME

SCRIPT = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def reg(tmp_path, monkeypatch):
    return mlops.connect(f"sqlite:///{tmp_path / 'r.db'}", artifacts=str(tmp_path / "artifacts"))


def spend_values(scale=1.0):
    events = pd.DataFrame({
        "customer": [1, 1, 2, 2, 3, 1],
        "at": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02", "2026-01-05", "2026-01-04", "2026-01-06"]),
        "amount": [10.0, 30.0, 5.0, 7.0, 100.0, 20.0],
    })
    events["amount"] *= scale
    frame = events.sort_values("at")
    frame["spend"] = frame.groupby("customer")["amount"].cumsum()
    return events, frame[["customer", "at", "spend"]]


@pytest.fixture
def spend(reg):
    """'spend' v1 (before expectations) and v2 (checked against min=0, max=1000), used by a training set."""
    events, values = spend_values()
    mlops.register_feature("spend", values, entity="customer", timestamp="at", code=f"x = 1  # {SCRIPT}",
                           sources={"events": events}, description=f"money spent {SCRIPT}")
    mlops.expect("spend", "min=0", "max=1000")
    events, values = spend_values(2.0)
    mlops.register_feature("spend", values, entity="customer", timestamp="at", code=f"x = 1  # {SCRIPT}",
                           sources={"events": events}, description=f"money spent {SCRIPT}", tags={"team": "growth"})
    labels = pd.DataFrame({"customer": [1, 2, 3], "at": pd.to_datetime(["2026-01-07"] * 3), "churned": [0, 1, 0]})
    with mlops.start_run("train") as run:
        mlops.training_set("churn-train", labels, ["spend@2"], label="churned")
    mlops.training_set("churn-eval", labels, ["spend@1"])
    return run.id


def card(name="spend", version=None, **overrides):
    feature = mlops.get_feature(name if version is None else f"{name}@{version}")
    latest = mlops.get_feature(name)["version"]
    kwargs = {
        "versions": [mlops.get_feature(f"{name}@{v}") for v in range(latest, 0, -1)],
        "expectations": api._store().get_expectations(name),
        "training_sets": mlops.training_sets_using(name),
    }
    kwargs.update(overrides)
    return display.feature_view(feature, **kwargs)


def html_of(view):
    return view._repr_mimebundle_()["text/html"]


def png_images(html):
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_the_list_shows_every_feature_escaped(spend):
    mlops.register_feature("segment", pd.DataFrame({"customer": [1, 2], "at": pd.to_datetime(["2026-01-01"] * 2),
                                                    "segment": ["a", "b"]}), entity="customer", timestamp="at")
    view = display.features_view(mlops.list_features())
    html = html_of(view)
    assert "2 registered features" in html
    assert "spend" in html and "segment" in html and "v2" in html and "customer / at" in html and "tester" in html
    assert SCRIPT not in html and "money spent &lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = view.text()
    assert text.splitlines()[0] == "2 features" and "spend  v2  (customer / at)" in text
    assert "<" not in text.replace(SCRIPT, "")  # plain text, not HTML

    empty = display.features_view([])
    assert "No registered features" in html_of(empty) and empty.text() == "No registered features."


def test_the_card_shows_the_version_its_sources_statistics_and_histogram(spend):
    feature = mlops.get_feature("spend")
    html = html_of(card())
    assert "Feature spend@2" in html
    for value in ("tester", "customer / at", "float64", "team=growth", "events", "Sources", "Statistics"):
        assert value in html, value
    assert f">{feature['rows']}<" in html
    source = feature["sources"][0]
    assert source["digest"][:12] in html and "customer: int64" in html
    stats = feature["statistics"]
    assert ">count<" in html and ">null fraction<" in html and "0.00%" in html
    assert f">{stats['max']:.4g}<" in html and f">{stats['mean']:.4g}<" in html  # min/max/mean to 4 digits
    images = png_images(html)
    assert len(images) == 1 and images[0].startswith(PNG_SIGNATURE)
    assert 'alt="spend histogram"' in html


def test_user_strings_are_escaped_in_the_card(spend):
    html = html_of(card())
    assert SCRIPT not in html
    assert "x = 1  # &lt;script&gt;alert(1)&lt;/script&gt;" in html  # the code, in a <pre>
    assert "money spent &lt;script&gt;" in html
    assert re.search(r"<pre [^>]*>x = 1", html)
    assert "<details>" not in html  # short code is shown open


def test_long_code_is_collapsed(spend):
    feature = {**mlops.get_feature("spend"), "code": "\n".join(f"line_{i} = {i}" for i in range(40))}
    html = html_of(display.feature_view(feature))
    assert "<details>" in html and "40 lines of code" in html and "line_39 = 39" in html


def test_expectations_show_their_latest_check_results(spend):
    html = html_of(card())
    assert "min=0" in html and "max=1000" in html
    assert html.count("✓ passed") == 2 and "✗" not in html

    older = html_of(card(version=1))  # registered before the expectations were set
    assert older.count("not checked for this version") == 2

    report = mlops.expect("spend", "min=0", "max=5")  # v2 goes over 5
    feature = {**mlops.get_feature("spend"), "checks": report.as_dict()}
    view = display.feature_view(feature, expectations=api._store().get_expectations("spend"))
    failed = html_of(view)
    assert "✓ passed" in failed and "✗ failed" in failed and "rows above 5" in failed
    assert "max=5  ✗ failed: " in view.text() and "min=0  ✓ passed" in view.text()


def test_versions_and_the_training_sets_that_use_the_feature(spend):
    view = card()
    html = html_of(view)
    assert "Versions" in html and "2 versions" in html and ">v1<" in html and ">v2<" in html
    for version in (1, 2):
        assert mlops.get_feature(f"spend@{version}")["fingerprint"][:12] in html
    assert "Used by" in html and "2 training sets" in html
    assert "churn-train" in html and "churn-eval" in html and spend[:8] in html
    assert "version used" in html
    assert "used by: churn-eval (v1), churn-train (v2)" in view.text()

    mlops.register_feature("lonely", pd.DataFrame({"customer": [1], "at": pd.to_datetime(["2026-01-01"]),
                                                   "lonely": [1.0]}), entity="customer", timestamp="at")
    alone = html_of(card("lonely"))
    assert "No training set uses this feature yet." in alone
    assert "None set." in alone  # no expectations
    assert "No code recorded." in alone
    assert len(png_images(alone)) == 1  # a constant column still draws its one bin


def test_categorical_features_show_top_values_not_a_plot(reg):
    values = pd.DataFrame({"customer": range(6), "at": pd.to_datetime(["2026-01-01"] * 6),
                           "segment": ["gold", "gold", "gold", "silver", SCRIPT, None]})
    mlops.register_feature("segment", values, entity="customer", timestamp="at")
    html = html_of(card("segment"))
    assert not png_images(html)
    assert "gold" in html and "silver" in html and "3 (60%)" in html
    assert SCRIPT not in html and "&lt;script&gt;" in html
    assert "width: 160px;" in html  # the most frequent value gets the full bar
    assert "16.67%" in html  # one null of six


def test_datetime_features_get_a_histogram(reg):
    values = pd.DataFrame({"customer": range(5), "at": pd.to_datetime(["2026-01-10"] * 5),
                           "signup": pd.to_datetime(["2025-01-01", "2025-03-01", "2025-06-01", "2025-09-01", None])})
    mlops.register_feature("signup", values, entity="customer", timestamp="at")
    html = html_of(card("signup"))
    images = png_images(html)
    assert len(images) == 1 and images[0].startswith(PNG_SIGNATURE)
    assert "2025-01-01" in html and "2025-09-01" in html


def test_text_is_readable(spend):
    text = card().text()
    lines = text.splitlines()
    assert lines[0] == "feature spend@2  (customer / at)  float64, 6 rows"
    assert "owner tester" in text and "statistics: count=6" in text and "versions: v2, v1" in text
    assert "expectations:" in text and "min=0  ✓ passed" in text
    assert repr(card()) == text


def test_live_views_carry_the_widget(spend):
    for view in (display.features_view(mlops.list_features(), live=True), card(live=True)):
        bundle = view._repr_mimebundle_()
        assert WIDGET_MIME in bundle and bundle[WIDGET_MIME]["model_id"] == view.widget.model_id
        assert view.widget.value == bundle["text/html"]
    still = card()
    assert still.widget is None and WIDGET_MIME not in still._repr_mimebundle_()
