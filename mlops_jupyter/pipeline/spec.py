"""The pipeline spec: what ``convert`` writes to ``DIR/pipeline.json`` and the runners read.

A written pipeline folder holds::

    pipeline.json        this spec
    parameters.py        ``defaults()`` -> {name: value}, the notebook's parameters cell (if any)
    steps/NAME.py        one module per step, defining the plain function ``NAME``

A step function takes its ``inputs`` (in spec order) then its ``parameters`` positionally and
returns ``outputs + results`` in that order: the bare value when there is one, a tuple when
there are several, None when there are none. ``outputs`` are values later steps read (they
must be storable); ``results`` are the step's final values no later step reads (kept when
storable, else a warning).
"""

import ast
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InvalidInput, NotFound

FORMAT = 1
SPEC_FILE = "pipeline.json"
PARAMETERS_FILE = "parameters.py"


@dataclass
class Step:
    name: str
    cells: list  # indices into the notebook's cells, in order
    cell_ids: list
    inputs: dict  # name -> the step that produces it
    parameters: list  # pipeline parameters the step reads
    outputs: list
    results: list
    code_sha256: str  # of the step's module text
    notes: list = field(default_factory=list)  # where the analysis chose correct over minimal, and why
    registry_reads: list = field(default_factory=list)  # returned values that are registry state (not verified)
    after: list = field(default_factory=list)  # steps it must follow though it takes no value from them
    always_run: bool = False  # it reads registry state, which no cache key covers

    @property
    def module(self):
        return f"steps/{self.name}.py"

    @property
    def arguments(self):
        return [*self.inputs, *self.parameters]

    @property
    def returns(self):
        return [*self.outputs, *self.results]

    @property
    def upstream(self):
        return sorted(set(self.inputs.values()) | set(self.after))


@dataclass
class Spec:
    name: str
    notebook: dict  # {"path", "sha256", "nbformat", "workdir"}
    steps: list
    parameters: dict = field(default_factory=dict)  # name -> {"default": source text of the value}
    parameters_sha256: str | None = None  # of parameters.py
    experiment: str | None = None  # from the notebook's %mlops experiment line
    requirements: list = field(default_factory=list)  # from %pip / !pip install lines
    warnings: list = field(default_factory=list)  # {"cell": index, "step": name or None, "message": text}
    converter: str = ""
    format: int = FORMAT

    def step(self, name):
        for step in self.steps:
            if step.name == name:
                return step
        known = ", ".join(s.name for s in self.steps)
        raise NotFound(f"the pipeline has no step {name!r}; its steps are: {known}")

    def to_json(self):
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text, where="pipeline spec"):
        try:
            data = json.loads(text)
        except ValueError as error:
            raise InvalidInput(f"{where} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidInput(f"{where} is not a format-{FORMAT} pipeline spec; convert the notebook again")
        data["steps"] = [Step(**step) for step in data["steps"]]
        return cls(**data)


@dataclass
class Pipeline:
    """A converted notebook: the spec and the files to write, ``{relative path: text}``."""

    spec: Spec
    files: dict
    directory: Path | None = None  # where it was last written

    def write(self, directory):
        """Write the files under ``directory`` (created if missing); stale step modules are removed."""
        directory = self.directory = Path(directory)
        steps = directory / "steps"
        steps.mkdir(parents=True, exist_ok=True)
        keep = {Path(path).name for path in self.files if path.startswith("steps/")}
        for old in steps.glob("*.py"):
            if old.name not in keep:
                old.unlink()
        if PARAMETERS_FILE not in self.files:
            (directory / PARAMETERS_FILE).unlink(missing_ok=True)
        for path, text in {**self.files, SPEC_FILE: self.spec.to_json()}.items():
            (directory / path).write_text(text, encoding="utf-8")
        return directory


def load(directory):
    """The spec of the pipeline written in ``directory``."""
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise NotFound(f"no pipeline in {str(directory)!r}: {SPEC_FILE} is missing (write one with mlops convert)")
    return Spec.from_json(path.read_text(encoding="utf-8"), where=str(path))


def parse_value(text):
    """A ``--param`` value: a Python literal (``5``, ``0.1``, ``[1, 2]``, ``None``), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
