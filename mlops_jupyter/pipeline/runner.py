"""Running a converted pipeline: one registry run, one child run per step, unchanged steps from cache.

A step's cache key hashes its module text, the values of the parameters it takes and the
sha256s of its inputs. A FINISHED step run with the same key whose artifacts are all still
stored stands in for running it: the new step run records the same artifact rows (no copy).
A changed step gets a new key, its outputs new hashes, and so everything downstream reruns.

Everything goes through the API. The all-cached path imports no pandas, numpy or sklearn.
"""

import difflib
import hashlib
import json
import os
import re
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import api
from ..errors import InvalidInput, MlopsError, StepFailed
from . import spec as pipeline_spec
from .figures import capturing
from .outputs import UnstorableValue, decode, encode, split_path

STEP_TAG = "mlops.step"
CACHE_KEY_TAG = "mlops.step.cache_key"
CACHED_FROM_TAG = "mlops.cached_from"
# Part of every cache key: a change in how the runner stores values retires the old entries.
CACHE_FORMAT = "mlops-pipeline-cache-1"
EXECUTORS = ("local", "dask")
_CELL_MARK = re.compile(r"^\s*# --- cell (\d+)")
_worker_lock = threading.RLock()  # a worker runs one step at a time: the API's active run is process-wide
_worker_registry = None  # (registry URL, artifact root) a dask worker process is connected to


@dataclass
class Task:
    """What running one step needs, picklable so a remote Dask worker gets all of it."""

    pipeline: str
    step: pipeline_spec.Step
    source: str  # the step module's text: remote workers may not see the pipeline folder
    filename: str  # the module's path, for tracebacks
    workdir: str
    inputs: dict  # input name -> (sha256, kind)
    parameters: dict  # parameter name -> value
    cache_key: str
    parent_run_id: str
    registry_url: str
    artifact_root: str


