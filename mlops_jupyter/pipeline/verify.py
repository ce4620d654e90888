"""``mlops pipeline verify``: does the pipeline compute what its notebook computes?

The pipeline runs (through the runner), then the notebook runs in a fresh kernel (nbclient)
in the same working folder with the same parameters; each starts from an empty throw-away
registry, so what they read back from it can agree. After the last cell of each step a
hidden cell stores the values that step returns. Each value is compared with the
pipeline's: DataFrames, arrays, numbers, containers and objects field by field; metrics of
runs with the same name too. The report says what differs and where.
"""

import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInput, NotFound
from . import spec as pipeline_spec
from .notebook import read_notebook, tags_of

_CAPTURE = """\
from mlops_jupyter.pipeline.verify import capture as _mlops_capture
_mlops_capture({folder!r}, {step!r}, globals(), {names!r})
del _mlops_capture
"""


@dataclass
class Report:
    pipeline: str
    run_id: str
    compared: list = field(default_factory=list)  # (step, name)
    skipped: list = field(default_factory=list)  # (step, name) of values read from the registry
    differences: list = field(default_factory=list)  # (step, name, what)

    @property
    def ok(self):
        return not self.differences

    def text(self):
        lines = [f"pipeline {self.pipeline} (run {self.run_id[:8]}) against its notebook: "
                 f"{len(self.compared)} values compared, {len(self.differences)} differ"]
        lines += [f"  {step}.{name}: {what.removeprefix('the value: ')}" for step, name, what in self.differences]
        if self.skipped:
            lines.append("  not compared, read from the registry (ids and times differ by nature): "
                         + ", ".join(f"{step}.{name}" for step, name in self.skipped))
        if self.ok:
            lines.append("  every step's values are equal: the pipeline reproduces the notebook")
        return "\n".join(lines)


def verify(directory, *, params=None, timeout=600):
    from .runner import load_step_outputs, parameter_values, run

    directory = Path(directory)
    spec = pipeline_spec.load(directory)
    notebook_path = spec.notebook.get("path")
    if not notebook_path or not Path(notebook_path).is_file():
        raise NotFound(f"the notebook this pipeline came from ({notebook_path}) is gone; nothing to verify against")
    node, _, sha256 = read_notebook(notebook_path)
    if sha256 != spec.notebook["sha256"]:
        raise InvalidInput(f"{notebook_path} changed since it was converted; convert it again, then verify")
    values = parameter_values(spec, directory, params or {})
    overrides = {name: values[name] for name in params or {}}
    with tempfile.TemporaryDirectory(prefix="mlops-verify-") as scratch:
        scratch = Path(scratch)
        with _fresh_registry(scratch / "pipeline-registry.db"):
            result = run(directory, params=params)
            report = Report(spec.name, result["run_id"])
            _run_notebook(node, spec, overrides, scratch, timeout)
            report.differences += _compare_steps(spec, result, scratch, report, load_step_outputs)
            report.differences += _metric_differences(result, scratch / "registry.db")
    return report


@contextmanager
def _fresh_registry(path):
    """Both runs start from an empty registry, so what they read from it (versions, runs) can agree."""
    from .. import api

    previous = api.current_registry()
    api.connect(f"sqlite:///{path}")
    try:
        yield
    finally:
        api.connect(previous.url, artifacts=previous.artifacts.root)


def _compare_steps(spec, result, scratch, report, load_step_outputs):
    found = []
    for step in spec.steps:
        stored = result["steps"][step.name]
        if stored["run_id"] is None:
            continue
        pipeline_values = load_step_outputs(stored["run_id"])
        notebook_values = _captured(scratch / "values" / step.name)
        for name in step.returns:
            if name not in pipeline_values:
                continue  # a result the runner could not keep; it said so when it ran
            if name in step.registry_reads:
                report.skipped.append((step.name, name))
                continue
            report.compared.append((step.name, name))
            if name not in notebook_values:
                found.append((step.name, name, "not defined in the notebook run"))
                continue
            found += [(step.name, name, what) for what in differences(pipeline_values[name], notebook_values[name])]
    return found


