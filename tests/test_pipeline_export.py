"""``mlops pipeline export``: Kubeflow Pipelines and Airflow 3 jobs, one task per step.

The always-run tests read the generated files as Python source. The optional ones run them
with the real SDKs, in the venvs that ``tests/export_envs.sh`` makes (``.venv-export/`` or
``$MLOPS_TEST_EXPORT_ENVS``; ``.ci/run`` sets that, and then a missing venv fails instead of
skipping): Airflow's DagBag and ``airflow dags test``, kfp's compiler and its local
SubprocessRunner. Those runs call this venv's ``mlops`` by path, so every step really runs.
"""

import ast
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_jupyter import api, cli
from mlops_jupyter.errors import InvalidInput, NotFound
from mlops_jupyter.pipeline.spec import Pipeline, Spec, Step

REPO = Path(__file__).resolve().parent.parent
MLOPS = str(Path(sys.executable).with_name("mlops"))
# A diamond: total reads both load and double; report also follows double, reading nothing from it.
# shape's default is a tuple, which no job parameter can carry.
MODULES = {
    "load": "def load(n, shape):\n    return list(range(n))\n",
    "double": "def double(data):\n    return [2 * x for x in data]\n",
    "total": "def total(data, doubled, scale):\n    return (sum(data) + sum(doubled)) * scale\n",
    "report": "from pathlib import Path\n\n\ndef report(result, report_path):\n    Path(report_path).write_text(repr(result))\n",
}
SETTINGS = ("mlops_pipeline_dir", "mlops_command", "mlops_registry")
EDGES = {("load", "double"), ("load", "total"), ("double", "total"), ("total", "report"), ("double", "report")}


def _step(name, inputs, parameters, outputs, after=()):
    code = hashlib.sha256(MODULES[name].encode()).hexdigest()
    return Step(
        name=name, cells=[], cell_ids=[], inputs=inputs, parameters=parameters, outputs=outputs, results=[],
        code_sha256=code, after=list(after),
    )


@pytest.fixture
def pipeline_dir(tmp_path):
    """A pipeline folder written by hand as convert would: its report step writes report.txt."""
    defaults = {"n": "5", "scale": "0.5", "shape": "(2, 3)", "report_path": repr(str(tmp_path / "report.txt"))}
    parameters = "def defaults():\n    return {" + ", ".join(f"{k!r}: {v}" for k, v in defaults.items()) + "}\n"
    spec = Spec(
        name="churn features",
        notebook={"path": "churn.ipynb", "sha256": "", "nbformat": 4, "workdir": str(tmp_path)},
        steps=[
            _step("load", {}, ["n", "shape"], ["data"]),
            _step("double", {"data": "load"}, [], ["doubled"]),
            _step("total", {"data": "load", "doubled": "double"}, ["scale"], ["result"]),
            _step("report", {"result": "total"}, ["report_path"], [], after=["double"]),
        ],
        parameters={name: {"default": text} for name, text in defaults.items()},
        parameters_sha256=hashlib.sha256(parameters.encode()).hexdigest(),
    )
    files = {f"steps/{name}.py": text for name, text in MODULES.items()}
    return Pipeline(spec, {**files, "parameters.py": parameters}).write(tmp_path / "churn_pipeline")


def _calls(tree, attribute):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == attribute]


def _imported_modules(tree):
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }


def _kfp_importable(monkeypatch, importable):
    """Pretend this interpreter has kfp, or has not, whatever is installed."""
    find_spec = importlib.util.find_spec
    answer = True if importable else None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: answer if name == "kfp" else find_spec(name, *rest))


# ---------------------------------------------------------------- always run


