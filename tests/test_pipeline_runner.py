"""The pipeline runner: step values stored and read back equal, the step cache, parameters,
failures reported at their notebook cell, figures, the Dask executor and the CLI.

Pipelines are written by hand with the spec's own classes, as the converter would write them.
"""

import hashlib
import os
import textwrap

import numpy as np
import pandas as pd
import pytest

import mlops_jupyter as mlops
from mlops_jupyter import api, cli
from mlops_jupyter.errors import InvalidInput, MlopsError, StepFailed
from mlops_jupyter.pipeline.runner import load_step_outputs
from mlops_jupyter.pipeline.spec import Pipeline, Spec, Step


def step(name, cells, *, inputs=None, parameters=(), outputs=(), results=(), imports=""):
    """A step module as the converter writes it: ``cells`` is ``{cell index: code}``."""
    inputs = dict(inputs or {})
    returns = [*outputs, *results]
    body = "".join(
        f"    # --- cell {index} ---\n" + textwrap.indent(textwrap.dedent(code).strip() + "\n", "    ")
        for index, code in cells.items()
    )
    if returns:
        body += f"    return {', '.join(returns)}\n"
    source = (f'"""Step `{name}`."""\n\n{textwrap.dedent(imports).strip()}\n\n\n'
              f"def {name}({', '.join([*inputs, *parameters])}):\n{body}")
    spec_step = Step(name, list(cells), [f"id{i}" for i in cells], inputs, list(parameters), list(outputs),
                     list(results), hashlib.sha256(source.encode()).hexdigest())
    return spec_step, source


def write_pipeline(folder, steps, *, parameters=None, workdir=None, name="demo"):
    files = {f"steps/{s.name}.py": source for s, source in steps}
    if parameters is not None:
        lines = "".join(f"        {key!r}: {value!r},\n" for key, value in parameters.items())
        files["parameters.py"] = f"def defaults():\n    return {{\n{lines}    }}\n"
    notebook = {"path": "demo.ipynb", "sha256": "ab" * 32, "nbformat": 4, "workdir": str(workdir or folder.parent)}
    spec = Spec(name, notebook, [s for s, _ in steps],
                parameters={key: {"default": repr(value)} for key, value in (parameters or {}).items()})
    return Pipeline(spec, files).write(folder)


def step_runs(pipeline_run_id):
    """The step runs of a pipeline run, by step name."""
    runs = api.search_runs(output="list", limit=1000)
    return {r["tags"]["mlops.step"]: r for r in runs if r["parent_run_id"] == pipeline_run_id}


def statuses(result):
    return {name: s["status"] for name, s in result["steps"].items()}


# ---- a chain with a side branch: load -> scale -> report, and load -> count ----------------

CALLS = "calls.txt"  # each step appends its name: proof of which step functions executed


def chain(tmp_path, *, scale_factor="2", parameters=None):
    record = "with open({calls!r}, 'a') as f: f.write('{name}\\n')"
    steps = [
        step("load", {1: record.format(calls=CALLS, name="load") + "\nrows = list(range(n))"},
             parameters=["n"], outputs=["rows"]),
        step("scale", {2: record.format(calls=CALLS, name="scale") + f"\nscaled = [r * {scale_factor} for r in rows]"},
             inputs={"rows": "load"}, outputs=["scaled"]),
        step("report", {3: record.format(calls=CALLS, name="report") + "\ntotal = sum(scaled) + offset"},
             inputs={"scaled": "scale"}, parameters=["offset"], results=["total"]),
        step("count", {4: record.format(calls=CALLS, name="count") + "\nhow_many = len(rows)"},
             inputs={"rows": "load"}, results=["how_many"]),
    ]
    return write_pipeline(tmp_path / "pipe", steps, parameters=parameters or {"n": 4, "offset": 0.5},
                          workdir=tmp_path)


