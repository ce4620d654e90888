"""Export a pipeline folder as a job for another orchestrator: Kubeflow Pipelines or Airflow 3.

Each orchestrator task runs one step with ``mlops pipeline run DIR --only STEP``. The steps it
needs are unchanged by then, so they come from the registry's cache and the artifact store:
tasks share nothing but the registry, which every worker must reach. Every task passes every
parameter's value, not only its step's: ``--only`` would otherwise recompute an upstream step
with its default and the step would read the wrong inputs. The generated files let
the user choose, per run, the pipeline folder as the worker sees it, the ``mlops`` command and
the registry URL (empty: the worker's ``MLOPS_REGISTRY_URL``), plus every notebook parameter
whose default is a JSON-like literal; other parameters keep their notebook default.

Nothing here imports kfp or airflow: KFP's YAML is compiled by running the generated script
with this interpreter when it has kfp, and the Airflow DAG is plain source.
"""

import ast
import importlib.util
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

from ..errors import InvalidInput, MlopsError
from . import spec as specs

TARGETS = ("kfp", "airflow")
DEFAULT_FILES = {"kfp": "kfp_pipeline.py", "airflow": "airflow_dag.py"}
# Arguments of every task, named so that no notebook parameter is likely to take them.
SETTINGS = ("mlops_pipeline_dir", "mlops_command", "mlops_registry")
KFP_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
JSON_SCHEMA_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def export(directory, to, out=None):
    """Write the ``to`` job ("kfp" or "airflow") for the pipeline in ``directory``; return its path."""
    if to not in TARGETS:
        raise InvalidInput(f"unknown export target {to!r}; choose one of: {', '.join(TARGETS)}")
    directory = Path(directory).resolve()
    spec = specs.load(directory)
    clash = set(SETTINGS) & set(spec.parameters)
    if clash:
        raise InvalidInput(f"parameter {sorted(clash)[0]!r} clashes with a setting of the exported job; rename it")
    exposed, fixed = _split_parameters(spec)
    if to == "airflow":
        path = Path(out) if out else directory / DEFAULT_FILES[to]
        return _write(path, _airflow_source(spec, directory, exposed, fixed))
    return _export_kfp(spec, directory, exposed, fixed, out)


def _split_parameters(spec):
    """``({name: default} the job can override, {name: source text} kept as the notebook has it)``.

    Only JSON-like literals can be typed job parameters; a tuple, a set or an expression such
    as ``np.arange(3)`` stays with the step code, which reads it from parameters.py.
    """
    exposed, fixed = {}, {}
    for name, entry in spec.parameters.items():
        try:
            value = ast.literal_eval(entry["default"])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            fixed[name] = entry["default"]
            continue
        if type(value) in KFP_TYPES and _json_round_trips(value):
            exposed[name] = value
        else:
            fixed[name] = entry["default"]
    return exposed, fixed


def _json_round_trips(value):
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):  # non-string dict keys, nan
        return False


def _write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _fixed_note(fixed):
    return "".join(
        f"# {name} keeps its notebook default, {' '.join(text.split())} (not a JSON-like literal).\n"
        for name, text in fixed.items()
    )


# ---------------------------------------------------------------- Kubeflow Pipelines


def _export_kfp(spec, directory, exposed, fixed, out):
    """Write the KFP script and, when this interpreter has kfp, compile it; return the YAML or the script."""
    out = Path(out) if out else directory / DEFAULT_FILES["kfp"]
    yaml_requested = out.suffix in (".yaml", ".yml")
    script = out.with_suffix(".py")
    yaml_path = out if yaml_requested else out.with_suffix(".yaml")
    _write(script, _kfp_source(spec, directory, exposed, fixed))
    if importlib.util.find_spec("kfp") is None:
        how = f"pip install kfp, then python {script} {yaml_path}"
        if yaml_requested:
            raise InvalidInput(f"compiling to KFP's YAML needs the kfp SDK, not installed here; {script} is written: {how}")
        warnings.warn(f"kfp is not installed here, so {script} is not compiled to YAML: {how}", stacklevel=3)
        return script
    # A subprocess keeps kfp out of this process and reports the SDK's own compile errors.
    done = subprocess.run([sys.executable, str(script), str(yaml_path)], capture_output=True, text=True)
    if done.returncode:
        last_line = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise MlopsError(f"kfp could not compile {script}: {last_line}")
    return yaml_path


def _kfp_name(name):
    """KFP pipeline names are lower-case words joined by dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "pipeline"


def _kfp_source(spec, directory, exposed, fixed):
    components = "\n\n".join(_kfp_component(step, exposed) for step in spec.steps)
    signature = "".join(f"    {name}: {KFP_TYPES[type(value)]} = {value!r},\n" for name, value in exposed.items())
    tasks = "".join(_kfp_task(step) for step in spec.steps)
    description = f"steps of the notebook {spec.notebook.get('path', '')}"
    return f'''"""Kubeflow Pipelines job for the mlops pipeline {spec.name!r}, written by `mlops pipeline export --to kfp`.

Every component runs one step with `mlops pipeline run DIR --only STEP`; the steps it needs come
from the registry's cache, so every worker must reach the registry and its artifact store.