def test_airflow_dag_has_a_task_per_step_and_the_dependencies(pipeline_dir):
    path = api.export_pipeline(pipeline_dir, "airflow")
    assert path == pipeline_dir / "airflow_dag.py"
    tree = ast.parse(path.read_text())
    # Airflow 3's API only: what broke LineaPy's DAGs (airflow.operators.*) must not appear.
    assert {module for module in _imported_modules(tree) if module.startswith("airflow")} == {"airflow.sdk"}
    tasks = {call.keywords[0].value.value for call in _calls(tree, "override")}
    assert tasks == set(MODULES)
    edges = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            upstream = node.left.elts if isinstance(node.left, ast.List) else [node.left]
            edges |= {(name.id.removesuffix("_task"), node.right.id.removesuffix("_task")) for name in upstream}
    assert edges == EDGES
    dag = next(call for call in ast.walk(tree) if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DAG")
    keywords = {keyword.arg: keyword.value for keyword in dag.keywords}
    assert ast.literal_eval(keywords["dag_id"]) == "churn_features"
    assert ast.literal_eval(keywords["schedule"]) is None
    params = {ast.literal_eval(key): value for key, value in zip(keywords["params"].keys, keywords["params"].values)}
    assert set(params) == {*SETTINGS, "n", "scale", "report_path"}
    assert [ast.literal_eval(arg) for arg in params["scale"].args] == [0.5]
    assert "shape keeps its notebook default, (2, 3)" in path.read_text()


def test_kfp_script_has_a_component_per_step_and_the_dependencies(pipeline_dir, monkeypatch):
    _kfp_importable(monkeypatch, False)
    with pytest.warns(UserWarning, match="kfp is not installed here.*pip install kfp, then python"):
        path = api.export_pipeline(pipeline_dir, "kfp")
    assert path == pipeline_dir / "kfp_pipeline.py"
    tree = ast.parse(path.read_text())
    components = {
        node.name: node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("step_")
    }
    assert set(components) == {f"step_{name}" for name in MODULES}
    for name, function in components.items():
        assert ast.unparse(function.decorator_list[0]) == "dsl.component(base_image=IMAGE)"
        assert f"'--only', {name.removeprefix('step_')!r}" in ast.unparse(function)
        # Every step gets every parameter: --only recomputes a changed upstream step with these values.
        assert [arg.arg for arg in function.args.args] == [*SETTINGS, "n", "scale", "report_path"]
    edges = set()
    for call in _calls(tree, "after"):
        step = call.func.value
        while not isinstance(step, ast.Call) or not isinstance(step.func, ast.Name):
            step = step.func.value
        edges |= {(task.id.removesuffix("_task"), step.func.id.removeprefix("step_")) for task in call.args}
    assert edges == EDGES
    pipeline = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "pipeline")
    signature = {arg.arg: ast.unparse(arg.annotation) for arg in pipeline.args.args}
    assert signature == {**dict.fromkeys(SETTINGS, "str"), "n": "int", "scale": "float", "report_path": "str"}
    assert [ast.literal_eval(value) for value in pipeline.args.defaults][:2] == [str(pipeline_dir), "mlops"]


def test_kfp_yaml_asked_for_without_kfp_is_refused_after_writing_the_script(pipeline_dir, monkeypatch):
    _kfp_importable(monkeypatch, False)
    with pytest.raises(InvalidInput, match="needs the kfp SDK"):
        api.export_pipeline(pipeline_dir, "kfp", out=pipeline_dir.parent / "jobs" / "churn.yaml")
    assert (pipeline_dir.parent / "jobs" / "churn.py").is_file()


def test_cli_writes_to_the_path_given(pipeline_dir, capsys):
    out = pipeline_dir.parent / "dags" / "churn.py"
    assert cli.main(["pipeline", "export", str(pipeline_dir), "--to", "airflow", "-o", str(out)]) in (0, None)
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    ast.parse(out.read_text())


@pytest.mark.parametrize("notebook", sorted((REPO / "example_notebooks").glob("*.ipynb")), ids=lambda path: path.stem)
def test_converted_example_notebooks_export_every_step(notebook, tmp_path, monkeypatch):
    steps = {step.name for step in api.convert(notebook, out=tmp_path / "pipeline").spec.steps}
    dag = ast.parse(api.export_pipeline(tmp_path / "pipeline", "airflow").read_text())
    assert {call.keywords[0].value.value for call in _calls(dag, "override")} == steps
    _kfp_importable(monkeypatch, False)
    with pytest.warns(UserWarning, match="kfp is not installed"):
        job = ast.parse(api.export_pipeline(tmp_path / "pipeline", "kfp").read_text())
    assert {node.name.removeprefix("step_") for node in job.body if isinstance(node, ast.FunctionDef)} == steps | {"pipeline"}


def test_bad_input(pipeline_dir, tmp_path):
    with pytest.raises(InvalidInput, match="unknown export target 'argo'; choose one of: kfp, airflow"):
        api.export_pipeline(pipeline_dir, "argo")
    with pytest.raises(NotFound, match="pipeline.json is missing"):
        api.export_pipeline(tmp_path, "airflow")
    spec_file = pipeline_dir / "pipeline.json"
    spec = json.loads(spec_file.read_text())
    spec["parameters"]["mlops_command"] = {"default": "'x'"}
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(InvalidInput, match="'mlops_command' clashes"):
        api.export_pipeline(pipeline_dir, "kfp")


# ---------------------------------------------------------------- optional: the real SDKs


def export_python(name):
    """The python of export venv ``name``: skip without it, unless $MLOPS_TEST_EXPORT_ENVS demands it."""
    required = os.environ.get("MLOPS_TEST_EXPORT_ENVS")
    python = Path(required or REPO / ".venv-export") / name / "bin" / "python"
    if not python.exists():
        if required:
            pytest.fail(f"MLOPS_TEST_EXPORT_ENVS is set but {python} is missing; run tests/export_envs.sh")
        pytest.skip(f"no {name} export venv; make one with tests/export_envs.sh")
    return str(python)