def calls(tmp_path):
    path = tmp_path / CALLS
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def test_unchanged_rerun_caches_every_step_and_records_the_same_artifacts(registry, tmp_path, capsys):
    folder = chain(tmp_path)
    first = mlops.run_pipeline(folder)
    assert calls(tmp_path) == ["load", "scale", "report", "count"]
    assert statuses(first) == dict.fromkeys(["load", "scale", "report", "count"], "ran")
    assert load_step_outputs(first["steps"]["report"]["run_id"]) == {"total": 12.5}

    second = mlops.run_pipeline(folder)
    assert calls(tmp_path) == []  # no step function executed
    assert statuses(second) == dict.fromkeys(["load", "scale", "report", "count"], "cached")
    assert "0 ran, 4 cached" in second["summary"]
    progress = capsys.readouterr().err.splitlines()
    assert progress[-4:] == ["[1/4] load    cached", "[2/4] scale   cached", "[3/4] report  cached",
                             "[4/4] count   cached"]
    assert progress[0].startswith("[1/4] load    ran ") and progress[0].endswith(" s")

    runs = step_runs(second["run_id"])
    for name, outcome in second["steps"].items():
        assert outcome["outputs"] == first["steps"][name]["outputs"]
        cached_from = runs[name]["tags"]["mlops.cached_from"]
        assert cached_from == first["steps"][name]["run_id"]
        assert runs[name]["status"] == "FINISHED"
        assert mlops.get_run(outcome["run_id"])["artifacts"] == mlops.get_run(cached_from)["artifacts"]
    assert load_step_outputs(second["steps"]["report"]["run_id"]) == {"total": 12.5}

    pipeline_run = mlops.get_run(second["run_id"])
    assert pipeline_run["name"] == "demo" and pipeline_run["status"] == "FINISHED"
    assert pipeline_run["params"] == {"n": "4", "offset": "0.5"}
    assert pipeline_run["tags"]["mlops.notebook.sha256"] == "ab" * 32
    assert pipeline_run["tags"]["mlops.notebook.path"] == "demo.ipynb"
    assert pipeline_run["tags"]["mlops.pipeline.dir"] == str(folder.resolve())
    assert '"name": "demo"' in pipeline_run["code"]
    assert "def scale(rows)" in mlops.get_run(first["steps"]["scale"]["run_id"])["code"]


def test_a_changed_step_reruns_with_its_downstream_only(registry, tmp_path):
    mlops.run_pipeline(chain(tmp_path))
    calls(tmp_path)
    changed = mlops.run_pipeline(chain(tmp_path, scale_factor="3"))
    assert calls(tmp_path) == ["scale", "report"]
    assert statuses(changed) == {"load": "cached", "scale": "ran", "report": "ran", "count": "cached"}
    assert load_step_outputs(changed["steps"]["report"]["run_id"]) == {"total": 18.5}


def test_a_changed_parameter_reruns_the_steps_that_take_it(registry, tmp_path):
    folder = chain(tmp_path)
    mlops.run_pipeline(folder)
    calls(tmp_path)
    result = mlops.run_pipeline(folder, params={"offset": 1.5})
    assert calls(tmp_path) == ["report"]
    assert load_step_outputs(result["steps"]["report"]["run_id"]) == {"total": 13.5}
    result = mlops.run_pipeline(folder, params={"n": 2})  # the first step: everything downstream follows
    assert calls(tmp_path) == ["load", "scale", "report", "count"]
    assert load_step_outputs(result["steps"]["count"]["run_id"]) == {"how_many": 2}
    assert mlops.get_run(result["run_id"])["params"] == {"n": "2", "offset": "0.5"}


def test_a_step_whose_stored_outputs_are_gone_runs_again(registry, tmp_path):
    folder = chain(tmp_path)
    first = mlops.run_pipeline(folder)
    calls(tmp_path)
    (sha256,) = first["steps"]["load"]["outputs"].values()
    (tmp_path / "artifacts" / "sha256" / sha256[:2] / sha256[2:]).unlink()
    again = mlops.run_pipeline(folder)
    assert calls(tmp_path) == ["load"]
    assert statuses(again)["load"] == "ran" and statuses(again)["scale"] == "cached"


def test_only_runs_a_step_and_what_it_needs(registry, tmp_path):
    folder = chain(tmp_path)
    result = mlops.run_pipeline(folder, only="scale")
    assert calls(tmp_path) == ["load", "scale"]
    assert statuses(result) == {"load": "ran", "scale": "ran", "report": "not run", "count": "not run"}
    assert set(step_runs(result["run_id"])) == {"load", "scale"}
    assert mlops.run_pipeline(folder, only="report")["steps"]["scale"]["status"] == "cached"
    assert calls(tmp_path) == ["report"]
    with pytest.raises(MlopsError, match="has no step 'nope'"):
        mlops.run_pipeline(folder, only="nope")