Compile to KFP's YAML (needs `pip install kfp`):  python THIS_FILE [OUT.yaml]
Choose the image at compile time with MLOPS_KFP_IMAGE (it needs mlops-jupyter, and the pipeline
folder at mlops_pipeline_dir), and per run: mlops_command, mlops_registry (empty: the image's
MLOPS_REGISTRY_URL) and the notebook parameters.
"""

import os
import sys
from pathlib import Path

from kfp import compiler, dsl

IMAGE = os.environ.get("MLOPS_KFP_IMAGE", "python:3.11")


{components}

{_fixed_note(fixed)}@dsl.pipeline(name={_kfp_name(spec.name)!r}, description={description!r})
def pipeline(
    mlops_pipeline_dir: str = {str(directory)!r},
    mlops_command: str = "mlops",
    mlops_registry: str = "",
{signature}):
    arguments = dict(
        mlops_pipeline_dir=mlops_pipeline_dir, mlops_command=mlops_command, mlops_registry=mlops_registry,{"".join(f" {name}={name}," for name in exposed)}
    )
{tasks}

if __name__ == "__main__":
    compiler.Compiler().compile(pipeline, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_suffix(".yaml")))
'''


def _kfp_component(step, exposed):
    # A lightweight Python component, not a container component: kfp's local SubprocessRunner runs only these.
    annotations = "".join(f", {name}: {KFP_TYPES[type(value)]}" for name, value in exposed.items())
    params = ", ".join(f"{name!r}: {name}" for name in exposed)
    return f'''@dsl.component(base_image=IMAGE)
def step_{step.name}(mlops_pipeline_dir: str, mlops_command: str, mlops_registry: str{annotations}):
    """Step {step.name}: mlops pipeline run --only {step.name}."""
    import shlex
    import subprocess

    params = {{{params}}}
    command = [*shlex.split(mlops_command), "pipeline", "run", mlops_pipeline_dir, "--only", {step.name!r}]
    command += [arg for name, value in params.items() for arg in ("--param", f"{{name}}={{value!r}}")]
    if mlops_registry:
        command += ["--registry", mlops_registry]
    subprocess.run(command, check=True)
'''


def _kfp_task(step):
    after = f".after({', '.join(f'{name}_task' for name in step.upstream)})" if step.upstream else ""
    # KFP's own cache would skip a step whose code changed under the same arguments; ours decides.
    return (
        f"    {step.name}_task = step_{step.name}(**arguments)"
        f".set_display_name({step.name!r}).set_caching_options(False){after}\n"
    )


# ---------------------------------------------------------------- Airflow 3


def _airflow_source(spec, directory, exposed, fixed):
    params = "".join(
        f"        {name!r}: Param({value!r}, type={JSON_SCHEMA_TYPES[type(value)]!r}),\n" for name, value in exposed.items()
    )
    tasks = "".join(
        f"    {step.name}_task = run_step.override(task_id={step.name!r})({step.name!r})\n"
        for step in spec.steps
    )
    dependencies = "".join(
        f"    {_airflow_upstream(step)} >> {step.name}_task\n" for step in spec.steps if step.upstream
    )
    return f'''"""Airflow 3 DAG for the mlops pipeline {spec.name!r}, written by `mlops pipeline export --to airflow`.

Every task runs one step with `mlops pipeline run DIR --only STEP`; the steps it needs come from
the registry's cache, so every worker must reach the registry and its artifact store.
No schedule: trigger it (with params to change mlops_pipeline_dir, mlops_command, mlops_registry
or the notebook parameters), or set one below.
"""

import shlex
import subprocess

from airflow.sdk import DAG, Param, task


NOTEBOOK_PARAMETERS = {list(exposed)!r}


@task
def run_step(step, params=None):
    """Run one step with mlops pipeline run --only, passing the run's value of every notebook parameter."""
    command = [*shlex.split(params["mlops_command"]), "pipeline", "run", params["mlops_pipeline_dir"], "--only", step]
    command += [arg for name in NOTEBOOK_PARAMETERS for arg in ("--param", f"{{name}}={{params[name]!r}}")]
    if params["mlops_registry"]:
        command += ["--registry", params["mlops_registry"]]
    subprocess.run(command, check=True)


{_fixed_note(fixed)}with DAG(
    dag_id={_airflow_dag_id(spec.name)!r},
    description={f"steps of the notebook {spec.notebook.get('path', '')}"!r},
    schedule=None,
    params={{
        "mlops_pipeline_dir": Param({str(directory)!r}, type="string", description="the pipeline folder on the workers"),
        "mlops_command": Param("mlops", type="string", description="how workers call mlops"),
        "mlops_registry": Param("", type="string", description="registry URL; empty: MLOPS_REGISTRY_URL"),
{params}    }},
    tags=["mlops"],
):
{tasks}{dependencies}'''


def _airflow_upstream(step):
    names = [f"{name}_task" for name in step.upstream]
    return names[0] if len(names) == 1 else f"[{', '.join(names)}]"


def _airflow_dag_id(name):
    """DAG ids allow letters, digits, dashes, dots and underscores."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "pipeline"
