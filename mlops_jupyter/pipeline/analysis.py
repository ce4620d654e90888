"""Data flow between steps, by static analysis of the names each step defines and uses.

The notebook is walked once, top to bottom, the way its kernel ran it. For every name the
walk knows what last bound it — a value (``data``), a ``def``/``class``, an ``import``, or a
pipeline parameter — and in which step. A step's *inputs* are the values it may read before
it binds them itself; a value read by a later step is an *output* of the step that last
bound or changed it. Functions and classes are code, not data: a step that uses one gets
its definition again (and the names its body reads become that step's inputs, since the
body reads them when called). Where the analysis cannot decide, it takes the correct
choice over the minimal one and leaves a note saying why.
"""

import ast
import builtins
from dataclasses import dataclass, field

from .scopes import (
    CHANGING_METHODS,
    COMPREHENSIONS,
    evaluated_at_definition,
    mutating_call,
    root_name,
    scope_names,
)

_BUILTINS = frozenset(dir(builtins)) | {"__name__", "__file__", "display", "get_ipython"}
_PLOTTING_MODULES = ("matplotlib", "seaborn", "plotly")
_PLOT_CALLS = frozenset(
    "plot hist scatter bar barh boxplot imshow subplots figure gca gcf heatmap lineplot scatterplot histplot "
    "barplot boxplot countplot pairplot kdeplot violinplot displot catplot relplot".split()
)
# Calls that set process-wide state (seeds, options): replayed at the start of every later step.
# API calls whose value is registry state (ids, times, what others logged): it differs between
# the pipeline's registry and any other, so such values are not compared by `verify`.
_REGISTRY_READS = frozenset(
    "search_runs get_run get_metric_history list_experiments list_models list_versions get_model_version "
    "model_history load_model audit registry_counts get_feature list_features list_feature_versions "
    "compare_feature_versions training_sets_using feature_values get_online_features active_run start_run "
    "register_model register_feature promote demote current_registry".split()
)
# API calls that change registry state, and those that read what earlier steps put there.
_REGISTRY_WRITES = frozenset(
    "start_run end_run log_metric log_metrics log_param log_params set_tag set_tags log_dataset log_artifact "
    "register_model register_feature promote demote expect materialize feature training_set".split()
)
_STATE_READS = _REGISTRY_READS - {"start_run", "register_model", "register_feature", "promote", "demote",
                                  "active_run", "current_registry"} | {"training_set", "materialize"}
_SETUP_CALLS = frozenset(
    "seed manual_seed set_seed set_config set_option filterwarnings simplefilter use set_theme set_style "
    "set_context set_palette basicConfig".split()
)


@dataclass
class Definition:
    """A ``def`` or ``class`` of the notebook: its source, where it is, and what its body uses."""

    name: str
    source: str
    cell: int
    step: str
    free: set
    global_writes: set
    mutated: set
    mutated_parameters: list
    parameters: list


@dataclass
class Binding:
    kind: str  # data, def, import, param, deleted
    step: str
    how: str = "assign"  # data: assign, loop (for/with/except targets), mutate
    plot: bool = False  # a figure or axes: not worth keeping as a result
    line: str = ""  # import: the line that binds the name alone


@dataclass
class StepFlow:
    name: str
    inputs: dict = field(default_factory=dict)  # name -> producing step
    parameters: list = field(default_factory=list)
    definitions: list = field(default_factory=list)  # Definitions from earlier steps to repeat here
    imports: list = field(default_factory=list)  # import lines from earlier steps
    star_imports: list = field(default_factory=list)
    setup: list = field(default_factory=list)  # (cell, source) of earlier set-up statements to replay
    globals_written: set = field(default_factory=set)  # names notebook functions assign with `global`
    written: set = field(default_factory=set)
    maybe: dict = field(default_factory=dict)  # name bound on some paths only -> step of its earlier value
    notes: list = field(default_factory=list)
    plotting_cells: set = field(default_factory=set)
    foreign_deletes: set = field(default_factory=set)  # (cell, line) of `del` of names from earlier steps
    registry_reads: set = field(default_factory=set)  # values it returns that come from registry state
    writes_registry: bool = False
    reads_registry: bool = False  # what earlier steps recorded: features, runs, model versions