def test_parameters_are_checked_against_their_defaults(registry, tmp_path):
    defaults = {"n": 4, "offset": 0.5, "label": "x", "verbose": False, "extra": None}
    folder = chain(tmp_path, parameters=defaults)
    result = mlops.run_pipeline(folder, params={"offset": 2})  # an int where the default is a float
    assert load_step_outputs(result["steps"]["report"]["run_id"]) == {"total": 14.0}
    assert mlops.get_run(result["run_id"])["params"]["offset"] == "2.0"

    mistakes = [
        ({"ofset": 1.0}, "no parameter 'ofset' (did you mean 'offset'?); its parameters are: n, offset, label"),
        ({"n": 2.5}, "parameter 'n' defaults to 4 (int): 2.5 (float) does not fit"),
        ({"n": True}, "parameter 'n' defaults to 4 (int): True (bool) does not fit"),
        ({"verbose": 1}, "parameter 'verbose' defaults to False (bool): 1 (int) does not fit"),
        ({"label": 5}, "parameter 'label' defaults to 'x' (str): 5 (int) does not fit; to pass text, quote it"),
    ]
    before = api.registry_counts()["runs"]
    for params, message in mistakes:
        with pytest.raises(InvalidInput) as raised:
            mlops.run_pipeline(folder, params=params)
        assert message in str(raised.value)
    assert api.registry_counts()["runs"] == before  # refused before anything is recorded
    result = mlops.run_pipeline(folder, params={"extra": [1, 2]})  # no type to check against None
    assert mlops.get_run(result["run_id"])["params"]["extra"] == "[1, 2]"


def test_parameters_given_to_a_notebook_without_a_parameters_cell(registry, tmp_path):
    folder = write_pipeline(tmp_path / "pipe", [step("only", {0: "x = 1"}, results=["x"])])
    with pytest.raises(InvalidInput, match="its notebook has no cell tagged `parameters`"):
        mlops.run_pipeline(folder, params={"lr": 0.1})
    assert statuses(mlops.run_pipeline(folder)) == {"only": "ran"}


# ---- stored values ---------------------------------------------------------------------------

PRODUCE = """
frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, None, 2.5], "c": ["x", "y", None],
                      "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])},
                     index=pd.Index([10, 20, 30], name="id"))
odd_frame = pd.DataFrame({0: [1, 2], "mixed": [1, "one"]})  # Parquet refuses both
series = pd.Series([1.5, 2.5], name="price")
matrix = np.arange(12, dtype="float32").reshape(3, 4)
objects = np.array([{"k": 1}, None], dtype=object)
config = {"layers": [64, 32], "name": "net", "rate": 0.1, "flag": True, "none": None}
pair = (1, 2)
point = Point(3, 4)
numbers = np
model = LogisticRegression().fit(matrix[:, :2], [0, 1, 0])
"""
PRODUCED = ["frame", "odd_frame", "series", "matrix", "objects", "config", "pair", "point", "numbers", "model"]


def test_outputs_read_back_equal_to_what_the_steps_produced(registry, tmp_path):
    imports = """
        import numpy as np
        import pandas as pd
        from sklearn.linear_model import LogisticRegression


        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

            def norm(self):
                return (self.x ** 2 + self.y ** 2) ** 0.5
    """
    produce = step("produce", {0: PRODUCE}, outputs=PRODUCED, imports=imports)
    consume = step("consume", {1: "checks = [float(frame['a'].sum()), point.norm(), numbers.__name__,\n"
                                   "          int(model.predict(matrix[:1, :2])[0]), len(odd_frame)]"},
                   inputs={name: "produce" for name in PRODUCED}, results=["checks"])
    result = mlops.run_pipeline(write_pipeline(tmp_path / "pipe", [produce, consume]))

    run_id = result["steps"]["produce"]["run_id"]
    paths = {a["path"] for a in mlops.get_run(run_id)["artifacts"]}
    assert paths == {"outputs/frame.parquet", "outputs/odd_frame.pkl", "outputs/series.series.parquet",
                     "outputs/matrix.npy", "outputs/objects.pkl", "outputs/config.json", "outputs/pair.pkl",
                     "outputs/point.pkl", "outputs/numbers.module", "outputs/model.skops"}
    values = load_step_outputs(run_id)
    namespace = {}
    exec(textwrap.dedent(imports) + textwrap.dedent(PRODUCE), namespace)
    pd.testing.assert_frame_equal(values["frame"], namespace["frame"])
    pd.testing.assert_frame_equal(values["odd_frame"], namespace["odd_frame"])
    pd.testing.assert_series_equal(values["series"], namespace["series"])
    np.testing.assert_array_equal(values["matrix"], namespace["matrix"])
    assert values["matrix"].dtype == np.float32
    assert list(values["objects"]) == [{"k": 1}, None]
    assert values["config"] == namespace["config"]
    assert values["pair"] == (1, 2)
    assert (values["point"].x, values["point"].y, values["point"].norm()) == (3, 4, 5.0)
    assert values["numbers"] is np
    np.testing.assert_array_equal(values["model"].coef_, namespace["model"].coef_)
    assert load_step_outputs(result["steps"]["consume"]["run_id"]) == {"checks": [6.0, 5.0, "numpy", 0, 2]}


