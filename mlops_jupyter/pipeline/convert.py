"""``convert(notebook) -> Pipeline``: a pure function from a notebook to a spec and its code.

Cells are grouped into steps (tags, else Markdown headings, else one step per cell merged
where that keeps the graph sensible), notebook-only lines are translated
(:mod:`.translate`), the data flow between steps is found (:mod:`.analysis`), and each step
is written as a plain function in its own module. Nothing is read but the notebook and
nothing is written: ``Pipeline.write`` does that.
"""

import ast
import hashlib
import keyword
import re
from dataclasses import dataclass, field

from .. import __version__
from ..errors import InvalidInput
from .analysis import Flow
from .notebook import read_notebook, source_of, tags_of
from .spec import PARAMETERS_FILE, Pipeline, Spec, Step
from .translate import indent, translate

_KEPT_OUT = {"skip": "tagged skip", "raises-exception": "tagged raises-exception (an intentional error)",
             "injected-parameters": "papermill's injected parameters (run-specific)"}
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class _Group:
    name: str
    cells: list = field(default_factory=list)  # code cell indices
    after: list = field(default_factory=list)  # (cell, step name) from after:NAME tags
    title: str | None = None  # the Markdown heading the step came from


def convert(notebook, *, name=None):
    """Convert ``notebook`` (a path, or an nbformat dict/node) into a :class:`Pipeline`."""
    node, path, sha256 = read_notebook(notebook)
    name = name or (_slug(path.stem) if path else "pipeline")
    cells = node["cells"]
    warnings = []
    translated = {}

    def translated_cell(index):
        if index not in translated:
            translation = translate(source_of(cells[index]), index)
            translated[index] = (translation, translation.tree)
        return translated[index]

    parameters_cell, groups = _plan(cells, warnings, translated_cell)
    for index in [*([parameters_cell] if parameters_cell is not None else []), *(i for g in groups for i in g.cells)]:
        translated_cell(index)
    for index, (translation, _) in sorted(translated.items()):
        warnings.extend({"cell": index, "step": None, "message": m} for m in translation.warnings)

    flow = Flow()
    parameters = {}
    if parameters_cell is not None:
        parameters = _parameters(flow, parameters_cell, translated[parameters_cell])
    flows = {}
    for group in groups:
        flows[group.name] = flow.step(group.name, [_flow_cell(i, translated[i]) for i in group.cells])
    outputs, results = flow.finish()
    for cell, step, missing in flow.unresolved:
        if step == "parameters" and missing in flow.bindings:
            raise InvalidInput(f"cell {cell} (parameters) reads {missing}, which other cells define; "
                               "a parameters cell must stand alone")
        warnings.append({"cell": cell, "step": step, "message": f"`{missing}` is used but not defined in an "
                         "earlier cell: the step fails as the notebook would"})
    for message in warnings:
        if message["step"] is None:
            message["step"] = next((g.name for g in groups if message["cell"] in g.cells), None)

    writers = []
    for group in groups:  # a step reading registry state follows every earlier step that writes it
        if flows[group.name].reads_registry:
            group.after += [(None, writer) for writer in writers if (None, writer) not in group.after]
        if flows[group.name].writes_registry:
            writers.append(group.name)
    order = _order(groups, flows)
    files, steps = {}, []
    for group_name in order:
        group = next(g for g in groups if g.name == group_name)
        step_flow = flows[group_name]
        module = _step_module(name, path, group, step_flow, cells, translated, flow,
                              outputs[group_name], results[group_name])
        files[f"steps/{group_name}.py"] = module
        steps.append(Step(
            name=group_name,
            cells=group.cells,
            cell_ids=[cells[i].get("id") for i in group.cells],
            inputs=dict(step_flow.inputs),
            parameters=list(step_flow.parameters),
            outputs=outputs[group_name],
            results=results[group_name],
            code_sha256=_sha256(module),
            registry_reads=sorted(set(outputs[group_name] + results[group_name]) & step_flow.registry_reads),
            notes=step_flow.notes + [
                f"runs after step {after} " + (f"(tag after:{after} on cell {cell})" if cell is not None else
                                                "(it records into the registry what this step reads from it)")
                for cell, after in group.after] + (
                ["always runs: it reads registry state (runs, models, features), which no cache key covers"]
                if step_flow.reads_registry else []),
            after=sorted({after for _, after in group.after} - set(step_flow.inputs.values())),
            always_run=step_flow.reads_registry,
        ))
    parameters_sha256 = None
    if parameters_cell is not None:
        files[PARAMETERS_FILE] = _parameters_module(name, parameters_cell, translated[parameters_cell], parameters)
        parameters_sha256 = _sha256(files[PARAMETERS_FILE])
    requirements = []
    for translation, _ in translated.values():
        requirements += [r for r in translation.requirements if r not in requirements]
    experiment = next((t.experiment for t, _ in translated.values() if t.experiment), None)
    spec = Spec(
        name=name,
        notebook={
            "path": str(path.resolve()) if path else None,
            "sha256": sha256,
            "nbformat": f"{node['nbformat']}.{node.get('nbformat_minor', 0)}",
            "workdir": str(path.resolve().parent) if path else None,
        },
        steps=steps,
        parameters={p: {"default": default} for p, default in parameters.items()},
        parameters_sha256=parameters_sha256,
        experiment=experiment,
        requirements=requirements,
        warnings=warnings,
        converter=f"mlops-jupyter {__version__}",
    )
    return Pipeline(spec, files)