def _run_notebook(node, spec, overrides, scratch, timeout):
    import nbclient
    import nbformat

    notebook = nbformat.reads(json.dumps(node), as_version=4)  # sources as text, as nbclient wants them
    by_index = dict(enumerate(notebook.cells))
    last_cell = {step.cells[-1]: step for step in spec.steps}
    cells = []
    for index, cell in by_index.items():
        if "skip" in tags_of(cell) or "injected-parameters" in tags_of(cell):
            continue  # kept out of the pipeline, kept out of the comparison run
        cells.append(cell)
        if "parameters" in tags_of(cell) and overrides:
            cells.append(nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in overrides.items())))
        if index in last_cell:
            step = last_cell[index]
            code = _CAPTURE.format(folder=str(scratch / "values"), step=step.name, names=step.returns)
            cells.append(nbformat.v4.new_code_cell(code))
    notebook.cells = cells
    workdir = spec.notebook.get("workdir") or str(Path.cwd())
    previous = os.environ.get("MLOPS_REGISTRY_URL")
    # The notebook's own %mlops lines record into a registry of their own, not the user's.
    os.environ["MLOPS_REGISTRY_URL"] = f"sqlite:///{scratch / 'registry.db'}"
    try:
        client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": workdir}})
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        raise InvalidInput(f"the notebook itself fails, so there is nothing to compare: {error.ename}: {error.evalue}"
                           ) from None
    finally:
        if previous is None:
            os.environ.pop("MLOPS_REGISTRY_URL", None)
        else:
            os.environ["MLOPS_REGISTRY_URL"] = previous


def capture(folder, step, namespace, names):
    """In the notebook's kernel: store the step's values the way the runner stores them."""
    from .outputs import UnstorableValue, encode

    target = Path(folder) / step
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in namespace:
            continue
        try:
            data, kind = encode(namespace[name], name, step)
        except UnstorableValue:
            continue
        (target / f"{name}.{kind}").write_bytes(data)


def _captured(folder):
    from .outputs import decode, split_path

    if not folder.is_dir():
        return {}
    values = {}
    for path in folder.iterdir():
        name, kind = split_path(path.name)
        values[name] = decode(path.read_bytes(), kind)
    return values