def test_an_unstorable_output_names_the_variable_and_the_step(registry, tmp_path):
    for value, kind in [("(i for i in range(3))", "generator"), ("threading.Lock()", "lock")]:
        make = step("make", {0: f"source = {value}"}, outputs=["source"], imports="import threading")
        use = step("use", {1: "first = next(iter(source))"}, inputs={"source": "make"}, results=["first"])
        with pytest.raises(MlopsError) as raised:
            mlops.run_pipeline(write_pipeline(tmp_path / "pipe", [make, use]))
        message = str(raised.value)
        assert message.startswith("step 'make': variable 'source' is a ") and kind in message
        assert "cannot be stored" in message
    runs = {r["name"]: r["status"] for r in api.search_runs(output="list")}
    assert runs == {"demo": "FAILED", "make": "FAILED"}


def test_an_unstorable_result_is_left_out_with_a_warning(registry, tmp_path, capsys):
    only = step("only", {0: "handle = threading.Lock()\nsize = 3"}, results=["handle", "size"],
                imports="import threading")
    result = mlops.run_pipeline(write_pipeline(tmp_path / "pipe", [only]))
    assert result["status"] == "FINISHED"
    assert load_step_outputs(result["steps"]["only"]["run_id"]) == {"size": 3}
    assert "warning: result not kept: step 'only': variable 'handle'" in capsys.readouterr().err


# ---- failures, figures ----------------------------------------------------------------------


def test_a_failing_step_is_reported_at_its_notebook_cell(registry, tmp_path, capsys):
    steps = [
        step("prepare", {0: "data = [1, 2]"}, outputs=["data"]),
        step("divide", {3: "total = sum(data)", 4: "zero = 0\nratio = total / zero"},
             inputs={"data": "prepare"}, outputs=["ratio"]),
        step("publish", {5: "shown = ratio"}, inputs={"ratio": "divide"}, results=["shown"]),
    ]
    with pytest.raises(StepFailed) as raised:
        mlops.run_pipeline(write_pipeline(tmp_path / "pipe", steps))
    assert str(raised.value) == (
        "step 'divide' failed in notebook cell 4 (steps/divide.py line 11): ZeroDivisionError: division by zero"
    )
    assert (raised.value.step, raised.value.cell) == ("divide", 4)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)
    runs = {r["name"]: r["status"] for r in api.search_runs(output="list")}
    assert runs == {"demo": "FAILED", "prepare": "FINISHED", "divide": "FAILED"}  # publish never started
    assert capsys.readouterr().err.splitlines()[-1] == "[2/3] divide   FAILED"