# ---- cells → steps ------------------------------------------------------------------------


def _plan(cells, warnings, translated_cell):
    """The parameters cell (or None) and the step groups, in notebook order."""
    parameters_cell = None
    code = []  # (index, step tag or None, after tags)
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or not source_of(cell).strip():
            continue
        tags = tags_of(cell)
        kept_out = next((why for tag, why in _KEPT_OUT.items() if tag in tags), None)
        if kept_out:
            warnings.append({"cell": index, "step": None, "message": f"kept out of the pipeline: {kept_out}"})
            continue
        if "parameters" in tags:
            if parameters_cell is not None:
                raise InvalidInput(f"cells {parameters_cell} and {index} are both tagged parameters; tag one")
            parameters_cell = index
            continue
        step_tags = sorted({t[len("step:"):].strip() for t in tags if t.startswith("step:")})
        if len(step_tags) > 1:
            raise InvalidInput(f"cell {index} has two step tags ({', '.join(step_tags)}); a cell is in one step")
        after = [t[len("after:"):].strip() for t in tags if t.startswith("after:")]
        code.append((index, _check_step_name(step_tags[0], index) if step_tags else None, after))
    if any(step for _, step, _ in code):
        groups = _groups_from_tags(code, cells)
    elif any(_heading(cells[i]) for i in range(len(cells))):
        groups = _merge_definitions_forward(_groups_from_headings(code, cells), translated_cell)
    else:
        groups = _groups_from_cells(code, translated_cell)
    known = {g.name for g in groups}
    for group in groups:
        for cell, after in group.after:
            if after not in known:
                raise InvalidInput(f"cell {cell}: tag after:{after} names no step; the steps are "
                                   f"{', '.join(sorted(known))}")
    return parameters_cell, groups


def _check_step_name(name, index):
    if not _STEP_NAME.match(name) or keyword.iskeyword(name) or name == "parameters":
        raise InvalidInput(
            f"cell {index}: step name {name!r} must be a Python identifier (letters, digits, _), not a keyword "
            "or 'parameters'; e.g. step:load_data"
        )
    return name


def _groups_from_tags(code, cells):
    groups, ended = [], {}
    for index, step, after in code:
        if step is None or (groups and groups[-1].name == step):
            if not groups:
                groups.append(_Group(_unique(_nearest_heading(cells, index) or "start", groups)))
        elif step in ended:
            raise InvalidInput(f"cell {index} is tagged step:{step}, but step {step} ended at cell {ended[step]}: "
                               "a step is one run of consecutive cells; give this one another name")
        else:
            if groups:
                ended[groups[-1].name] = groups[-1].cells[-1]
            groups.append(_Group(step))
        groups[-1].cells.append(index)
        groups[-1].after += [(index, a) for a in after]
    return groups


