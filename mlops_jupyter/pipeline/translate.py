"""Notebook-only lines → plain Python, so a step runs without Jupyter.

IPython's own input transformer turns ``%magic``, ``!cmd`` and ``obj?`` into
``get_ipython().…(…)`` calls; each of those calls is then replaced by what a pipeline
should do instead: ``%timeit stmt`` runs ``stmt`` once, ``%mlops log a=1`` becomes
``mlops.log_metrics({"a": 1.0})``, ``%pip install x`` is dropped and ``x`` recorded as a
requirement, and so on. What cannot be translated is dropped with a warning, never silently
(except lines that only change how the notebook looks, like ``%matplotlib inline``).
"""

import ast
import io
import re
import shlex
import tokenize
from dataclasses import dataclass, field

from ..errors import InvalidInput

# Lines that only change display or the interactive session: dropped without a word.
_QUIET = {
    "matplotlib", "config", "load_ext", "reload_ext", "unload_ext", "autoreload", "aimport", "precision",
    "pprint", "xmode", "colors", "who", "whos", "who_ls", "pinfo", "pinfo2", "pdoc", "pdef", "psource",
    "pfile", "lsmagic", "magic", "quickref", "history", "page", "notebook", "reset", "reset_selective",
    "html", "HTML", "markdown", "latex", "javascript", "js", "svg", "debug", "pdb", "prun", "memit",
}
_INSTALLERS = {"pip", "conda", "mamba", "micromamba", "uv"}
_TIMERS = {"time", "timeit"}
# %timeit's own options (-n N -r R -p P take a value; -t -c -q -o don't).
_TIMEIT_VALUED = {"-n", "-r", "-p"}
_TIMEIT_FLAGS = {"-t", "-c", "-q", "-o"}
# %mlops commands that only show something: as a statement they are dropped quietly.
_MLOPS_DISPLAY = {"help", "status", "compare"}
# %mlops commands that list registry contents: as a statement they only show them.
_MLOPS_LISTINGS = {"runs", "models", "features"}


@dataclass
class Translation:
    code: str
    warnings: list = field(default_factory=list)
    requirements: list = field(default_factory=list)
    experiment: str | None = None
    imports: set = field(default_factory=set)  # module-level lines the translated code needs
    tree: ast.Module | None = None  # the parsed code


def translate(source, cell):
    """Translate one code cell's source; ``cell`` (its index) goes into every message."""
    if not _has_ipython_syntax(source):
        return Translation(source, tree=_parse(source, cell))
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(source)
    translation = Translation(code)
    translation.code = _Translator(translation, cell).rewrite(code)
    translation.tree = _parse(translation.code, cell)
    return translation


def _has_ipython_syntax(source):
    # Cheap pre-check: most cells are plain Python and skip IPython's transformer entirely.
    return any(line.lstrip()[:1] in ("%", "!") or line.rstrip().endswith("?") or "= %" in line or "= !" in line
               for line in source.splitlines())


def _parse(code, cell):
    try:
        return ast.parse(code)
    except SyntaxError as error:
        raise InvalidInput(f"cell {cell}: {error.msg} at line {error.lineno}: {(error.text or '').strip()!r}") from None