def test_steps_run_in_the_notebook_folder_with_its_modules_importable(registry, tmp_path):
    notebook_folder = tmp_path / "notebooks"
    notebook_folder.mkdir()
    (notebook_folder / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (notebook_folder / "input.csv").write_text("a\n1\n2\n")
    read = step("read", {0: "import helpers\nwith open('input.csv') as f:\n    rows = f.read().split()[1:]\n"
                            "doubled = [helpers.double(int(r)) for r in rows]"}, results=["doubled"])
    result = mlops.run_pipeline(write_pipeline(tmp_path / "pipe", [read], workdir=notebook_folder))
    assert load_step_outputs(result["steps"]["read"]["run_id"]) == {"doubled": [2, 4]}


def test_figures_are_stored_as_png_artifacts(registry, tmp_path):
    imports = "import matplotlib.pyplot as plt\nfrom mlops_jupyter.pipeline.figures import save_figures"
    plot = step("plot", {0: "plt.plot([1, 2, 3]); save_figures()", 1: "plt.figure(); plt.bar([1], [2])\nshown = 1"},
                results=["shown"], imports=imports)
    result = mlops.run_pipeline(write_pipeline(tmp_path / "pipe", [plot]))
    run_id = result["steps"]["plot"]["run_id"]
    stored = {a["path"]: a["sha256"] for a in mlops.get_run(run_id)["artifacts"]}
    assert set(stored) == {"figures/1.png", "figures/2.png", "outputs/shown.json"}  # saved, and left open
    for path in ("figures/1.png", "figures/2.png"):
        assert api.artifact_bytes(stored[path]).startswith(b"\x89PNG\r\n")
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


# ---- executors and the CLI ------------------------------------------------------------------


def wait_for(side, other):
    """Code for a step that proves it runs alongside ``other``: it waits until that one has started."""
    return (f"open('{side}.started', 'w').close()\n"
            f"deadline = time.time() + 60\n"
            f"while not os.path.exists('{other}.started'):\n"
            f"    assert time.time() < deadline, '{other} never started while {side} ran'\n"
            f"    time.sleep(0.01)\n"
            f"{side}_pid = os.getpid()")


@pytest.mark.slow  # a LocalCluster takes seconds to start
def test_dask_runs_independent_branches_in_parallel_with_the_same_outputs(tmp_path):
    mlops.connect(f"sqlite:///{tmp_path / 'registry.db'}", artifacts=str(tmp_path / "artifacts"))  # one cluster
    imports = "import os\nimport time"
    steps = [
        step("source", {0: "base = np.arange(6)"}, outputs=["base"], imports="import numpy as np"),
        step("left", {1: wait_for("left", "right"), 2: "left = base * 2"},
             inputs={"base": "source"}, outputs=["left", "left_pid"], imports=imports),
        step("right", {3: wait_for("right", "left"), 4: "right = base + 1"},
             inputs={"base": "source"}, outputs=["right", "right_pid"], imports=imports),
        step("join", {5: "joined = (left + right).tolist()\nmlops.log_metrics({'total': sum(joined)})"},
             inputs={"left": "left", "right": "right"}, results=["joined"], imports="import mlops_jupyter as mlops"),
    ]
    folder = write_pipeline(tmp_path / "pipe", steps)
    on_dask = mlops.run_pipeline(folder, executor="dask")
    assert statuses(on_dask) == dict.fromkeys(["source", "left", "right", "join"], "ran")
    runs = step_runs(on_dask["run_id"])
    assert set(runs) == {"source", "left", "right", "join"}
    pids = {load_step_outputs(runs[side]["id"])[f"{side}_pid"] for side in ("left", "right")}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes
    assert runs["join"]["metrics"] == {"total": 51.0}
    joined = load_step_outputs(on_dask["steps"]["join"]["run_id"])["joined"]

    (tmp_path / "again").mkdir()
    local = mlops.run_pipeline(write_pipeline(tmp_path / "again" / "pipe", steps))  # same keys: from cache
    assert statuses(local) == dict.fromkeys(["source", "left", "right", "join"], "cached")
    assert load_step_outputs(local["steps"]["join"]["run_id"])["joined"] == joined == [1, 4, 7, 10, 13, 16]


def test_cli_runs_a_pipeline_and_reports_a_bad_param_in_one_line(registry_url, tmp_path, capsys):
    folder = chain(tmp_path)
    assert cli.main(["pipeline", "run", str(folder), "--registry", registry_url, "--param", "n=3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline run ") and "4 of 4 steps: 4 ran, 0 cached, 0 not run" in out
    assert cli.main(["pipeline", "run", str(folder), "--registry", registry_url, "--param", "n=3"]) == 0
    assert "0 ran, 4 cached" in capsys.readouterr().out
    assert cli.main(["pipeline", "run", str(folder), "--registry", registry_url, "--param", "n=many"]) == 1
    assert capsys.readouterr().err == (
        "mlops: error: parameter 'n' defaults to 4 (int): 'many' (str) does not fit\n"
    )
    assert cli.main(["pipeline", "run", str(folder), "--registry", registry_url, "--param", "n=3", "--only", "count"]) == 0
    assert "2 of 4 steps: 0 ran, 2 cached, 2 not run" in capsys.readouterr().out