def _groups_from_headings(code, cells):
    groups = []
    heading_of = {}
    current = None
    for index, cell in enumerate(cells):
        title = _heading(cell)
        if title:
            current = title
        heading_of[index] = current
    for index, _, after in code:
        title = heading_of[index] or "start"
        if not groups or groups[-1].title != title:
            groups.append(_Group(_unique(_slug(title), groups), title=title))
        groups[-1].cells.append(index)
        groups[-1].after += [(index, a) for a in after]
    return groups


def _merge_definitions_forward(groups, translated_cell):
    """A section of imports and functions only is no step of its own: it joins the next one."""
    merged, waiting = [], []
    for group in groups:
        if all(_only_definitions(translated_cell(i)[1]) for i in group.cells):
            waiting.append(group)
            continue
        for held in reversed(waiting):
            group.cells[:0] = held.cells
            group.after[:0] = held.after
        waiting = []
        merged.append(group)
    if waiting and merged:
        for held in waiting:
            merged[-1].cells += held.cells
            merged[-1].after += held.after
    return merged or waiting


def _groups_from_cells(code, translated_cell):
    """One step per cell, but definitions join the next step and look-only cells the one before."""
    groups, waiting = [], []
    trees = {index: translated_cell(index)[1] for index, _, _ in code}
    imported = {(a.asname or a.name).split(".")[0] for tree in trees.values() for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    for index, _, after in code:
        tree = trees[index]
        if _only_definitions(tree):
            waiting.append((index, after))
            continue
        if groups and _only_looks(tree, imported) and not waiting:
            groups[-1].cells.append(index)
            groups[-1].after += [(index, a) for a in after]
            continue
        group = _Group(f"cell_{waiting[0][0] if waiting else index}")
        for held, held_after in [*waiting, (index, after)]:
            group.cells.append(held)
            group.after += [(held, a) for a in held_after]
        waiting = []
        groups.append(group)
    if waiting:
        if groups:
            for held, held_after in waiting:
                groups[-1].cells.append(held)
                groups[-1].after += [(held, a) for a in held_after]
        else:
            groups.append(_Group(f"cell_{waiting[0][0]}", [i for i, _ in waiting],
                                 [(i, a) for i, after in waiting for a in after]))
    return groups


def _only_definitions(tree):
    return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass))
               or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in tree.body)


def _only_looks(tree, imported):
    """Expressions only, none of which changes a notebook value: printing, plotting, showing."""
    from .scopes import mutating_call

    if not all(isinstance(s, (ast.Expr, ast.Pass)) for s in tree.body):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            changed = mutating_call(node)
            if changed is not None and changed not in imported:
                return False
    return True


def _heading(cell):
    if cell.get("cell_type") != "markdown":
        return None
    match = _HEADING.search(source_of(cell))
    return match.group(2) if match else None


def _nearest_heading(cells, index):
    for earlier in range(index, -1, -1):
        title = _heading(cells[earlier])
        if title:
            return _slug(title)
    return None


def _slug(text):
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "step"
    while len(slug) > 32 and "_" in slug:  # whole words, short enough to read in a table
        slug = slug.rsplit("_", 1)[0]
    slug = slug[:32]
    if slug[0].isdigit() or keyword.iskeyword(slug) or slug == "parameters":
        slug = f"step_{slug}"
    return slug


def _unique(name, groups):
    taken = {g.name for g in groups}
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    return candidate


def _order(groups, flows):
    """Steps in notebook order, moved only where an after: tag asks; a cycle is an error."""
    needs = {g.name: set(flows[g.name].inputs.values()) | {a for _, a in g.after} for g in groups}
    order, done, visiting = [], set(), []

    def visit(name):
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            raise InvalidInput(f"the steps form a cycle: {' -> '.join(cycle)} (check the after: tags)")
        visiting.append(name)
        for needed in sorted(needs[name], key=[g.name for g in groups].index):
            visit(needed)
        visiting.pop()
        done.add(name)
        order.append(name)

    for group in groups:
        visit(group.name)
    return order


# ---- code generation ----------------------------------------------------------------------


