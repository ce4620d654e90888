"""The search language: parsing, error messages, and the runs it finds on SQLite and PostgreSQL."""

import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from mlops_jupyter.errors import InvalidInput
from mlops_jupyter.registry import database, schema
from mlops_jupyter.registry.search import (
    And, Comparison, InList, IsNull, Like, Not, Or, SortKey, build_run_query, parse_filter, parse_sort,
)

def epoch(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


T1, T2, T3, T4, T5 = (epoch(t) for t in (
    "2026-01-01T00:00:00", "2026-01-15T00:00:00", "2026-01-31T12:00:00", "2026-02-10T00:00:00", "2026-02-20T00:00:00",
))
ALL = ["r1", "r2", "r3", "r4", "r5"]
SEARCHED_TABLES = [schema.experiments, schema.runs, schema.params, schema.latest_metrics, schema.tags]


# ---------------------------------------------------------------- backends


@pytest.fixture
def engine(registry_url):
    # The registry's own engine settings (SQLite pragmas included), on an empty database.
    engine = database.create_engine(registry_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine):
    run = dict(notebook_path=None, git_commit=None, parent_run_id=None, end_time=None)
    with engine.begin() as c:  # one transaction: one commit, fast on both databases
        schema.metadata.create_all(c, tables=SEARCHED_TABLES)
        c.execute(schema.experiments.insert(), [
            dict(id=1, name="alpha", created_at=T1, created_by="alice"),
            dict(id=2, name="beta", created_at=T1, created_by="bob"),
        ])
        c.execute(schema.runs.insert(), [
            {**run, "id": "r1", "experiment_id": 1, "name": "baseline", "status": "FINISHED", "user": "alice",
             "start_time": T1, "end_time": T1 + 100, "notebook_path": "notebooks/a.ipynb", "git_commit": "abc123"},
            {**run, "id": "r2", "experiment_id": 1, "name": "Tuned", "status": "FINISHED", "user": "bob",
             "start_time": T2, "end_time": T2 + 50, "notebook_path": "notebooks/b.ipynb", "git_commit": "def456"},
            {**run, "id": "r3", "experiment_id": 1, "name": "tuned-2", "status": "FAILED", "user": "alice",
             "start_time": T3, "parent_run_id": "r2"},
            {**run, "id": "r4", "experiment_id": 2, "name": "probe", "status": "RUNNING", "user": "carol",
             "start_time": T4, "notebook_path": "notebooks/Probe.ipynb"},
            {**run, "id": "r5", "experiment_id": 2, "name": "empty", "status": "FINISHED", "user": "bob",
             "start_time": T5, "end_time": T5 + 10},
        ])
        c.execute(schema.latest_metrics.insert(), [
            dict(run_id=run_id, key=key, value=value, step=0, timestamp=T1)
            for run_id, key, value in [
                ("r1", "auc", 0.80), ("r1", "val loss", 0.5), ("r1", "loss", 0.3),
                ("r2", "auc", 0.90), ("r2", "val loss", 0.4),
                ("r3", "auc", 0.70), ("r3", "loss", None),  # NaN is stored as NULL: present, not absent
                ("r4", "auc", 0.95), ("r4", "val/acc", 0.7),
            ]
        ])
        c.execute(schema.params.insert(), [
            dict(run_id=run_id, key=key, value=value, value_number=number)
            for run_id, key, value, number in [
                ("r1", "lr", "0.1", 0.1), ("r1", "model", "rf", None), ("r1", "epochs", "10", 10.0),
                ("r2", "lr", "0.10", 0.1), ("r2", "model", "RF", None), ("r2", "epochs", "9", 9.0),
                ("r3", "lr", "0.01", 0.01), ("r3", "model", "gbm", None), ("r3", "data/path", "s3://bucket/x", None),
                ("r4", "lr", "auto", None), ("r4", "model", "svm", None),
            ]
        ])
        c.execute(schema.tags.insert(), [
            dict(run_id=run_id, key=key, value=value)
            for run_id, key, value in [
                ("r1", "team", "vision"), ("r1", "release note", "v1"),
                ("r2", "team", "Vision"),
                ("r3", "team", "nlp"),
                ("r4", "team", "vision-2"), ("r4", "odd:key.name", "yes"), ("r4", "quote", "it's"),
            ]
        ])
    return engine


def found(db, filter=None, **kwargs):
    """The ids of the runs the query returns, in its order; ``db`` is an engine or a connection."""
    if isinstance(db, sa.Engine):
        with db.connect() as connection:
            return found(connection, filter, **kwargs)
    return [row.id for row in db.execute(build_run_query(filter, **kwargs))]


def check_filters(engine, cases):
    """Run every (filter, expected ids) case and report all mismatches at once."""
    check(engine, [(dict(filter=text, order_by="run_id"), text, expected) for text, expected in cases])


def check_sorts(engine, cases):
    check(engine, [(dict(order_by=order_by), order_by, expected) for order_by, expected in cases])


def check(engine, cases):
    wrong = []
    with engine.connect() as connection:
        for kwargs, shown, expected in cases:
            got = found(connection, **kwargs)
            if got != expected:
                wrong.append(f"{shown!r}: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- filters on both databases


def test_comparison_operators(db):
    check_filters(db, [
        ("metrics.auc = 0.9", ["r2"]),
        ("metrics.auc == 0.9", ["r2"]),
        ("metrics.auc != 0.9", ["r1", "r3", "r4"]),
        ("metrics.auc <> 0.9", ["r1", "r3", "r4"]),
        ("metrics.auc < 0.8", ["r3"]),
        ("metrics.auc <= 0.8", ["r1", "r3"]),
        ("metrics.auc > 0.9", ["r4"]),
        ("metrics.auc >= 0.9", ["r2", "r4"]),
        ("metrics.auc>=0.9", ["r2", "r4"]),
        ("metrics.auc > 9e-1", ["r4"]),
        ("metrics.auc > -1", ["r1", "r2", "r3", "r4"]),
        ("metrics.auc >= +.95", ["r4"]),
        ("metrics.loss < 1", ["r1"]),  # r3's NaN (NULL) compares as nothing
        ("metrics.val/acc = 0.7", ["r4"]),
        ("", ALL),
        ("   ", ALL),
        (None, ALL),
    ])


def test_and_or_not_precedence_and_parentheses(db):
    check_filters(db, [
        ("metrics.auc > 0.85 OR metrics.auc < 0.75 AND tags.team = 'nlp'", ["r2", "r3", "r4"]),
        ("(metrics.auc > 0.85 OR metrics.auc < 0.75) AND tags.team = 'nlp'", ["r3"]),
        ("metrics.auc > 0.85 or metrics.auc < 0.75 and tags.team = 'vision'", ["r2", "r4"]),
        ("NOT tags.team = 'vision'", ["r2", "r3", "r4"]),  # r5 has no team: no match either way
        ("NOT NOT tags.team = 'vision'", ["r1"]),
        ("NOT (status = 'FINISHED' OR status = 'RUNNING')", ["r3"]),
        ("not status = 'FINISHED' and user = 'alice'", ["r3"]),
        ("status = 'FINISHED' aNd (user = 'bob' Or user = 'alice')", ["r1", "r2", "r5"]),
        ("((((run_id = 'r1'))))", ["r1"]),
        ("run_id = 'r1' OR run_id = 'r2' OR run_id = 'r5'", ["r1", "r2", "r5"]),
        ("(run_id = 'r1' OR run_id = 'r2') AND NOT (run_id = 'r2' AND status = 'FINISHED')", ["r1"]),
    ])


def test_in_and_not_in(db):
    check_filters(db, [
        ("tags.team IN ('vision', 'nlp')", ["r1", "r3"]),
        ("tags.team NOT IN ('vision', 'nlp')", ["r2", "r4"]),
        ("params.epochs IN (9, 10.0)", ["r1", "r2"]),
        ("params.epochs not in (9)", ["r1"]),
        ("params.model IN ('rf', \"gbm\")", ["r1", "r3"]),
        ("metrics.auc IN (0.8, 0.95)", ["r1", "r4"]),
        ("metrics.auc NOT IN (0.8, 0.95)", ["r2", "r3"]),
        ("status IN ('RUNNING', 'FAILED')", ["r3", "r4"]),
        ("run_id IN ('r5', 'nope')", ["r5"]),
        ("start_time IN ('2026-01-01', '2026-01-15T00:00:00Z')", ["r1", "r2"]),
    ])


def test_like_and_ilike_same_case_rules_on_both_databases(db):
    check_filters(db, [
        ("tags.team LIKE 'vision%'", ["r1", "r4"]),
        ("tags.team ILIKE 'vision%'", ["r1", "r2", "r4"]),
        ("tags.team NOT LIKE 'vision%'", ["r2", "r3"]),
        ("tags.team NOT ILIKE 'VISION%'", ["r3"]),
        ("name LIKE 'tuned%'", ["r3"]),
        ("name LIKE 'T%'", ["r2"]),
        ("name ilike '%UNED%'", ["r2", "r3"]),
        ("tags.team LIKE 'vision_2'", ["r4"]),  # _ matches any one character
        (r"tags.team LIKE 'vision\_2'", []),  # backslash escapes it on both databases
        (r"tags.team LIKE 'vision\-2'", ["r4"]),
        ("params.data/path LIKE 's3://%'", ["r3"]),
        ("params.model LIKE '%F'", ["r2"]),
        ("notebook_path LIKE 'notebooks/%'", ["r1", "r2", "r4"]),
        ("experiment LIKE 'al%'", ["r1", "r2", "r3"]),
    ])


def test_is_null_means_absent(db):
    check_filters(db, [
        ("metrics.loss IS NULL", ["r2", "r4", "r5"]),
        ("metrics.loss IS NOT NULL", ["r1", "r3"]),
        ("tags.team is null", ["r5"]),
        ("params.lr IS NULL OR params.model IS NULL", ["r5"]),
        ("end_time IS NULL", ["r3", "r4"]),
        ("parent_run_id IS NOT NULL", ["r3"]),
        ("git_commit IS NULL AND notebook_path IS NOT NULL", ["r4"]),
    ])


def test_params_compare_numbers_or_text_by_literal(db):
    check_filters(db, [
        ("params.lr = 0.1", ["r1", "r2"]),  # "0.1" and "0.10" are the same number
        ("params.lr = '0.1'", ["r1"]),
        ('params.lr = "0.10"', ["r2"]),
        ("params.lr != 0.1", ["r3"]),  # "auto" has no number
        ("params.lr < 0.05", ["r3"]),
        ("params.lr = 'auto'", ["r4"]),
        ("params.epochs > 9", ["r1"]),
        ("params.epochs > '9'", []),  # as text, "10" < "9"
        ("params.epochs < '9'", ["r1"]),
        ("params.epochs >= 9.0", ["r1", "r2"]),
        ("params.model = 'rf'", ["r1"]),
    ])


def test_tags_and_quoted_keys(db):
    check_filters(db, [
        ("tags.team = 'vision'", ["r1"]),
        ("tags.team < 'p' AND tags.team >= 'n'", ["r3"]),
        ("tags.`release note` = 'v1'", ["r1"]),
        ('tags."release note" != \'v2\'', ["r1"]),
        ("metrics.`val loss` < 0.45", ["r2"]),
        ('metrics."val loss" >= 0.45', ["r1"]),
        ("tags.odd:key.name = 'yes'", ["r4"]),
        ("tags.quote = 'it''s'", ["r4"]),
        ('tags.quote = "it\'s"', ["r4"]),
    ])


def test_attributes_and_times(db):
    check_filters(db, [
        ("status = 'FINISHED'", ["r1", "r2", "r5"]),
        ("attributes.status = 'FINISHED' AND attributes.user = 'bob'", ["r2", "r5"]),
        ("user = 'alice'", ["r1", "r3"]),
        ("run_id = 'r4'", ["r4"]),
        ("name = 'Tuned'", ["r2"]),
        ("experiment = 'beta'", ["r4", "r5"]),
        ("parent_run_id = 'r2'", ["r3"]),
        ("notebook_path = 'notebooks/Probe.ipynb'", ["r4"]),
        ("git_commit = 'abc123'", ["r1"]),
        ("STATUS = 'FAILED'", ["r3"]),
        ("start_time >= '2026-01-15'", ["r2", "r3", "r4", "r5"]),
        ("start_time < '2026-01-31T12:00:00'", ["r1", "r2"]),
        ("start_time = '2026-01-31T12:00:00'", ["r3"]),
        ("start_time = '2026-01-31 13:00:00+01:00'", ["r3"]),
        ("start_time > '2026-01-31T12:00:00Z'", ["r4", "r5"]),
        (f"start_time <= {T2}", ["r1", "r2"]),
        (f"start_time > {T4:.0f}", ["r5"]),
        ("end_time > '2026-01-01T00:01:00'", ["r1", "r2", "r5"]),
        ("start_time > '2026-02-01' AND end_time IS NULL", ["r4"]),
    ])


def test_experiment_ids(db):
    check(db, [
        (dict(experiment_ids=[1], order_by="run_id"), [1], ["r1", "r2", "r3"]),
        (dict(experiment_ids=[2], order_by="run_id"), [2], ["r4", "r5"]),
        (dict(experiment_ids=2, order_by="run_id"), 2, ["r4", "r5"]),
        (dict(experiment_ids=(1, 2), order_by="run_id"), (1, 2), ALL),
        (dict(experiment_ids=None, order_by="run_id"), None, ALL),
        (dict(experiment_ids=[]), [], []),
        (dict(filter="status = 'FINISHED'", experiment_ids=[1], order_by="run_id"), "FINISHED in 1", ["r1", "r2"]),
    ])


def test_result_columns(db):
    with db.connect() as connection:
        rows = connection.execute(build_run_query("run_id = 'r3'")).all()
    assert list(rows[0]._mapping) == [
        "id", "name", "experiment", "status", "user", "start_time", "end_time", "parent_run_id"]
    assert tuple(rows[0]) == ("r3", "tuned-2", "alpha", "FAILED", "alice", T3, None, "r2")


def test_sort_with_missing_values_last(db):
    check_sorts(db, [
        (None, ["r5", "r4", "r3", "r2", "r1"]),  # newest first by default
        ("", ["r5", "r4", "r3", "r2", "r1"]),
        ("start_time", ALL),
        ("metrics.auc desc", ["r4", "r2", "r1", "r3", "r5"]),
        ("metrics.auc DESC", ["r4", "r2", "r1", "r3", "r5"]),
        ("-metrics.auc", ["r4", "r2", "r1", "r3", "r5"]),
        ("metrics.auc", ["r3", "r1", "r2", "r4", "r5"]),
        ("metrics.auc asc", ["r3", "r1", "r2", "r4", "r5"]),
        ("metrics.loss", ["r1", "r2", "r3", "r4", "r5"]),
        ("metrics.loss desc", ["r1", "r2", "r3", "r4", "r5"]),
        ("metrics.`val loss`", ["r2", "r1", "r3", "r4", "r5"]),
        ("params.epochs", ["r2", "r1", "r3", "r4", "r5"]),  # 9 < 10: numbers, not text
        ("params.epochs desc", ["r1", "r2", "r3", "r4", "r5"]),
        ("params.lr", ["r3", "r1", "r2", "r4", "r5"]),  # numbers, then text ('auto'), then missing
        ("params.lr desc", ["r2", "r1", "r3", "r4", "r5"]),  # 0.1 tie broken by text: '0.10' > '0.1'
        ("user", ["r1", "r3", "r2", "r5", "r4"]),
        ("user desc", ["r4", "r2", "r5", "r1", "r3"]),
        ("attributes.end_time desc", ["r5", "r2", "r1", "r3", "r4"]),
        ("end_time", ["r1", "r2", "r5", "r3", "r4"]),
        ("experiment desc, metrics.auc desc", ["r4", "r5", "r2", "r1", "r3"]),
        (["experiment", "-start_time"], ["r3", "r2", "r1", "r5", "r4"]),
    ])
    assert found(db, "metrics.auc > 0.75", order_by="metrics.auc desc") == ["r4", "r2", "r1"]


def test_paging_is_stable_with_ties(db):
    with db.connect() as connection:
        pages = [found(connection, order_by="user", limit=2, offset=offset) for offset in (0, 2, 4, 6)]
        assert pages == [["r1", "r3"], ["r2", "r5"], ["r4"], []]
        assert found(connection, order_by="start_time", limit=3) == ["r1", "r2", "r3"]
        assert found(connection, order_by="-metrics.auc", limit=1, offset=4) == ["r5"]


def test_many_keys_fit_in_one_query(db):
    text = " AND ".join(f"metrics.k{i} IS NULL" for i in range(60))
    assert found(db, text, order_by="run_id") == ALL


# ---------------------------------------------------------------- safety


def test_injection_in_literals_matches_nothing_and_harms_nothing(db):
    check_filters(db, [
        ("params.model = 'x'' OR 1=1 --'", []),
        ("tags.team = 'vision'' OR ''1''=''1'", []),
        ("tags.`team' OR '1'='1` = 'vision'", []),
        ('tags."team"" OR 1=1 --" = \'vision\'', []),
        ("name LIKE '%'';DROP TABLE runs;--'", []),
        ("run_id IN ('r1'') OR (''1''=''1', 'x')", []),
    ])
    with db.connect() as connection:
        for table in SEARCHED_TABLES:
            assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() > 0
        assert connection.execute(sa.select(sa.func.count()).select_from(schema.runs)).scalar() == 5


def test_compiled_sql_holds_no_user_literal():
    query = build_run_query(
        "tags.`secret key` = 'secret-value' AND params.lr IN (0.123456, 0.654321) "
        "OR name LIKE 'pattern%' OR start_time > '2026-03-04'",
        order_by="metrics.`sort key` desc",
    )
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        compiled = query.compile(dialect=dialect)
        sql = str(compiled)
        for literal in ("secret", "pattern", "sort key", "0.123456", "2026", str(epoch("2026-03-04T00:00:00"))):
            assert literal not in sql
        bound = []
        for value in compiled.params.values():
            bound.extend(value if isinstance(value, (list, tuple)) else [value])
        for value in ("secret key", "secret-value", 0.123456, "pattern%", epoch("2026-03-04T00:00:00"), "sort key"):
            assert value in bound


def test_one_join_per_distinct_key():
    sql = str(build_run_query("metrics.auc > 0.1 AND (metrics.auc < 0.99 OR metrics.auc IS NULL)",
                              order_by="metrics.auc, params.lr").compile(dialect=sqlite.dialect()))
    assert sql.count("JOIN latest_metrics") == 1
    assert sql.count("JOIN params") == 1
    assert sql.count("JOIN tags") == 0


# ---------------------------------------------------------------- parser


def test_parse_filter_builds_the_tree_with_precedence():
    tree = parse_filter("metrics.a > 1 or not tags.b = 'x' AND params.c IN (1, 2)")
    assert isinstance(tree, Or)
    first, second = tree.operands
    assert isinstance(first, Comparison) and (first.field.kind, first.field.key, first.op, first.value) == (
        "metrics", "a", ">", 1.0)
    assert isinstance(second, And)
    negated, in_list = second.operands
    assert isinstance(negated, Not) and negated.operand.field.key == "b"
    assert isinstance(in_list, InList) and in_list.values == (1.0, 2.0) and not in_list.negated
    assert parse_filter("") is None and parse_filter(" \n\t") is None and parse_filter(None) is None


def test_parse_filter_nodes():
    assert parse_filter("tags.x NOT ILIKE 'a%'") == Like(parse_filter("tags.x = 'a'").field, "a%", True, True)
    null = parse_filter("attributes.END_TIME is NOT null")
    assert isinstance(null, IsNull) and null.negated and null.field.key == "end_time"
    assert parse_filter("params.`a b` <> \"it\"\"s\"").value == 'it"s'
    assert parse_filter("params.`a``b` = 1").field.key == "a`b"
    assert parse_filter("start_time = '2026-01-31'").value == epoch("2026-01-31T00:00:00")


def test_parse_sort():
    keys = parse_sort("-metrics.auc, params.lr DESC ,start_time, metrics.`val loss` asc")
    assert [(k.field.kind, k.field.key, k.descending) for k in keys] == [
        ("metrics", "auc", True), ("params", "lr", True), ("attributes", "start_time", False),
        ("metrics", "val loss", False)]
    assert all(isinstance(k, SortKey) for k in keys)
    assert parse_sort(None) == [] and parse_sort("  ") == []
    assert len(parse_sort(["metrics.a", "-name"])) == 2


FILTER_ERRORS = [
    ("stauts = 'x'", 1, "unknown attribute 'stauts' (did you mean 'status'?)"),
    ("attributes.experment = 'x'", 1, "did you mean 'experiment'?"),
    ("auc > 0.5", 1, "metrics.auc"),
    ("metric.auc > 1", 1, "unknown prefix 'metric' (did you mean 'metrics'?)"),
    ("name = 'abc", 8, "unterminated string"),
    ('name = "abc', 8, "unterminated string"),
    ("metrics.`val loss > 1", 9, "unterminated quoted key"),
    ("tags.team IN ()", 14, "empty IN list"),
    ("tags.team IN 'a'", 14, "expected '('"),
    ("tags.team IN ('a' 'b')", 19, "expected ',' or ')'"),
    ("metrics.auc > 1 metrics.auc", 17, "unexpected 'metrics.auc'"),
    ("(metrics.auc > 1", 17, "expected ')' to close the '(' at column 1"),
    ("metrics.auc > 1)", 16, "unexpected ')'"),
    ("metrics.auc >", 14, "missing value after '>'"),
    ("metrics.auc > AND", 15, "missing value after '>'"),
    ("metrics.auc", 12, "expected an operator after metrics.auc"),
    ("metrics.auc > 0.8; DROP TABLE runs", 18, "unexpected character ';'"),
    ("metrics.auc > 0.8 -- comment", 19, "unexpected '-'"),
    ("metrics.auc = 'abc'", 15, "metrics.auc compares numbers; got 'abc'"),
    ("metrics.auc IN (1, 'abc')", 20, "compares numbers"),
    ("metrics.auc LIKE 'a%'", 13, "LIKE does not apply to metrics.auc"),
    ("start_time ILIKE '2026%'", 12, "ILIKE does not apply to start_time"),
    ("start_time > 'yesterday'", 14, "start_time takes epoch seconds or an ISO date"),
    ("end_time < '2026-13-45'", 12, "ISO date"),
    ("tags.team = 5", 13, "tags.team compares text; got 5 (quote it: '5')"),
    ("status = FINISHED", 10, "quote text: 'FINISHED'"),
    ("status = `FINISHED`", 10, "backticks quote keys"),
    ("end_time = NULL", 12, "(use IS NULL)"),
    ("metrics.точность > 1", 9, "quote keys with such characters"),
    ("params.x IN (1, 'a')", 17, "IN list mixes numbers and strings"),
    ("tags.x LIKE 'a\\'", 13, "lone backslash"),
    ("tags.x LIKE 5", 13, "LIKE takes a quoted pattern"),
    ("metrics. > 1", 9, "missing key after 'metrics.'"),
    ("metrics.`` > 1", 9, "empty quoted key"),
    ("`val loss` > 1", 1, "needs a prefix"),
    ("AND metrics.auc > 1", 1, "expected a field, found keyword AND"),
    ("metrics.auc > 1 AND", 20, "expected a field, found end of filter"),
    ("NOT", 4, "expected a field"),
    ("metrics.auc >> 1", 14, "missing value after '>', found '>'"),
    ("metrics.auc > 1e", 15, "invalid number '1e'"),
    ("metrics.auc > 1.2.3", 15, "invalid number '1.2.3'"),
    ("metrics.auc > 1e999", 15, "out of range"),
    ("tags.x NOT = 'a'", 12, "expected IN, LIKE or ILIKE after NOT"),
    ("tags.x IS 'a'", 11, "expected NULL after IS"),
    ("tags.x IS NOT 5", 15, "expected NULL after IS NOT"),
    ("tags.x = 'a' & tags.y = 'b'", 14, "unexpected character '&'"),
    ("(" * 60 + "run_id = 'r1'" + ")" * 60, 51, "nests deeper than 50"),
    ("NOT " * 60 + "run_id = 'r1'", 201, "nests deeper than 50"),
]


@pytest.mark.parametrize("text, column, expected", FILTER_ERRORS)
def test_filter_errors_name_the_problem_and_column(text, column, expected):
    with pytest.raises(InvalidInput) as raised:
        build_run_query(text)
    message = str(raised.value)
    assert expected in message
    assert f"at column {column}:" in message
    assert "\n" not in message
    assert message.startswith("invalid filter")


@pytest.mark.parametrize("text, column, expected", [
    ("metrics.auc sideways", 13, "expected ASC, DESC or ','"),
    ("-metrics.auc desc", 14, "'-' already sorts metrics.auc descending"),
    ("stauts", 1, "did you mean 'status'?"),
    ("metrics.auc,", 13, "expected a field, found end of order_by"),
    ("metrics.auc > 1", 13, "expected ASC, DESC or ','"),
    ("metrics.auc desc desc", 18, "unexpected 'desc'"),
    ("metrics.auc; DROP TABLE runs", 12, "unexpected character ';'"),
])
def test_sort_errors(text, column, expected):
    with pytest.raises(InvalidInput) as raised:
        build_run_query(order_by=text)
    message = str(raised.value)
    assert expected in message and f"at column {column}:" in message and "\n" not in message
    assert message.startswith("invalid order_by")


@pytest.mark.parametrize("kwargs, expected", [
    (dict(limit=0), "limit must be between 1 and 100000"),
    (dict(limit=100_001), "limit must be between 1 and 100000"),
    (dict(limit=1.5), "limit must be an integer"),
    (dict(limit=True), "limit must be an integer"),
    (dict(limit="10"), "limit must be an integer"),
    (dict(offset=-1), "offset must be at least 0"),
    (dict(offset=None), "offset must be an integer"),
    (dict(experiment_ids=["a"]), "experiment id must be an integer"),
    (dict(experiment_ids="1"), "experiment_ids must be a list"),
    (dict(experiment_ids=[True]), "experiment id must be an integer"),
    (dict(filter=5), "filter must be a string"),
    (dict(order_by=5), "order_by must be a string or a list"),
    (dict(order_by=[5]), "order_by entries must be strings"),
    (dict(filter=" AND ".join(f"metrics.k{i} IS NULL" for i in range(61))), "more than 60 distinct keys"),
])
def test_argument_errors(kwargs, expected):
    with pytest.raises(InvalidInput, match=re.escape(expected)):
        build_run_query(**kwargs)


def test_limits_accept_their_bounds():
    build_run_query(limit=1, offset=0)
    build_run_query(limit=100_000, offset=10**9)


def test_import_stays_light():
    code = ("import sys, mlops_jupyter.registry.search; "
            "heavy = {'pandas', 'numpy', 'lark', 'difflib'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