def run(directory, *, params=None, executor="local", scheduler=None, only=None):
    """Run the pipeline in ``directory``; return its run id, status, summary and per-step outcomes."""
    if executor not in EXECUTORS:
        raise InvalidInput(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if scheduler is not None and executor != "dask":
        raise InvalidInput("--scheduler is a Dask scheduler address: use it with --executor dask")
    started = time.perf_counter()
    directory = Path(directory).resolve()
    spec = pipeline_spec.load(directory)
    values = parameter_values(spec, directory, params or {})
    selected = _selected_steps(spec, only)
    plan = _Plan(spec, directory, values, selected)
    pipeline_run = api.start_run(
        spec.name,
        experiment=spec.experiment,
        code=(directory / pipeline_spec.SPEC_FILE).read_text(encoding="utf-8"),
        tags={
            "mlops.pipeline": spec.name,
            "mlops.pipeline.dir": str(directory),
            "mlops.notebook.path": str(spec.notebook.get("path")),
            "mlops.notebook.sha256": str(spec.notebook.get("sha256")),
        },
    )
    plan.run = pipeline_run
    try:
        if values:
            api.log_params(values, run=pipeline_run)
        if executor == "local":
            _run_local(plan)
        else:
            _run_dask(plan, scheduler)
    except BaseException as error:
        api.end_run("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED", run=pipeline_run)
        raise
    api.end_run("FINISHED", run=pipeline_run)
    return plan.result(time.perf_counter() - started)


def load_step_outputs(step_run_id):
    """``{name: value}`` of what a step run stored (outputs and kept results), verified by sha256."""
    stored = api.get_run(step_run_id)["artifacts"]
    values = {}
    for artifact in stored:
        if artifact["path"].startswith("outputs/"):
            name, kind = split_path(artifact["path"])
            values[name] = decode(api.artifact_bytes(artifact["sha256"]), kind)
    return values


# ---- parameters --------------------------------------------------------------------------


def parameter_values(spec, directory, overrides):
    """The defaults of ``parameters.py`` with ``overrides`` applied and checked."""
    path = Path(directory) / pipeline_spec.PARAMETERS_FILE
    if not path.is_file():
        if overrides:
            raise InvalidInput(
                f"pipeline {spec.name!r} takes no parameters: its notebook has no cell tagged `parameters` "
                f"(given: {', '.join(overrides)}); tag the cell that sets them `parameters` and convert again"
            )
        return {}
    defaults = _defaults(path)
    values = dict(defaults)
    for name, given in overrides.items():
        if name not in defaults:
            close = difflib.get_close_matches(name, list(defaults), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInput(
                f"pipeline {spec.name!r} has no parameter {name!r}{hint}; its parameters are: {', '.join(defaults)}"
            )
        values[name] = _checked_override(name, defaults[name], given)
    return values


def _defaults(path):
    namespace = {"__name__": "mlops_pipeline_parameters", "__file__": str(path)}
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
        defaults = namespace["defaults"]()
    except Exception as error:  # whatever the parameters cell's code raises
        raise MlopsError(f"{path} failed: {type(error).__name__}: {error}") from error
    if not isinstance(defaults, dict):
        raise MlopsError(f"{path}: defaults() must return a dict, not {type(defaults).__name__}")
    return defaults


def _checked_override(name, default, given):
    kind = type(default)
    if kind is float and type(given) is int:
        return float(given)
    if kind in (int, float, bool, str) and type(given) is not kind:
        hint = f"; to pass text, quote it: --param {name}='\"{given}\"'" if kind is str else ""
        raise InvalidInput(
            f"parameter {name!r} defaults to {default!r} ({kind.__name__}): "
            f"{given!r} ({type(given).__name__}) does not fit{hint}"
        )
    return given


def _value_hash(value):
    """A hash of a parameter value: its repr for plain literals (cheap, exact), else its stored bytes."""
    if _plain(value):
        text = repr(value).encode()
    else:
        text, _ = encode(value, "a parameter", "parameters")
    return hashlib.sha256(text).hexdigest()


def _plain(value):
    if value is None or type(value) in (int, float, bool, str):
        return True
    if type(value) in (list, tuple):
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(_plain(key) and _plain(item) for key, item in value.items())
    return False


def _selected_steps(spec, only):
    if only is None:
        return list(spec.steps)
    needed = {spec.step(only).name}
    for step in reversed(spec.steps):  # topological order: a step comes after what it needs
        if step.name in needed:
            needed.update(step.upstream)
    return [step for step in spec.steps if step.name in needed]


# ---- the plan: keys, cache, progress, outcomes -------------------------------------------


class _Plan:
    def __init__(self, spec, directory, values, selected):
        self.spec = spec
        self.directory = directory
        self.values = values
        self.value_hashes = {name: _value_hash(value) for name, value in values.items()}
        self.selected = selected
        self.workdir = self._workdir()
        self.outcomes = {}  # step name -> {"status", "run_id", "seconds", "entries": {path: (sha256, size)}}
        self.run = None
        self.width = max((len(step.name) for step in selected), default=0)
        registry = api.current_registry()
        self.registry_url, self.artifact_root = registry.url, registry.artifacts.root

    def _workdir(self):
        # The notebook's own folder, so its relative paths and local modules resolve as they did.
        workdir = self.spec.notebook.get("workdir")
        if workdir and (self.directory / workdir).is_dir():
            return str((self.directory / workdir).resolve())
        return str(self.directory.parent)

    def task(self, step):
        path = self.directory / step.module
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"step {step.name!r}: {path} is missing; convert the notebook again") from None
        inputs = {name: self._produced(producer, name) for name, producer in step.inputs.items()}
        parameters = {name: self._parameter(step, name) for name in step.parameters}
        key = hashlib.sha256(json.dumps([
            CACHE_FORMAT,
            hashlib.sha256(source.encode()).hexdigest(),
            {name: self.value_hashes[name] for name in step.parameters},
            {name: sha256 for name, (sha256, _) in inputs.items()},
        ], sort_keys=True).encode()).hexdigest()
        return Task(self.spec.name, step, source, str(path), self.workdir, inputs, parameters, key,
                    self.run.id, self.registry_url, self.artifact_root)

    def _produced(self, producer, name):
        for path, (sha256, _) in self.outcomes[producer]["entries"].items():
            if path.startswith("outputs/") and split_path(path)[0] == name:
                return sha256, split_path(path)[1]
        raise MlopsError(f"step {producer!r} stored no output {name!r}; convert the notebook again")

    def _parameter(self, step, name):
        if name not in self.values:
            raise InvalidInput(f"step {step.name!r} takes parameter {name!r}, which parameters.py does not define")
        return self.values[name]

    def cached(self, task):
        """``(run id, artifact entries)`` of a finished run of this step with the same key, or None."""
        if task.step.always_run:
            return None  # it reads registry state, which the key does not cover
        for _, run_id, entries in api.finished_runs_tagged(CACHE_KEY_TAG, [task.cache_key]):
            stored = {split_path(path)[0] for path in entries if path.startswith("outputs/")}
            if set(task.step.outputs) <= stored and api.artifacts_present(sha256 for sha256, _ in entries.values()):
                return run_id, entries
        return None

    def record_cached(self, task, hit):
        started = time.perf_counter()
        source_run_id, entries = hit
        # Only runs that executed carry the cache key: lookups stay one row per execution, and
        # cached_from always names the run that computed the values.
        step_run = api.start_run(task.step.name, parent=self.run, code=task.source, tags={
            STEP_TAG: task.step.name, CACHED_FROM_TAG: source_run_id,
        })
        api.record_stored_artifacts(entries, run=step_run)
        api.end_run("FINISHED", run=step_run)
        return {"status": "cached", "run_id": step_run.id, "seconds": time.perf_counter() - started,
                "entries": entries}

    def done(self, step, outcome, position):
        self.outcomes[step.name] = outcome
        shown = f"ran {outcome['seconds']:.2f} s" if outcome["status"] == "ran" else outcome["status"]
        self.progress(position, step, shown)

    def progress(self, position, step, shown):
        print(f"[{position}/{len(self.selected)}] {step.name:<{self.width}}  {shown}", file=sys.stderr, flush=True)

    def result(self, seconds):
        steps = {}
        for step in self.spec.steps:
            outcome = self.outcomes.get(step.name)
            if outcome is None:
                steps[step.name] = {"status": "not run", "run_id": None, "seconds": 0.0, "outputs": {}}
                continue
            outputs = {split_path(path)[0]: sha256 for path, (sha256, _) in outcome["entries"].items()
                       if path.startswith("outputs/")}
            steps[step.name] = {"status": outcome["status"], "run_id": outcome["run_id"],
                                "seconds": outcome["seconds"], "outputs": outputs}
        counts = [f"{sum(s['status'] == status for s in steps.values())} {status}"
                  for status in ("ran", "cached", "not run")]
        summary = f"{len(self.selected)} of {len(steps)} steps: " + ", ".join(counts) + f" in {seconds:.2f} s"
        return {"run_id": self.run.id, "status": "FINISHED", "summary": summary, "steps": steps}


# ---- executors ---------------------------------------------------------------------------


def _run_local(plan):
    blobs = {}  # sha256 -> bytes stored by this process, so later steps skip re-reading them
    for position, step in enumerate(plan.selected, 1):
        task = plan.task(step)
        hit = plan.cached(task)
        if hit is not None:
            outcome = plan.record_cached(task, hit)
        else:
            try:
                outcome = execute(task, blobs, parent=plan.run)
            except MlopsError:
                plan.progress(position, step, "FAILED")
                raise
        plan.done(step, outcome, position)


def _run_dask(plan, scheduler):
    from distributed import Client, LocalCluster, as_completed

    cluster = None if scheduler else LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
    client = Client(scheduler or cluster)
    try:
        # Every worker connects (imports, opens the registry) now, in parallel, not at its first step.
        client.run(connect_worker, plan.registry_url, plan.artifact_root)
        waiting = list(plan.selected)
        running = as_completed()
        completed = 0
        failure = None

        def launch_ready():
            nonlocal completed
            launched = True
            while launched:  # a cached step can make others ready at once
                launched = False
                for step in [s for s in waiting if all(u in plan.outcomes for u in s.upstream)]:
                    waiting.remove(step)
                    task = plan.task(step)
                    hit = plan.cached(task)
                    if hit is None:
                        running.add(client.submit(run_on_worker, task, pure=False, key=f"step-{step.name}-{task.cache_key[:12]}-{time.time_ns()}"))
                    else:
                        completed += 1
                        plan.done(step, plan.record_cached(task, hit), completed)
                        launched = True

        launch_ready()
        for future in running:
            outcome = future.result()
            completed += 1
            step = plan.spec.step(outcome.pop("step"))
            if "failed" in outcome:
                plan.progress(completed, step, "FAILED")
                failure = failure or StepFailed(outcome["failed"], step=step.name, cell=outcome["cell"])
                continue
            plan.done(step, outcome, completed)
            if failure is None:
                launch_ready()
        if failure is not None:
            raise failure
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def connect_worker(registry_url, artifact_root):
    """Connect this worker process to the pipeline's registry, once."""
    global _worker_registry
    with _worker_lock:
        if _worker_registry != (registry_url, artifact_root):
            api.connect(registry_url, artifacts=artifact_root)
            _worker_registry = (registry_url, artifact_root)


def run_on_worker(task):
    """A Dask worker's side: run the step as a child of the pipeline run in the task's registry.

    Returns the outcome, or ``{"failed": message, "cell": N}``: the driver raises it, so the
    error reaches the user as one line whatever the worker's Python could pickle.
    """
    with _worker_lock:
        connect_worker(task.registry_url, task.artifact_root)
        try:
            outcome = execute(task, {}, parent=task.parent_run_id)
        except StepFailed as error:
            return {"step": task.step.name, "failed": str(error), "cell": error.cell}
        except MlopsError as error:
            return {"step": task.step.name, "failed": str(error), "cell": None}
        return {"step": task.step.name, **outcome}


# ---- running one step ----------------------------------------------------------------------


def execute(task, blobs, *, parent):
    """Run the step in a new child run of ``parent``; store its values and figures; return the outcome."""
    step = task.step
    step_run = api.start_run(step.name, parent=parent, code=task.source,
                             tags={STEP_TAG: step.name, CACHE_KEY_TAG: task.cache_key})
    started = time.perf_counter()
    try:
        arguments = [_input_value(sha256, kind, blobs) for sha256, kind in task.inputs.values()]
        arguments += list(task.parameters.values())
        with _step_environment(task.workdir), capturing() as figures:
            returned = _call(task, arguments)
        entries = _store_values(task, _named(step, returned), blobs, step_run)
        for number, png in enumerate(figures, 1):
            path = f"figures/{number}.png"
            entries[path] = api.store_bytes(png, path, run=step_run)
    except BaseException as error:
        api.end_run("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED", run=step_run)
        raise
    api.end_run("FINISHED", run=step_run)
    return {"status": "ran", "run_id": step_run.id, "seconds": time.perf_counter() - started, "entries": entries}


def _input_value(sha256, kind, blobs):
    # Decoded afresh for every step that reads it, as under Dask or from cache: a step that
    # mutates its input cannot change what another step sees.
    data = blobs.get(sha256)
    return decode(data if data is not None else api.artifact_bytes(sha256), kind)


def _call(task, arguments):
    namespace = {"__name__": f"mlops_pipeline_step_{task.step.name}", "__file__": task.filename}
    try:
        exec(compile(task.source, task.filename, "exec"), namespace)
        function = namespace.get(task.step.name)
        if not callable(function):
            raise StepFailed(f"step {task.step.name!r}: {task.step.module} defines no function "
                             f"{task.step.name}(); convert the notebook again", step=task.step.name)
        return function(*arguments)
    except MlopsError:
        raise
    except Exception as error:  # whatever the notebook's code raises, reported at its cell
        raise _failure(task, error) from error


def _failure(task, error):
    """StepFailed naming the step, the notebook cell of the failing line and the original error."""
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == task.filename:
            line = lineno  # the innermost line of the step module
    cell = None
    if line is not None:
        for text in reversed(task.source.splitlines()[:line]):
            match = _CELL_MARK.match(text)
            if match:
                cell = int(match.group(1))
                break
    where = f" in notebook cell {cell}" if cell is not None else ""
    at = f" ({task.step.module} line {line})" if line is not None else ""
    message = (str(error).strip().splitlines() or [""])[0]
    return StepFailed(f"step {task.step.name!r} failed{where}{at}: {type(error).__name__}: {message}",
                      step=task.step.name, cell=cell)


def _named(step, returned):
    names = step.returns
    if len(names) == 1:
        return {names[0]: returned}
    if not names:
        return {}
    if not isinstance(returned, tuple) or len(returned) != len(names):
        got = f"{len(returned)} values" if isinstance(returned, tuple) else f"a {type(returned).__name__}"
        raise StepFailed(f"step {step.name!r} returned {got}, not the {len(names)} values "
                         f"({', '.join(names)}) the spec lists; convert the notebook again", step=step.name)
    return dict(zip(names, returned))


def _store_values(task, values, blobs, step_run):
    """Store outputs (which must be storable) and the results that are; return the artifact entries."""
    entries = {}
    for name, value in values.items():
        try:
            data, kind = encode(value, name, task.step.name)
        except UnstorableValue as error:
            if name in task.step.outputs:
                raise
            print(f"warning: result not kept: {error}", file=sys.stderr)
            continue
        path = f"outputs/{name}.{kind}"
        entries[path] = api.store_bytes(data, path, run=step_run)
        blobs[entries[path][0]] = data
    return entries


@contextmanager
def _step_environment(workdir):
    """Run in the notebook's folder, with it importable, as the notebook ran."""
    if not os.path.isdir(workdir):  # a remote worker that does not see the folder
        yield
        return
    previous = os.getcwd()
    os.chdir(workdir)
    sys.path.insert(0, workdir)
    try:
        yield
    finally:
        os.chdir(previous)
        if workdir in sys.path:
            sys.path.remove(workdir)