def _flow_cell(index, translated):
    translation, tree = translated
    return index, translation.code, tree, sorted(translation.imports)


def _parameters(flow, index, translated):
    """Run the parameters cell through the flow first; its values become pipeline parameters."""
    translation, tree = translated
    parameters_flow = flow.step("parameters", [_flow_cell(index, translated)])
    flow.steps.remove(parameters_flow)
    if parameters_flow.inputs:
        raise InvalidInput(f"cell {index} (parameters) reads {', '.join(parameters_flow.inputs)} from other cells; "
                           "a parameters cell must stand alone")
    defaults = {}
    for statement in tree.body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    defaults[target.id] = ast.get_source_segment(translation.code, statement.value)
    for name, binding in list(flow.bindings.items()):
        if binding.step == "parameters" and binding.kind == "data":
            binding.kind = "param"
            defaults.setdefault(name, "(computed in the parameters cell)")
    return defaults


def _parameters_module(pipeline, index, translated, parameters):
    translation, tree = translated
    imports, hoisted = _hoisted_imports(translation.code, tree, keep=set())
    body = _apply(translation.code, [(statement, None) for statement in hoisted])
    values = ", ".join(f"{name!r}: {name}" for name in parameters)
    return "".join([
        f'"""Parameters of pipeline `{pipeline}`: cell {index} of the notebook (tagged `parameters`).\n\n'
        "`mlops pipeline run DIR --param NAME=VALUE` overrides a default.\n"
        f'"""\n',
        _import_block(_unique_lines([*imports, *sorted(translation.imports)])),
        "\n\ndef defaults():\n",
        indent(body), "\n",
        f"    return {{{values}}}\n",
    ])


def _step_module(pipeline, path, group, step_flow, cells, translated, flow, outputs, results):
    own_imports, body = [], []
    step_locals = set(step_flow.inputs) | set(step_flow.parameters) | step_flow.written | set(outputs) | set(results)
    translation_imports = set()
    for definition in step_flow.definitions:
        source = definition.source
        edits = _global_edits(ast.parse(source), step_locals)
        body.append(f"# {definition.name}, defined in cell {definition.cell}\n" + _apply(source, edits))
    for cell, step, source, needs in flow.setup:
        if step != group.name and _runs_before(step, group.name, flow):
            body.append(f"# set-up from cell {cell}\n{source}")
            own_imports += needs
    for index in group.cells:
        translation, tree = translated[index]
        translation_imports |= translation.imports
        imports, code = _cell_code(translation.code, tree, step_locals, index in step_flow.plotting_cells,
                                   {line for cell, line in step_flow.foreign_deletes if cell == index})
        own_imports += imports
        body.append(f"# --- cell {index} ---\n{code.rstrip()}")
    if step_flow.plotting_cells:
        translation_imports.add("from mlops_jupyter.pipeline.figures import save_figures")
    returned = [*outputs, *results]
    if returned:
        body.append(f"return {', '.join(returned)}")
    imports = _unique_lines([*step_flow.star_imports, *own_imports, *step_flow.imports, *sorted(translation_imports)])
    arguments = [*step_flow.inputs, *step_flow.parameters]
    where = f"{path.name} " if path else ""
    inputs = "; ".join(f"{n} (from {p})" for n, p in step_flow.inputs.items()) or "none"
    docstring = (
        f'"""Step `{group.name}` of pipeline `{pipeline}`, from {where}{_cells(group.cells)}.\n\n'
        f"Inputs: {inputs}. Parameters: {', '.join(step_flow.parameters) or 'none'}.\n"
        f"Returns: {', '.join(returned) or 'nothing'}.\n"
        f"Generated by mlops-jupyter {__version__}: change the notebook and convert again, not this file.\n"
        '"""\n'
    )
    return "".join([
        docstring,
        _import_block(imports),
        f"\n\ndef {group.name}({', '.join(arguments)}):\n",
        indent("\n".join(body) or "pass"), "\n",
    ])


def _import_block(lines):
    return "\n" + "".join(f"{line}\n" for line in lines) if lines else ""


def _runs_before(earlier, later, flow):
    names = [f.name for f in flow.steps]
    return earlier in names and names.index(earlier) < names.index(later)