class _Translator:
    def __init__(self, translation, cell):
        self.out = translation
        self.cell = cell

    def warn(self, message):
        self.out.warnings.append(message)

    def rewrite(self, code):
        tree = _parse(code, self.cell)
        lines = code.splitlines(keepends=True)
        edits = []  # (start line, start col, end line, end col, text), applied bottom-up
        # In source order, so warnings and requirements come out in the order the cell has them.
        for node in sorted(ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
            if isinstance(node, ast.Expr) and _ipython_call(node.value):
                edits.append((*_span(node), self.statement(node.value, _indent_of(lines, node))))
            elif _ipython_call(node) and not _is_expression_statement(node, tree):
                edits.append((*_span(node), self.value(node)))
        # A statement's edit replaces its call's; keep the outer one only.
        edits = [e for e in edits if not any(o is not e and _contains(o, e) for o in edits)]
        for start_line, start_col, end_line, end_col, text in sorted(edits, reverse=True):
            head = lines[start_line - 1][:start_col]
            tail = lines[end_line - 1][end_col:]
            lines[start_line - 1 : end_line] = [head + text + tail]
        return "".join(lines)

    # ---- statements: a call whose value is thrown away ------------------------------------

    def statement(self, call, prefix):
        kind, args = _call_parts(call)
        if kind == "system":
            return self.shell_statement(args[0])
        if kind == "run_line_magic":
            return self.line_magic(args[0], args[1], prefix)
        if kind == "run_cell_magic":
            return self.cell_magic(args[0], args[1], args[2], prefix)
        return self.value(call)  # getoutput as a statement: the command runs, as in the notebook

    def shell_statement(self, command):
        packages = _pip_packages(command)
        if packages is not None:
            self.out.requirements.extend(packages)
            self.warn(f"`!{command}` dropped: install {' '.join(packages) or 'the requirements'} before running")
            return f"pass  # !{_one_line(command)}"
        self.warn(f"shell command `!{command}` dropped: a pipeline does not run shell lines")
        return f"pass  # !{_one_line(command)}"

    def line_magic(self, name, line, prefix):
        if name in _QUIET:
            return f"pass  # %{name} {_one_line(line)}".rstrip()
        if name in _TIMERS:
            return indent(self.timed_statement(name, line), prefix, first=False)
        if name in _INSTALLERS:
            packages = _install_arguments(line)
            self.out.requirements.extend(packages)
            self.warn(f"`%{name} {line}` dropped: install {' '.join(packages) or 'the requirements'} before running")
            return f"pass  # %{name} {_one_line(line)}"
        if name in ("sx", "system"):
            return self.shell_statement(line)
        if name == "env":
            return self.env(line)
        if name == "cd":
            self.out.imports.add("import os")
            self.warn(f"`%cd {line}` changes the working directory of the step that runs it")
            return f"os.chdir({_text(line.strip())})"
        if name == "mlops":
            return self.mlops(line, statement=True)
        self.warn(f"`%{name} {line}` dropped: no pipeline equivalent")
        return f"pass  # %{name} {_one_line(line)}"

    def timed_statement(self, name, line):
        statement = _strip_timeit_options(line) if name == "timeit" else line.strip()
        _parse(statement, self.cell)
        return self.nested(statement)

    def env(self, line):
        key, sep, value = line.strip().partition("=")
        if not sep:
            key, _, value = line.strip().partition(" ")
        if not key or not value:
            return f"pass  # %env {_one_line(line)}"
        self.out.imports.add("import os")
        return f"os.environ[{key.strip()!r}] = {_text(value.strip())}"

    def cell_magic(self, name, line, body, prefix):
        if name in _TIMERS:
            setup = _strip_timeit_options(line) if name == "timeit" else ""
            return indent(self.nested((setup + "\n" if setup.strip() else "") + body), prefix, first=False)
        if name == "capture":
            return indent(self.nested(body), prefix, first=False)
        if name in ("writefile", "file"):
            words = shlex.split(line)
            append = "-a" in words or "--append" in words
            path = next((w for w in words if not w.startswith("-")), None)
            if path is None:
                raise InvalidInput(f"cell {self.cell}: %%{name} needs a file name")
            mode = "a" if append else "w"
            return f"with open({_text(path)}, {mode!r}) as _file:\n{prefix}    _file.write({body!r})"
        if name == "mlops":
            return indent(self.mlops_cell(line, body), prefix, first=False)
        if name in _QUIET:
            return f"pass  # %%{name} cell"
        self.warn(f"`%%{name}` cell dropped: no pipeline equivalent")
        return f"pass  # %%{name} {_one_line(line)}".rstrip()

    def nested(self, source):
        """Translate magic-bearing text found inside a magic (a %%time body, a %%mlops run cell)."""
        inner = translate(source, self.cell)
        self.out.warnings.extend(inner.warnings)
        self.out.requirements.extend(inner.requirements)
        self.out.imports |= inner.imports
        self.out.experiment = self.out.experiment or inner.experiment
        return inner.code.rstrip("\n") or "pass"

    # ---- values: a call whose result the cell uses ----------------------------------------

    def value(self, call):
        kind, args = _call_parts(call)
        if kind == "getoutput" or (kind == "run_line_magic" and args[0] in ("sx", "system")):
            command = args[0] if kind == "getoutput" else args[1]
            self.out.imports.add("import subprocess")
            self.warn(f"`!{command}` runs as a shell command in the pipeline, as it did in the notebook")
            return f"subprocess.run({_text(command)}, shell=True, capture_output=True, text=True).stdout.splitlines()"
        if kind == "run_line_magic" and args[0] == "mlops":
            return self.mlops(args[1], statement=False)
        if kind == "run_line_magic" and args[0] in _TIMERS:
            statement = self.timed_statement(args[0], args[1])
            if "\n" in statement:
                raise InvalidInput(f"cell {self.cell}: `%{args[0]}` used as a value must time one expression")
            return statement
        self.warn(f"the value of `{ast.unparse(call)}` has no pipeline equivalent: it is None there")
        return "None"

    # ---- %mlops ---------------------------------------------------------------------------

    def mlops(self, line, statement):
        from ..jupyter.magics import COMMANDS

        name, _, rest = line.strip().partition(" ")
        name = name or "status"
        if name not in COMMANDS:
            self.warn(f"`%mlops {line}` dropped: not a pipeline command")
            return "pass" if statement else "None"
        args = self.parse_mlops(name, rest)
        if statement and (name in _MLOPS_DISPLAY or name in _MLOPS_LISTINGS or args_show_feature(name, args)):
            return f"pass  # %mlops {_one_line(line)}"  # only shows something
        self.out.imports.add("import mlops_jupyter as mlops")
        call = self.mlops_call(name, args)
        if call is None:
            self.warn(f"`%mlops {line}` only shows something; its value is None in the pipeline")
            return "None"
        return call

    def parse_mlops(self, name, rest):
        from IPython.core.error import UsageError

        from ..jupyter.magics import COMMANDS

        try:
            return COMMANDS[name].parser.parse_args(shlex.split(rest))
        except (UsageError, ValueError) as error:
            raise InvalidInput(f"cell {self.cell}: %mlops {name}: {error}") from None

    def mlops_call(self, name, args):
        if name == "experiment":
            self.out.experiment = self.out.experiment or args.name
            return f"mlops.set_experiment({_text(args.name)})"
        if name == "connect":
            self.warn("`%mlops connect` dropped: a pipeline records into the registry it is run with")
            return "None"
        if name == "log":
            values = _pairs(args.pairs, self.cell, number=True)
            step = f", step={args.step}" if args.step is not None else ""
            return f"mlops.log_metrics({values}{step})"
        if name == "param":
            return f"mlops.log_params({_pairs(args.pairs, self.cell, number=False)})"
        if name == "run":
            return self.run_line(args)
        if name == "register":
            keywords = _keywords(run=args.run, primary_metric=args.primary_metric, description=args.description)
            return f"mlops.register_model({_variable(args.variable, self.cell)}, {_text(args.name)}{keywords})"
        if name == "promote":
            keywords = _keywords(reason=args.reason) + (", force=True" if args.force else "")
            return f"mlops.promote({_text(args.name)}, {_text(args.version)}, {_text(args.to)}{keywords})"
        if name == "demote":
            return f"mlops.demote({_text(args.name)}, {_text(args.alias)}{_keywords(reason=args.reason)})"
        if name == "expect":
            return f"mlops.expect({', '.join(_text(w) for w in [args.name, *args.rules])})"
        if name == "training-set":
            keywords = _keywords(label=args.label, max_age=args.max_age)
            entities = _variable(args.entities, self.cell)
            return f"mlops.training_set({_text(args.name)}, {entities}, {_text(args.features)}{keywords})"
        if name == "load":
            return f"mlops.load_model({_text(args.reference)})"
        if name == "runs":
            # As the magic: the active experiment unless one (or 'all') is named; 50 rows by default.
            experiment = "None" if args.experiment == "all" else (
                _text(args.experiment) if args.experiment else "mlops.active_experiment()")
            keywords = _keywords(order_by=args.sort, limit=args.limit or 50)
            filter_text = _text(args.filter) if args.filter else "None"
            return f"mlops.search_runs({filter_text}, experiment={experiment}{keywords})"
        if name == "models":
            return f"mlops.list_versions({_text(args.name)})" if args.name else "mlops.list_models()"
        if name == "features":
            return f"mlops.list_features({_text(args.search) if args.search else ''})"
        if name == "feature":
            if args.name[:1] == ["show"] and len(args.name) == 2:
                return f"mlops.get_feature({_text(args.name[1])})"
            raise InvalidInput(f"cell {self.cell}: %mlops feature as a line must be `feature show NAME`")
        return None

    def run_line(self, args):
        action, *rest = args.name or ["?"]
        if action == "start":
            tags = f", tags={_pairs(args.tags, self.cell, number=False)}" if args.tags else ""
            return f"mlops.start_run({_text(rest[0]) if rest else 'None'}{tags})"
        if action == "end":
            return f"mlops.end_run({args.status.upper()!r})"
        raise InvalidInput(f"cell {self.cell}: `%mlops run` as a line is `run start [NAME]` or `run end`")

    def mlops_cell(self, line, body):
        name, _, rest = line.strip().partition(" ")
        if name not in ("run", "feature"):
            raise InvalidInput(f"cell {self.cell}: %%mlops {name} is not a cell command (run and feature are)")
        args = self.parse_mlops(name, rest)
        self.out.imports.add("import mlops_jupyter as mlops")
        code = self.nested(body)
        if name == "run":
            if len(args.name) > 1:
                raise InvalidInput(f"cell {self.cell}: a run has one name, got {' '.join(args.name)!r}")
            run_name = _text(args.name[0]) if args.name else "None"
            tags = f", tags={_pairs(args.tags, self.cell, number=False)}" if args.tags else ""
            opener = f"with mlops.start_run({run_name}{tags}) as _run"
            if not args.no_autolog:
                self.out.imports.add("from mlops_jupyter.tracking.autolog import autolog")
                opener += ", autolog(_run, globals())"
            return f"{opener}:\n{indent(code)}"
        return self.feature_cell(args, body, code)

    def feature_cell(self, args, body, code):
        if len(args.name) != 1 or not args.entity or not args.timestamp:
            raise InvalidInput(f"cell {self.cell}: %%mlops feature needs one NAME, --entity COL and --timestamp COL")
        (name,) = args.name
        tree = _parse(code, self.cell)
        holder = "_feature_values"  # the cell's value: the notebook showed it but kept no variable
        if not (tree.body and isinstance(tree.body[-1], ast.Expr)):
            holder = _variable(name, self.cell)  # as the magic: no last value, so the variable named like it
        else:
            # The magic registers the cell's last value, like the notebook shows it.
            last = tree.body[-1]
            lines = code.splitlines()
            head = "\n".join(lines[: last.lineno - 1])
            code = (head + "\n" if head else "") + f"{holder} = {ast.get_source_segment(code, last)}"
        if args.source:
            sources = "{" + ", ".join(f"{s!r}: {_variable(s, self.cell)}" for s in args.source) + "}"
        else:
            # As the magic does: the DataFrames among the names the cell reads, as they were before it ran.
            used = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)})
            self.out.imports.add("from mlops_jupyter.pipeline.runtime import dataframes")
            sources = "_feature_sources"
            code = f"{sources} = dataframes(locals(), {used!r})\n{code}"
        keywords = _keywords(description=args.description)
        return (
            f"{code}\nmlops.register_feature({name!r}, {holder}, entity={args.entity!r}, "
            f"timestamp={args.timestamp!r}, code={body!r}, sources={sources}{keywords})"
        )


