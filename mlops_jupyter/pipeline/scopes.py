"""Which outside names a function, class, lambda or comprehension reads, assigns or changes.

A notebook function that reads a global reads it when it is *called*, so the converter
needs, for each nested scope, its free names; ``global x`` assignments; and the names it
changes in place (``x["a"] = 1``, ``x.append(…)``) — those of its parameters too, so that
``clean(df)`` is seen to change ``df`` when ``clean`` does ``d.dropna(inplace=True)``.
"""

import ast
from dataclasses import dataclass, field

# Methods that leave their object as it was; any other method call may change it (prefer
# correct over minimal: a changed object must travel to the steps that read it later).
READ_ONLY_METHODS = frozenset(
    """
    abs agg aggregate all any apply argmax argmin argsort assign astype between clip copy corr count cov
    cummax cummin cumprod cumsum decision_function decode describe diff dot drop drop_duplicates dropna
    duplicated encode endswith equals eval explode fillna filter find flatten format get get_feature_names_out
    get_params groupby head hist idxmax idxmin index info isin isna isnull item items iterrows itertuples join
    keys lower lstrip map mask max mean median melt memory_usage merge min mode nlargest notna notnull
    nsmallest nunique pct_change pivot pivot_table plot predict predict_log_proba predict_proba quantile query
    rank ravel rename reorder_levels replace resample reset_index reshape rolling round rstrip sample score
    select_dtypes set_index shift sort_index sort_values split squeeze stack startswith std strip sum swapaxes
    tail to_csv to_dict to_excel to_frame to_json to_list to_markdown to_numpy to_parquet to_string tolist
    transform transpose unique unstack upper value_counts values var view where
    """.split()
)

# Methods known to change their object: no note needed when one of these makes a value travel on.
CHANGING_METHODS = frozenset(
    "fit partial_fit fit_transform fit_predict set_params append extend insert pop popitem remove clear update "
    "setdefault add discard sort reverse shuffle".split()
)

COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
SCOPES = (*FUNCTIONS, ast.ClassDef, *COMPREHENSIONS)


@dataclass
class ScopeNames:
    free: set = field(default_factory=set)  # names read from the enclosing (notebook) scope
    global_writes: set = field(default_factory=set)  # names declared `global` and assigned
    mutated: set = field(default_factory=set)  # free names changed in place
    mutated_parameters: list = field(default_factory=list)  # parameter positions/names changed in place
    enclosing_writes: set = field(default_factory=set)  # walrus targets of a comprehension
    parameters: list = field(default_factory=list)
    immediate: set = field(default_factory=set)  # a class body's outside names, read when the class is made


def root_name(node):
    """``df`` for ``df``, ``df.a.b``, ``df["x"][0]``, ``df.loc[…]``; None otherwise."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def mutating_call(call):
    """The name a method call may change in place (``df.fillna(0, inplace=True)``, ``lst.append(x)``)."""
    if not isinstance(call.func, ast.Attribute):
        return None
    root = root_name(call.func.value)
    if root is None:
        return None
    inplace = any(k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                  for k in call.keywords)
    return root if inplace or call.func.attr not in READ_ONLY_METHODS else None


def scope_names(node):
    """The outside names ``node`` (a def, class, lambda or comprehension) uses; see the module doc."""
    collector = _Collector(node)
    collector.collect()
    return collector.result()


class _Collector:
    def __init__(self, node):
        self.node = node
        self.bound, self.loads, self.globals, self.nonlocals = set(), set(), set(), set()
        self.nested_free, self.global_writes, self.mutated, self.walrus = set(), set(), set(), set()
        self.parameters = []

    def collect(self):
        node = self.node
        if isinstance(node, FUNCTIONS):
            arguments = node.args
            for argument in [*arguments.posonlyargs, *arguments.args]:
                self.parameters.append(argument.arg)
            for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                             arguments.vararg, arguments.kwarg]:
                if argument is not None:
                    self.bound.add(argument.arg)
            body = [node.body] if isinstance(node, ast.Lambda) else node.body
        elif isinstance(node, ast.ClassDef):
            body = node.body
        else:
            for generator in node.generators:
                self.bound.update(n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name))
            body = [*node.generators, *([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])]
        for child in body:
            self.visit(child)

    def visit(self, node):
        if isinstance(node, SCOPES):
            self.nested(node)
            return
        if isinstance(node, ast.Name):
            (self.loads if isinstance(node.ctx, ast.Load) else self.bound).add(node.id)
        elif isinstance(node, ast.Global):
            self.globals.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            self.nonlocals.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.bound.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            self.bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self.bound.add(node.rest)
        elif isinstance(node, ast.NamedExpr) and isinstance(self.node, COMPREHENSIONS):
            self.walrus.add(node.target.id)  # binds in the enclosing scope, not the comprehension's
            self.visit(node.value)
            return
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Attribute, ast.Subscript)):
                    self.mutated.add(root_name(target))
        elif isinstance(node, ast.Call):
            self.mutated.add(mutating_call(node))
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def nested(self, node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bound.add(node.name)
            for evaluated_here in evaluated_at_definition(node):
                self.visit(evaluated_here)
        inner = scope_names(node)
        self.nested_free |= inner.free
        self.global_writes |= inner.global_writes
        self.mutated |= inner.mutated
        self.bound |= inner.enclosing_writes

    def result(self):
        self.mutated.discard(None)
        if isinstance(self.node, ast.ClassDef):
            # Methods do not see class-level names: their free names stay free.
            immediate = self.loads - self.bound
            free = immediate | self.nested_free
            local = self.bound
        else:
            immediate = set()
            local = self.bound - self.globals - self.nonlocals
            free = (self.loads | self.nested_free) - local
        free |= self.mutated - local
        return ScopeNames(
            free=free,
            global_writes=self.global_writes | (self.bound & self.globals),
            mutated=self.mutated - local,
            mutated_parameters=[p for p in self.parameters if p in self.mutated],
            enclosing_writes=self.walrus,
            parameters=self.parameters,
            immediate=immediate,
        )


def evaluated_at_definition(node):
    """Decorators, defaults, annotations and bases: the parts of a def or class run where it stands."""
    return [*node.decorator_list, *_defaults_and_bases(node)]


def _defaults_and_bases(node):
    if isinstance(node, ast.ClassDef):
        return [*node.bases, *(k.value for k in node.keywords)]
    arguments = node.args
    annotations = [a.annotation for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
                   if a.annotation is not None]
    return [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None), *annotations,
            *([node.returns] if node.returns is not None else [])]