def _cell_code(code, tree, keep, plotting, foreign_deletes):
    """A cell's code as the step runs it, and the imports hoisted out of it (one parse, one pass)."""
    imports, hoisted = _hoisted_imports(code, tree, keep)
    edits = [(statement, None) for statement in hoisted]
    edits += _display_edits(code, tree, plotting, foreign_deletes)
    edits += _global_edits(tree, keep)
    code = _apply(code, edits)
    if plotting and not any(text == "save_figures()" for _, text in edits):
        code = code.rstrip("\n") + "\nsave_figures()"  # Jupyter shows a cell's figures when it ends
    return imports, code


def _hoisted_imports(code, tree, keep):
    """Top-level imports to hoist to the module, and their statements.

    An import stays where it is when it shares its line with other code, or when the step
    also assigns one of its names (a module-level name would then be a local read too soon).
    """
    statements_on = {}
    for statement in tree.body:
        for line in range(statement.lineno, statement.end_lineno + 1):
            statements_on[line] = statements_on.get(line, 0) + 1
    imports, hoisted = [], []
    for statement in tree.body:
        if not isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        star = any(a.name == "*" for a in statement.names)
        bound = {(a.asname or a.name).split(".")[0] for a in statement.names}
        alone = all(statements_on[line] == 1 for line in range(statement.lineno, statement.end_lineno + 1))
        if star or (alone and not bound & keep):
            imports.append(ast.get_source_segment(code, statement))
            hoisted.append(statement)
    return imports, hoisted


def _display_edits(code, tree, plotting, foreign_deletes):
    """Lines that only show something in Jupyter go; plots are saved instead of shown.

    ``del x`` of a value an earlier step made goes too: the step never had it.
    """
    edits = []
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Delete) and statement.lineno in foreign_deletes:
            edits.append((statement, f"pass  # {ast.get_source_segment(code, statement)}: made in an earlier step"))
    for statement in tree.body:
        if not isinstance(statement, ast.Expr):
            continue
        value = statement.value
        if isinstance(value, (ast.Name, ast.Attribute)):
            edits.append((statement, f"pass  # shows {ast.get_source_segment(code, value)}"))
        elif isinstance(value, ast.Call) and _called_name(value) == "display":
            edits.append((statement, "pass  # display(…) is notebook-only"))
        elif isinstance(value, ast.Call) and _called_name(value) == "show" and plotting:
            edits.append((statement, "save_figures()"))
    return edits


def _called_name(call):
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)


def _global_edits(tree, step_locals):
    """Notebook globals are the step function's locals: ``global x`` inside a def becomes ``nonlocal x``."""
    edits = [(statement, f"pass  # global {', '.join(statement.names)}")  # at a cell's top it changes nothing
             for statement in tree.body if isinstance(statement, ast.Global)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Global):
                    local = [n for n in inner.names if n in step_locals]
                    rest = [n for n in inner.names if n not in step_locals]
                    parts = ([f"nonlocal {', '.join(local)}"] if local else []) + (
                        [f"global {', '.join(rest)}"] if rest else [])
                    edits.append((inner, "; ".join(parts)))
    return edits


def _apply(code, edits):
    """Replace each statement's text (None: delete its lines), bottom-up so positions hold."""
    lines = code.splitlines()
    for statement, text in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        first, last = statement.lineno - 1, statement.end_lineno - 1
        if text is None:
            del lines[first : last + 1]
            continue
        head, tail = lines[first][: statement.col_offset], lines[last][statement.end_col_offset:]
        lines[first : last + 1] = [head + text + tail]
    return "\n".join(lines)


def _unique_lines(lines):
    seen = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return seen


def _cells(numbers):
    return f"cell{'s' if len(numbers) > 1 else ''} {_ranges(numbers)}"


def _ranges(numbers):
    spans, start = [], None
    for position, number in enumerate(numbers):
        if start is None:
            start = number
        if position + 1 == len(numbers) or numbers[position + 1] != number + 1:
            spans.append(str(start) if start == number else f"{start}-{number}")
            start = None
    return ", ".join(spans)


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()