class Flow:
    """The walk: feed it each step's cells in notebook order (``step``), then ``finish``."""

    def __init__(self, parameters=()):
        self.bindings = {name: Binding("param", "parameters") for name in parameters}
        self.definitions = {}
        self.star_imports = []  # (line, step)
        self.setup = []  # (cell, step, source, import lines it needs)
        self.steps = []
        self.unresolved = []  # (cell, step, name)
        self.from_registry = set()  # names whose value derives from registry state

    # ---- one step -------------------------------------------------------------------------

    def step(self, name, cells):
        """``cells``: [(index, source, tree, extra import lines)] of the step's translated code cells."""
        flow = StepFlow(name)
        self.current = flow
        self.local = {}  # name -> Binding made in this step
        self.definite = set()  # names surely bound by now in this step
        self.using = set()  # definitions being expanded (recursion guard)
        for index, source, tree, extra_imports in cells:
            self.cell, self.source = index, source
            for line in extra_imports:  # what translated magics need, e.g. `import mlops_jupyter as mlops`
                self.imports(ast.parse(line).body[0])
            for statement in tree.body:
                self.statement(statement)
                if _is_setup(statement, self):
                    needs = [(self.local.get(n.id) or self.bindings.get(n.id)).line for n in ast.walk(statement)
                             if isinstance(n, ast.Name) and _import_module(self, n.id)]
                    self.setup.append((index, name, ast.get_source_segment(source, statement), needs))
        flow.registry_reads = {n for n in flow.written if n in self.from_registry}
        for name_, binding in self.local.items():
            if binding.kind == "data" and name_ not in self.definite:
                earlier = self.bindings.get(name_)
                flow.maybe[name_] = earlier.step if earlier is not None and earlier.kind == "data" else None
            self.bindings[name_] = binding
        self.steps.append(flow)
        return flow

    # ---- names ----------------------------------------------------------------------------

    def read(self, name):
        local = self.local.get(name)
        if local is not None and (name in self.definite or local.kind != "data"):
            if local.kind == "def":
                self.use_definition(name)
            return
        binding = self.bindings.get(name)
        if binding is None or binding.kind == "deleted":
            if local is None and name not in _BUILTINS:
                if self.star_imports:
                    for line, _ in self.star_imports:
                        _append_new(self.current.star_imports, line)
                else:
                    self.unresolved.append((self.cell, self.current.name, name))
            return
        if binding.kind in ("data", "param"):
            self.input(name)
        elif binding.kind == "import":
            _append_new(self.current.imports, binding.line)
        elif binding.kind == "def":
            self.use_definition(name)

    def input(self, name, note=None):
        binding = self.bindings[name]
        if binding.kind == "param":
            _append_new(self.current.parameters, name)
        elif name not in self.current.inputs:
            self.current.inputs[name] = binding.step
            if note:
                self.current.notes.append(note)

    def use_definition(self, name):
        """A function or class is used: its body's outside names are used here, now."""
        if name in self.using:
            return
        definition = self.definitions[name]
        self.using.add(name)
        if definition.step != self.current.name and definition not in self.current.definitions:
            self.current.definitions.append(definition)
        for free in sorted(definition.free):
            self.read(free)
        for changed in sorted(definition.mutated | definition.global_writes):
            self.write(changed, "data", how="mutate", definite=False, read_first=True)
        self.current.globals_written |= definition.global_writes
        self.using.discard(name)

    def write(self, name, kind, how="assign", definite=True, read_first=False, plot=False, line=""):
        if read_first:
            binding = self.local.get(name) or self.bindings.get(name)
            if binding is not None and binding.kind in ("import", "def"):
                return  # a module's or function's own state: not data flow
            if binding is not None:
                self.read(name)
        self.local[name] = Binding(kind, self.current.name, how, plot, line)
        if definite or name in self.definite:
            self.definite.add(name)
        if kind == "data":
            self.current.written.add(name)

    def mutate(self, name, why=None):
        """``name``'s object changes here: it is read (maybe an input) and this step now produces it."""
        binding = self.local.get(name) or self.bindings.get(name)
        if binding is None or binding.kind not in ("data", "param"):
            return
        if why and name not in self.definite and why not in self.current.notes:
            self.current.notes.append(why)
        # Changing a loop variable or a `with` target leaves it what it was: not a result.
        how = binding.how if name in self.local and binding.how == "loop" else "mutate"
        self.write(name, "data", how=how, read_first=True, plot=binding.plot)

    # ---- statements -----------------------------------------------------------------------

    def statement(self, node):
        if isinstance(node, ast.Expr):
            self.expression(node.value)
        elif isinstance(node, ast.Assign):
            self.expression(node.value)
            plot = _is_plot_value(node.value, self)
            for target in node.targets:
                self.assign(target, plot=plot)
            self.track_registry_values(node.targets, node.value)
        elif isinstance(node, ast.AugAssign):
            self.expression(node.value)
            if self.reads_registry(node.value):
                self.from_registry.add(root_name(node.target))
            if isinstance(node.target, ast.Name):
                self.write(node.target.id, "data", read_first=True)
            else:
                self.expression(node.target)
                self.mutate(root_name(node.target))
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.expression(node.value)
                self.assign(node.target)
                self.track_registry_values([node.target], node.value)
            self.expression(node.annotation)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    if target.id not in self.local:  # made by an earlier step: nothing here to delete
                        self.current.foreign_deletes.add((self.cell, node.lineno))
                    self.local[target.id] = Binding("deleted", self.current.name)
                    self.definite.discard(target.id)
                else:
                    self.expression(target)
                    self.mutate(root_name(target))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.imports(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.define(node)
        elif isinstance(node, ast.If):
            self.expression(node.test)
            self.branches([(None, node.body), (None, node.orelse)])
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expression(node.iter)
            self.track_registry_values([node.target], node.iter)
            loop_target = (lambda: self.assign(node.target, how="loop"))
            self.branches([(loop_target, node.body + node.orelse)], may_skip=True)
        elif isinstance(node, ast.While):
            self.expression(node.test)
            self.branches([(None, node.body + node.orelse)], may_skip=True)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expression(item.context_expr)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, how="loop")
            for child in node.body:
                self.statement(child)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            handlers = []
            for handler in node.handlers:
                if handler.type is not None:
                    self.expression(handler.type)
                bind = (lambda name=handler.name: self.write(name, "data", how="loop")) if handler.name else None
                handlers.append((bind, handler.body))
            self.branches([(None, node.body + node.orelse), *handlers])
            for child in node.finalbody:
                self.statement(child)
        elif isinstance(node, ast.Match):
            self.expression(node.subject)
            for case in node.cases:
                if case.guard is not None:
                    self.expression(case.guard)
            self.branches([(lambda case=case: self.bind_pattern(case.pattern), case.body) for case in node.cases],
                          may_skip=True)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            pass  # `global` at the top of a cell changes nothing
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expression(child)

    def reads_registry(self, node):
        for inner in ast.walk(node):
            if isinstance(inner, ast.Name) and inner.id in self.from_registry:
                return True
            if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr in _REGISTRY_READS
                    and (_import_module(self, root_name(inner.func) or "") or "").startswith("mlops_jupyter")):
                return True
        return False

    def track_registry_values(self, targets, value):
        names = {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
        if self.reads_registry(value):
            self.from_registry |= names
        else:
            self.from_registry -= {n for t in targets if isinstance(t, ast.Name) for n in [t.id]}

    def branches(self, bodies, may_skip=False):
        """Walk each (prelude, body) from the same state; after them a name is surely bound if every one binds it."""
        before = set(self.definite)
        surely = None
        for prelude, body in bodies:
            self.definite = set(before)
            if prelude is not None:
                prelude()
            for child in body:
                self.statement(child)
            surely = self.definite if surely is None else surely & self.definite
        self.definite = before if may_skip else before | surely

    def bind_pattern(self, pattern):
        for node in ast.walk(pattern):
            for name in _pattern_names(node):
                self.write(name, "data", how="loop")

    def assign(self, target, how="assign", plot=False):
        if isinstance(target, ast.Name):
            self.write(target.id, "data", how=how, plot=plot)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.assign(element, how, plot)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, how, plot)
        else:  # df["x"] = …, model.attr = …: the object changes
            self.expression(target)
            self.mutate(root_name(target))

    def imports(self, node):
        for alias in node.names:
            if alias.name == "*":
                line = ast.get_source_segment(self.source, node)
                self.star_imports.append((line, self.current.name))
                _append_new(self.current.star_imports, line)
                continue
            bound = alias.asname or alias.name.split(".")[0]
            if isinstance(node, ast.Import):
                line = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            else:
                module = "." * node.level + (node.module or "")
                line = f"from {module} import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            self.write(bound, "import", line=line)

    def define(self, node):
        evaluated = evaluated_at_definition(node)
        for part in evaluated:
            self.expression(part)
        names = scope_names(node)
        for free in sorted(names.immediate):  # a class body runs where it stands
            self.read(free)
        # A step that repeats this definition evaluates its decorators and defaults again.
        reads_again = {n.id for part in evaluated for n in ast.walk(part) if isinstance(n, ast.Name)}
        first_line = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        lines = self.source.splitlines()[first_line - 1 : node.end_lineno]
        source = _dedent_block(lines, node.col_offset)
        self.definitions[node.name] = Definition(
            node.name, source, self.cell, self.current.name, names.free | reads_again, names.global_writes,
            names.mutated, names.mutated_parameters, names.parameters,
        )
        self.write(node.name, "def")

    # ---- expressions ----------------------------------------------------------------------

    def expression(self, node):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.read(node.id)
            return
        if isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                self.expression(default)
            for free in sorted(scope_names(node).free):
                self.read(free)  # read where the lambda is made: it closes over the step's value
            return
        if isinstance(node, COMPREHENSIONS):
            names = scope_names(node)
            for free in sorted(names.free):
                self.read(free)
            for changed in sorted(names.mutated):
                self.mutate(changed)
            for target in sorted(names.enclosing_writes):
                self.write(target, "data", definite=False)
            return
        if isinstance(node, ast.NamedExpr):
            self.expression(node.value)
            self.write(node.target.id, "data", definite=False)
            return
        for child in ast.iter_child_nodes(node):
            self.expression(child)
        if isinstance(node, ast.Call):
            self.call(node)

    def call(self, node):
        if _is_plot_call(node, self):
            self.current.plotting_cells.add(self.cell)
        if isinstance(node.func, ast.Attribute) and (
                _import_module(self, root_name(node.func) or "") or "").startswith("mlops_jupyter"):
            self.current.writes_registry |= node.func.attr in _REGISTRY_WRITES
            self.current.reads_registry |= node.func.attr in _STATE_READS
        changed = mutating_call(node)
        if changed is not None:
            method = node.func.attr
            unknown = method not in CHANGING_METHODS and not any(k.arg == "inplace" for k in node.keywords)
            self.mutate(changed, f"`{changed}.{method}(…)` (cell {self.cell}) may change `{changed}` in place, "
                                 "so this step passes it on" if unknown else None)
        # A notebook function that changes an argument in place changes the caller's object.
        if isinstance(node.func, ast.Name) and node.func.id in self.definitions:
            binding = self.local.get(node.func.id) or self.bindings.get(node.func.id)
            if binding is not None and binding.kind == "def":
                definition = self.definitions[node.func.id]
                for position, argument in enumerate(node.args):
                    if (isinstance(argument, ast.Name) and position < len(definition.parameters)
                            and definition.parameters[position] in definition.mutated_parameters):
                        self.mutate(argument.id)
                for keyword in node.keywords:
                    if isinstance(keyword.value, ast.Name) and keyword.arg in definition.mutated_parameters:
                        self.mutate(keyword.value.id)

    # ---- after the last step --------------------------------------------------------------

    def finish(self):
        """Outputs (values later steps read) and results (final values nobody reads) per step.

        A value a step binds on some paths only must be bound when the step returns it, so
        its earlier value comes in as an input; that can make more outputs, hence the loop.
        """
        flows = {flow.name: flow for flow in self.steps}
        while True:
            outputs = {name: [] for name in flows}
            for flow in self.steps:
                for name, producer in flow.inputs.items():
                    _append_new(outputs[producer], name)
            position = {name: number for number, name in enumerate(flows)}
            last_read = {}  # name -> position of the last step that reads it
            for flow in self.steps:
                for name in flow.inputs:
                    last_read[name] = position[flow.name]
            results = {name: [] for name in flows}
            for name, binding in sorted(self.bindings.items()):
                read_later = last_read.get(name, -1) > position.get(binding.step, len(flows))
                if (binding.kind == "data" and binding.step in flows and not read_later
                        and binding.how in ("assign", "mutate") and not binding.plot and not name.startswith("_")
                        and not (name in flows[binding.step].maybe and flows[binding.step].maybe[name] is None)):
                    results[binding.step].append(name)
            grew = False
            for flow in self.steps:
                returned = [*outputs[flow.name], *results[flow.name]]
                for name in returned:
                    producer = flow.maybe.get(name)
                    if producer is not None and name not in flow.inputs:
                        flow.inputs[name] = producer
                        flow.notes.append(f"`{name}` is bound only on some paths in this step, so its earlier "
                                          "value comes in too")
                        grew = True
            if not grew:
                return outputs, results