# ---- helpers ------------------------------------------------------------------------------


def args_show_feature(name, args):
    return name == "feature" and args.name[:1] == ["show"]


def _ipython_call(node):
    """``get_ipython().METHOD(constant, …)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Name)
        and node.func.value.func.id == "get_ipython"
        and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
    )


def _call_parts(call):
    return call.func.attr, [a.value for a in call.args]


def _is_expression_statement(call, tree):
    return any(isinstance(n, ast.Expr) and n.value is call for n in ast.walk(tree))


def _span(node):
    return node.lineno, node.col_offset, node.end_lineno, node.end_col_offset


def _contains(outer, inner):
    return (outer[0], outer[1]) <= (inner[0], inner[1]) and (inner[2], inner[3]) <= (outer[2], outer[3])


def _indent_of(lines, node):
    line = lines[node.lineno - 1]
    return line[: len(line) - len(line.lstrip())]


def indent(code, prefix="    ", first=True):
    """Prefix each line (the first too, unless ``first`` is False), except lines inside multi-line
    strings: their text would change."""
    inside = set()
    if '"""' in code or "'''" in code:
        try:
            for token in tokenize.generate_tokens(io.StringIO(code).readline):
                if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                    inside.update(range(token.start[0] + 1, token.end[0] + 1))
        except (tokenize.TokenError, IndentationError):
            pass  # the code parsed already; a tokenizer complaint only costs the string check
    if not first:
        inside.add(1)
    return "\n".join(line if (number in inside or not line.strip()) else prefix + line
                     for number, line in enumerate(code.splitlines() or ["pass"], start=1))