def _run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _all_cached_with(monkeypatch, pipeline_dir, registry, params):
    """Every step's outputs are where the orchestrator's tasks left them: a full run reruns nothing."""
    monkeypatch.setenv("MLOPS_REGISTRY_URL", registry)
    result = api.run_pipeline(pipeline_dir, params=params)
    return {name: outcome["status"] for name, outcome in result["steps"].items()} == dict.fromkeys(MODULES, "cached")


LOAD_DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {path: str(error) for path, error in bag.import_errors.items()},
    "warnings": {path: list(warnings) for path, warnings in bag.captured_warnings.items()},
    "dags": {
        dag.dag_id: {
            "edges": sorted([upstream, task.task_id] for task in dag.tasks for upstream in task.upstream_task_ids),
            "params": {name: dag.params[name] for name in dag.params},
            "timetable": type(dag.timetable).__name__,
        }
        for dag in bag.dags.values()
    },
}))
"""


def _airflow_env(tmp_path, dags):
    home = tmp_path / "airflow_home"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def test_airflow_dagbag_loads_the_dag_and_dags_test_runs_every_step(pipeline_dir, tmp_path, monkeypatch):
    python = export_python("airflow")
    dags = tmp_path / "dags"
    dag_file = api.export_pipeline(pipeline_dir, "airflow", out=dags / "churn.py")
    env = _airflow_env(tmp_path, dags)
    loaded = json.loads(_run([python, "-c", LOAD_DAGBAG, str(dag_file)], env=env).splitlines()[-1])
    assert loaded["errors"] == {} and loaded["warnings"] == {}
    dag = loaded["dags"]["churn_features"]
    assert {tuple(edge) for edge in dag["edges"]} == EDGES
    assert dag["timetable"] == "NullTimetable"
    assert dag["params"]["scale"] == 0.5 and "shape" not in dag["params"]

    airflow = str(Path(python).with_name("airflow"))
    _run([airflow, "db", "migrate"], env=env)
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    conf = {"mlops_command": MLOPS, "mlops_registry": registry, "scale": 2.0}
    _run([airflow, "dags", "test", "churn_features", "--conf", json.dumps(conf)], env=env)
    assert (tmp_path / "report.txt").read_text() == "60.0"  # (0+1+2+3+4) * 3 * scale
    assert _all_cached_with(monkeypatch, pipeline_dir, registry, {"scale": 2.0})


RUN_LOCALLY = """
import importlib.util, json, sys
from kfp import local
spec = importlib.util.spec_from_file_location("job", sys.argv[1])
job = importlib.util.module_from_spec(spec)
spec.loader.exec_module(job)
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
job.pipeline(**json.loads(sys.argv[3]))
"""

READ_YAML = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"


def test_kfp_compiles_and_runs_every_step_with_the_subprocess_runner(pipeline_dir, tmp_path, monkeypatch):
    python = export_python("kfp")
    # export() compiles with the interpreter it runs in when that has kfp: here, the kfp venv's.
    with monkeypatch.context() as patch:
        patch.setattr(sys, "executable", python)
        _kfp_importable(patch, True)
        compiled = api.export_pipeline(pipeline_dir, "kfp")
    assert compiled == pipeline_dir / "kfp_pipeline.yaml"
    document = json.loads(_run([python, "-c", READ_YAML, str(compiled)]))
    tasks = document["root"]["dag"]["tasks"]
    edges = {(upstream, name) for name, task in tasks.items() for upstream in task.get("dependentTasks", [])}
    # KFP names tasks after their components, step-NAME, and shows the step's name; its cache stays off, ours decides.
    assert edges == {(f"step-{a}", f"step-{b}") for a, b in EDGES}
    assert {task["taskInfo"]["name"] for task in tasks.values()} == set(MODULES)
    assert not any(task["cachingOptions"].get("enableCache") for task in tasks.values())
    assert set(document["root"]["inputDefinitions"]["parameters"]) >= {"n", "scale", "report_path", "mlops_registry"}

    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    arguments = {"mlops_command": MLOPS, "mlops_registry": registry, "scale": 2.0}
    script = pipeline_dir / "kfp_pipeline.py"
    _run([python, "-c", RUN_LOCALLY, str(script), str(tmp_path / "kfp_root"), json.dumps(arguments)])
    assert (tmp_path / "report.txt").read_text() == "60.0"
    assert _all_cached_with(monkeypatch, pipeline_dir, registry, {"scale": 2.0})

    # A step that fails fails the KFP run: nothing downstream pretends to succeed.
    failing = subprocess.run(
        [python, "-c", RUN_LOCALLY, str(script), str(tmp_path / "kfp_root"), json.dumps({"mlops_command": "false"})],
        capture_output=True, text=True, timeout=600,
    )
    assert failing.returncode != 0 and "step-load" in failing.stdout + failing.stderr