def _append_new(items, item):
    if item not in items:
        items.append(item)


def _pattern_names(node):
    if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        return [node.name]
    if isinstance(node, ast.MatchMapping) and node.rest:
        return [node.rest]
    return []


def _import_module(flow, name):
    """The module an import-bound name comes from, or None."""
    binding = flow.local.get(name) or flow.bindings.get(name)
    if binding is None or binding.kind != "import":
        return None
    return binding.line.split()[1]


def _is_plot_value(value, flow):
    return isinstance(value, ast.Call) and _is_plot_call(value, flow)


def _is_plot_call(call, flow):
    if isinstance(call.func, ast.Attribute) and call.func.attr in _PLOT_CALLS:
        return True
    module = _import_module(flow, root_name(call.func) or "")
    return module is not None and module.startswith(_PLOTTING_MODULES)


def _is_setup(node, flow):
    """``np.random.seed(0)``, ``pd.set_option(…)``, ``os.environ["X"] = "1"``: module state, no data read."""
    if isinstance(node, ast.Expr):
        call = node.value
        if not isinstance(call, ast.Call):
            return False
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
        path = ast.unparse(call.func)
        if name not in _SETUP_CALLS and not path.startswith(("sys.path.", "os.environ.")):
            return False
        roots = [root_name(call.func)]
        reads = [n.id for n in ast.walk(call) if isinstance(n, ast.Name)]
    elif isinstance(node, ast.Assign):
        roots = [root_name(t) for t in node.targets]
        if not all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
            return False
        reads = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    else:
        return False
    if not all(root and _import_module(flow, root) for root in roots):
        return False
    return all(_import_module(flow, n) or n in _BUILTINS for n in reads)


def _dedent_block(lines, column):
    return "\n".join(line[column:] if line[:column].isspace() else line for line in lines)