def _one_line(text):
    return " ".join(text.split())


_EXPANSION = re.compile(r"\{[^{}]+\}|\$\$|\$[A-Za-z_]\w*")


def _text(word):
    """A magic argument as Python: IPython expands ``{expr}`` and ``$name`` in it, so an f-string does too."""
    if not _EXPANSION.search(word):
        return repr(word)
    whole = re.fullmatch(r"\{([^{}]+)\}|\$([A-Za-z_]\w*)", word)
    if whole:
        return f'f"{{{whole.group(1) or whole.group(2)}}}"'
    parts, position = [], 0
    for match in _EXPANSION.finditer(word):
        parts.append(word[position : match.start()].replace("{", "{{").replace("}", "}}"))
        token = match.group()
        parts.append("$" if token == "$$" else (token if token.startswith("{") else "{" + token[1:] + "}"))
        position = match.end()
    parts.append(word[position:].replace("{", "{{").replace("}", "}}"))
    return "f" + repr("".join(parts))


def _pairs(pairs, cell, number):
    """``["a=1", "b={x}"]`` as a dict display; metric values become floats, as the magic makes them."""
    items = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"cell {cell}: %mlops expects key=value, got {pair!r}")
        whole = re.fullmatch(r"\{([^{}]+)\}|\$([A-Za-z_]\w*)", value)
        if number and whole:
            expression = whole.group(1) or whole.group(2)
        elif number:
            try:
                expression = repr(float(value)) if not _EXPANSION.search(value) else f"float({_text(value)})"
            except ValueError:
                raise InvalidInput(f"cell {cell}: metric {key!r} must be a number, got {value!r}") from None
        else:
            expression = _text(value)
        items.append(f"{key!r}: {expression}")
    return "{" + ", ".join(items) + "}"


def _keywords(**values):
    return "".join(f", {key}={_text(value) if isinstance(value, str) else repr(value)}"
                   for key, value in values.items() if value is not None)


def _variable(name, cell):
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
        raise InvalidInput(f"cell {cell}: {name!r} is not a variable name")
    return name


def _strip_timeit_options(line):
    words = line.strip().split(" ")
    while words and words[0] in _TIMEIT_VALUED | _TIMEIT_FLAGS or (words and re.fullmatch(r"-[nrp]\d+", words[0])):
        words = words[2:] if words[0] in _TIMEIT_VALUED else words[1:]
    return " ".join(words).strip()


def _pip_packages(command):
    """The packages of a ``pip install …`` shell line, or None if it is not one."""
    words = command.split()
    for start in range(len(words)):
        if words[start : start + 2] == ["pip", "install"] or words[start : start + 2] == ["pip3", "install"]:
            return [w for w in words[start + 2 :] if not w.startswith("-")]
    return None


def _install_arguments(line):
    words = line.split()
    if words[:1] == ["install"]:
        words = words[1:]
    return [w for w in words if not w.startswith("-")]