def differences(ours, theirs, where="", depth=0):
    """What differs between two values, as short phrases (empty when they are equal)."""
    import numpy
    import pandas

    label = where or "the value"
    if depth > 12:  # a self-referencing state: what has been compared so far is the answer
        return []
    if callable(ours) and hasattr(ours, "__qualname__"):
        # Classes and functions: the notebook's live in __main__, the pipeline's in a step; same name, same thing.
        same = ours.__name__ == getattr(theirs, "__name__", None)
        return [] if same else [f"{label}: {ours.__name__} in the pipeline, {getattr(theirs, '__name__', theirs)!r}"
                                " in the notebook"]
    if isinstance(ours, (pandas.DataFrame, pandas.Series)) or isinstance(theirs, (pandas.DataFrame, pandas.Series)):
        if type(ours) is not type(theirs):
            return [f"{label}: {type(ours).__name__} in the pipeline, {type(theirs).__name__} in the notebook"]
        check = pandas.testing.assert_frame_equal if isinstance(ours, pandas.DataFrame) else \
            pandas.testing.assert_series_equal
        try:
            check(ours, theirs, check_exact=False, rtol=1e-9)
        except AssertionError as error:
            return [f"{label}: {_first_line(error)}"]
        return []
    if isinstance(ours, numpy.ndarray) or isinstance(theirs, numpy.ndarray):
        ours, theirs = numpy.asarray(ours), numpy.asarray(theirs)
        if ours.shape != theirs.shape:
            return [f"{label}: shape {ours.shape} in the pipeline, {theirs.shape} in the notebook"]
        if ours.dtype.kind == "O" or theirs.dtype.kind == "O":  # e.g. a forest's trees: compare each
            return [d for index in numpy.ndindex(ours.shape)
                    for d in differences(ours[index], theirs[index], f"{label}[{index}]", depth + 1)][:5]
        if ours.dtype.kind in "fc" or theirs.dtype.kind in "fc":
            same = numpy.isclose(ours, theirs, rtol=1e-9, atol=0, equal_nan=True)
        else:
            same = ours == theirs
        if numpy.all(same):
            return []
        first = tuple(int(i) for i in numpy.argwhere(~numpy.asarray(same))[0])
        return [f"{label}: {int((~numpy.asarray(same)).sum())} elements differ, first at {first}: "
                f"{ours[first]!r} vs {theirs[first]!r}"]
    if isinstance(ours, float) and isinstance(theirs, (int, float)):
        return [] if math.isclose(ours, theirs, rel_tol=1e-9) or (ours != ours and theirs != theirs) else \
            [f"{label}: {ours!r} in the pipeline, {theirs!r} in the notebook"]
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if set(ours) != set(theirs):
            return [f"{label}: keys {sorted(map(str, ours))} in the pipeline, {sorted(map(str, theirs))} in the notebook"]
        return [d for key in ours for d in differences(ours[key], theirs[key], f"{label}[{key!r}]", depth + 1)]
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        if len(ours) != len(theirs):
            return [f"{label}: {len(ours)} items in the pipeline, {len(theirs)} in the notebook"]
        return [d for i, (a, b) in enumerate(zip(ours, theirs)) for d in differences(a, b, f"{label}[{i}]", depth + 1)]
    if type(ours).__name__ != type(theirs).__name__:
        return [f"{label}: {type(ours).__name__} in the pipeline, {type(theirs).__name__} in the notebook"]
    if type(ours).__eq__ is object.__eq__:
        # Objects without their own == (a fitted model, a random generator, a notebook class's
        # instance) are equal when their states are.
        return differences(_state(ours), _state(theirs), label, depth + 1)
    try:
        equal = bool(ours == theirs)
    except Exception:  # == that raises or is ambiguous: fall back to the printed form
        equal = repr(ours) == repr(theirs)
    return [] if equal else [f"{label}: {ours!r} in the pipeline, {theirs!r} in the notebook"]


def _state(value):
    """What pickling would keep of ``value``: its constructor arguments and state."""
    try:
        reduced = value.__reduce_ex__(4)
    except Exception:  # not picklable: its printed form is all there is to compare
        return repr(value)
    return list(reduced[1:3]) if isinstance(reduced, tuple) else reduced


def _metric_differences(result, notebook_registry):
    """Runs the notebook made, by name, against the pipeline's runs (at any depth) of the same name."""
    from .. import api

    if not notebook_registry.exists():
        return []
    from .runner import CACHED_FROM_TAG

    ours, parents = {}, [result["run_id"]]
    while parents:
        children = api.search_runs(f"parent_run_id = '{parents.pop()}'", limit=10000, output="list")
        for child in children:
            ours.setdefault(child["name"], {}).update(child["metrics"])
            parents.append(child["id"])
            if CACHED_FROM_TAG in child["tags"]:  # a cached step's runs are those of the run it reuses
                parents.append(child["tags"][CACHED_FROM_TAG])
    notebook = api.Registry(f"sqlite:///{notebook_registry}")  # the notebook's own, not the current one
    try:
        theirs = {run["name"]: run["metrics"] for run in notebook.store.search_runs(None, "start_time", None, 10000)}
    finally:
        notebook.close()
    found = []
    for name, metrics in theirs.items():
        for key, value in metrics.items():
            if name not in ours or key not in ours[name]:
                found.append(("metrics", f"{name}.{key}", "logged by the notebook, not by the pipeline"))
            elif not math.isclose(ours[name][key], value, rel_tol=1e-6):
                found.append(("metrics", f"{name}.{key}",
                              f"{ours[name][key]!r} in the pipeline, {value!r} in the notebook"))
    return found


def _first_line(error):
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__

