"""The converter: notebook → steps, data flow, generated code; and its mistakes, each one clear error."""

import json

import nbformat
import pytest
from pipeline_notebooks import cells_notebook, churn_notebook, code, headings_notebook, markdown, notebook, write

from mlops_jupyter import api, cli
from mlops_jupyter.errors import InvalidInput, NotFound
from mlops_jupyter.pipeline.convert import convert
from mlops_jupyter.pipeline.spec import load


def convert_cells(*cells):
    return convert(notebook(*cells))


def steps_of(pipeline):
    return {step.name: step for step in pipeline.spec.steps}


def module(pipeline, step):
    return pipeline.files[f"steps/{step}.py"]


# ---- steps from tags, headings, cells ------------------------------------------------------


def test_tags_make_steps_and_untagged_cells_join_the_step_above():
    pipeline = convert_cells(
        code("a = 1", "step:first"),
        code("b = a + 1"),
        code("c = b * 2", "step:second"),
        code("print(c)", "skip"),
    )
    steps = steps_of(pipeline)
    assert list(steps) == ["first", "second"]
    assert steps["first"].cells == [0, 1]
    assert steps["first"].outputs == ["b"] and steps["first"].results == ["a"]
    assert steps["second"].inputs == {"b": "first"}
    assert any("tagged skip" in w["message"] and w["cell"] == 3 for w in pipeline.spec.warnings)


def test_markdown_headings_make_steps_when_there_are_no_tags():
    steps = steps_of(convert(headings_notebook()))
    # The title section holds only imports: it joins the next step instead of being one.
    assert list(steps) == ["load_the_data", "clean", "summarise"]
    assert steps["clean"].inputs == {"prices": "load_the_data"}
    assert steps["summarise"].inputs == {"clean": "clean"}


def test_without_tags_or_headings_each_cell_is_a_step_merged_where_sensible():
    steps = steps_of(convert(cells_notebook()))
    # The import joins the next cell; the cell that only prints joins the one before; the def the next.
    assert {name: step.cells for name, step in steps.items()} == {"cell_0": [0, 1, 2], "cell_3": [3, 4]}
    assert steps["cell_3"].inputs == {"values": "cell_0"}
    assert steps["cell_3"].results == ["middle", "width"]


def test_parameters_cell_becomes_pipeline_parameters_with_defaults():
    pipeline = convert_cells(
        code("import math\nrate = 0.1\nlabel = 'x'", "parameters"),
        code("y = math.floor(rate * 100)", "step:use"),
    )
    assert pipeline.spec.parameters == {"rate": {"default": "0.1"}, "label": {"default": "'x'"}}
    assert steps_of(pipeline)["use"].parameters == ["rate"]
    assert "def defaults():" in pipeline.files["parameters.py"]
    namespace = {}
    exec(pipeline.files["parameters.py"], namespace)
    assert namespace["defaults"]() == {"rate": 0.1, "label": "x"}


# ---- data flow ------------------------------------------------------------------------------


def test_a_function_reading_globals_takes_them_in_the_step_that_calls_it():
    pipeline = convert_cells(
        code("limit = 10\ndef capped(x):\n    return min(x, limit)", "step:define"),
        code("first = capped(50)\nlimit = 20\nsecond = capped(50)", "step:call"),
    )
    call = steps_of(pipeline)["call"]
    assert call.inputs == {"limit": "define"}
    assert "def capped(x):" in module(pipeline, "call")  # the definition travels as code, not data
    namespace = {}
    exec(module(pipeline, "call"), namespace)
    # The global changes between the calls, as in the notebook.
    assert namespace["call"](10) == (10, 20, 20)


def test_a_class_reading_globals_when_instantiated():
    pipeline = convert_cells(
        code("unit = 'kg'\nclass Weight:\n    def __init__(self, v):\n        self.text = f'{v} {unit}'", "step:a"),
        code("w = Weight(3).text", "step:b"),
    )
    assert steps_of(pipeline)["b"].inputs == {"unit": "a"}
    namespace = {}
    exec(module(pipeline, "b"), namespace)
    assert namespace["b"]("kg") == "3 kg"


def test_star_imports_reach_every_step_using_their_names():
    pipeline = convert_cells(
        code("from math import *\nx = 2.0", "step:a"),
        code("y = sqrt(x) + pi", "step:b"),
    )
    assert "from math import *" in module(pipeline, "b")
    assert steps_of(pipeline)["b"].inputs == {"x": "a"}
    assert not pipeline.spec.warnings


def test_comprehension_and_generator_variables_are_not_inputs():
    pipeline = convert_cells(
        code("v = 5\nitems = [1, 2, 3]", "step:a"),
        code("total = sum(v * 2 for v in items)\nsquares = {v: v * v for v in items}", "step:b"),
    )
    assert steps_of(pipeline)["b"].inputs == {"items": "a"}


def test_loop_and_with_names_are_local_but_a_name_bound_on_some_paths_brings_its_earlier_value():
    pipeline = convert_cells(
        code("i = 100\nbest = 0\nscores = [3, 9, 4]", "step:a"),
        code("for i in range(3):\n    pass\nfor s in scores:\n    if s > 5:\n        best = s", "step:b"),
        code("final = best", "step:c"),
    )
    b = steps_of(pipeline)["b"]
    assert "i" not in b.inputs  # the loop binds it before any read
    assert b.inputs == {"scores": "a", "best": "a"}  # best may stay unbound in b: a's value comes in
    assert any("some paths" in note for note in b.notes)
    assert steps_of(pipeline)["c"].inputs == {"best": "b"}


def test_in_place_changes_make_the_changed_object_an_output():
    pipeline = convert_cells(
        code("rows = []\nconfig = {}\nfrom sklearn.linear_model import LinearRegression\nm = LinearRegression()",
             "step:make"),
        code("rows.append(1)\nconfig['k'] = 2\nm.fit([[0], [1]], [0, 1])", "step:change"),
        code("def clear(d):\n    d.clear()\nclear(config)", "step:through_function"),
        code("out = (rows, config, m.coef_)", "step:use"),
    )
    steps = steps_of(pipeline)
    assert set(steps["change"].outputs) == {"rows", "config", "m"}
    assert steps["through_function"].inputs == {"config": "change"}
    assert steps["use"].inputs == {"rows": "change", "config": "through_function", "m": "change"}


def test_an_unknown_method_counts_as_a_change_and_says_why():
    steps = steps_of(convert_cells(
        code("class Box:\n    def put(self, x):\n        self.x = x\nbox = Box()", "step:a"),
        code("box.put(3)", "step:b"),
        code("got = box.x", "step:c"),
    ))
    assert steps["c"].inputs == {"box": "b"}
    assert any("box.put" in note for note in steps["b"].notes)


def test_global_augmented_assignment_and_del():
    pipeline = convert_cells(
        code("count = 0\ndef bump():\n    global count\n    count += 1\nold = 'x'", "step:a"),
        code("bump()\ncount += 10\ndel old", "step:b"),
        code("final = count", "step:c"),
    )
    b = steps_of(pipeline)["b"]
    assert b.inputs == {"count": "a"} and "count" in b.outputs
    text = module(pipeline, "b")
    assert "nonlocal count" in text and "del old" not in text.replace("# del old", "")
    namespace = {}
    exec(text, namespace)
    assert namespace["b"](1) == 12


def test_imports_are_repeated_in_each_step_that_uses_them():
    pipeline = convert_cells(
        code("import json as j\nfrom pathlib import Path\ntext = j.dumps([1])", "step:a"),
        code("data = j.loads(text)\nhere = Path('.')", "step:b"),
    )
    text = module(pipeline, "b")
    assert "import json as j" in text and "from pathlib import Path" in text
    assert steps_of(pipeline)["b"].inputs == {"text": "a"}


def test_registry_reads_follow_registry_writes_and_always_run():
    steps = steps_of(convert_cells(
        code("import mlops_jupyter as mlops\nimport pandas as pd\nframe = pd.DataFrame()", "step:a"),
        code("mlops.register_feature('f', frame, entity='e', timestamp='t')", "step:b"),
        code("ts = mlops.training_set('t', frame, 'f')", "step:c"),
    ))
    assert steps["c"].upstream == ["a", "b"] and steps["c"].after == ["b"]
    assert steps["c"].always_run and not steps["b"].always_run
    assert steps["c"].registry_reads == []  # a training set is data; ids and times are not in it


def test_after_tag_orders_steps_with_no_data_between_them():
    steps = steps_of(convert_cells(
        code("open('f.txt', 'w').write('x')", "step:write"),
        code("text = open('f.txt').read()", "step:read", "after:write"),
    ))
    assert steps["read"].upstream == ["write"]


# ---- notebook-only lines --------------------------------------------------------------------


def test_magics_are_translated_or_dropped_with_warnings():
    pipeline = convert_cells(
        code("%matplotlib inline\nimport os\n%timeit -n 3 -r 1 \\\n   sum(\\\n   [1, 2])\nx = !echo hi", "step:a"),
        code("if True:\n    %pip install polars==1.0 -q\n!pip install rich\n!ls -la\n%env MODE=fast\n%bookmark here", "step:b"),
        code("%%time\ny = 3", "step:c"),
    )
    a, b, c = (module(pipeline, s) for s in "abc")
    assert "sum( [1, 2])" in " ".join(a.split()) and "timeit" not in a  # run once, its lines joined
    assert "subprocess.run('echo hi', shell=True" in a
    assert "pass  # %pip install polars==1.0 -q" in b
    assert "os.environ['MODE'] = 'fast'" in b
    assert "y = 3" in c
    assert pipeline.spec.requirements == ["polars==1.0", "rich"]
    messages = [w["message"] for w in pipeline.spec.warnings]
    assert any("!ls -la" in m for m in messages) and any("%bookmark" in m for m in messages)
    assert not any("matplotlib" in m for m in messages)  # display settings go quietly


def test_mlops_lines_become_api_calls():
    pipeline = convert_cells(
        code("%load_ext mlops_jupyter\n%mlops experiment churn\nacc = 0.5", "step:a"),
        code(
            "%%mlops run fit --tags team=a\n%mlops log acc={acc} loss=0.25\n%mlops param depth=$acc\n"
            "%mlops register model --name churn --primary-metric acc\n"
            "%mlops promote churn 1 --to staging --reason 'looks good'\n%mlops runs\nbest = %mlops load churn@staging",
            "step:b",
        ),
    )
    text = module(pipeline, "b")
    assert "with mlops.start_run('fit', tags={'team': 'a'}) as _run, autolog(_run, globals()):" in text
    assert "mlops.log_metrics({'acc': acc, 'loss': 0.25})" in text
    assert "mlops.log_params({'depth': f\"{acc}\"})" in text
    assert "mlops.register_model(model, 'churn', primary_metric='acc')" in text
    assert "mlops.promote('churn', '1', 'staging', reason='looks good')" in text
    assert "best = mlops.load_model('churn@staging')" in text
    assert "pass  # %mlops runs" in text  # a listing as a statement only showed something
    assert pipeline.spec.experiment == "churn"


def test_display_and_bare_names_are_dropped_and_plots_saved():
    pipeline = convert_cells(
        code("import matplotlib.pyplot as plt\nvalues = [1, 3, 2]\nvalues\ndisplay(values)", "step:a"),
        code("plt.plot(values)\nplt.show()", "step:b"),
    )
    a, b = module(pipeline, "a"), module(pipeline, "b")
    assert "pass  # shows values" in a and "display(" not in a.replace("# display(", "")
    assert "save_figures()" in b and "plt.show()" not in b
    assert "from mlops_jupyter.pipeline.figures import save_figures" in b


def test_generated_code_indents_without_changing_multiline_strings():
    pipeline = convert_cells(
        code('query = """\nselect 1\n  from t\n"""', "step:a"),
        code('%%mlops run r\nother = """\nselect 2\n  from u\n"""', "step:b"),  # nested in a `with` block
    )
    namespace = {}
    exec(module(pipeline, "a"), namespace)
    assert namespace["a"]() == "\nselect 1\n  from t\n"
    assert '"""\nselect 2\n  from u\n"""' in module(pipeline, "b")


# ---- purity, CLI, magic ---------------------------------------------------------------------


def test_conversion_is_pure_and_repeatable(tmp_path, registry):
    (tmp_path / "nb").mkdir()
    path = write(churn_notebook(), tmp_path / "nb" / "churn.ipynb")
    before = api.registry_counts()
    first, second = convert(path), convert(path)
    assert first.files == second.files and first.spec.to_json() == second.spec.to_json()
    assert sorted(p.name for p in path.parent.iterdir()) == ["churn.ipynb"]  # nothing written by convert
    assert api.registry_counts() == before
    churn = steps_of(first)
    assert list(churn) == ["load", "features", "labels", "train", "report"]
    assert churn["train"].inputs == {"frame": "labels", "calls": "labels"}
    assert churn["train"].parameters == ["n_trees", "seed"]
    assert first.spec.notebook["sha256"] and first.spec.requirements == ["polars"]


def test_cli_convert_writes_the_folder_and_prints_the_steps(tmp_path, capsys):
    path = write(headings_notebook(), tmp_path / "prices.ipynb")
    assert cli.main(["convert", str(path), "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "3 steps written to" in printed and "clean" in printed
    spec = load(tmp_path / "out")
    assert [s.name for s in spec.steps] == ["load_the_data", "clean", "summarise"]
    assert sorted(p.name for p in (tmp_path / "out" / "steps").iterdir()) == ["clean.py", "load_the_data.py",
                                                                               "summarise.py"]
    # The default folder sits beside the notebook.
    assert cli.main(["convert", str(path)]) == 0
    assert (tmp_path / "prices_pipeline" / "pipeline.json").is_file()


def test_reconverting_removes_modules_of_steps_that_are_gone(tmp_path):
    path = write(notebook(code("a = 1", "step:one"), code("b = a", "step:two")), tmp_path / "n.ipynb")
    api.convert(path, out=tmp_path / "p")
    write(notebook(code("a = 1\nb = a", "step:one")), path)
    api.convert(path, out=tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p" / "steps").iterdir()) == ["one.py"]


def test_magic_convert(shell, tmp_path, capsys):
    path = write(headings_notebook(), tmp_path / "prices.ipynb")
    pipeline = shell.run_line_magic("mlops", f"convert {path} --out {tmp_path / 'p'}")
    assert [s.name for s in pipeline.spec.steps] == ["load_the_data", "clean", "summarise"]
    assert "mlops pipeline run" in capsys.readouterr().out
    from IPython.core.error import UsageError

    shell.user_ns.pop("__session__", None)
    with pytest.raises(UsageError, match="which notebook"):
        shell.run_line_magic("mlops", "convert")
    with pytest.raises(UsageError, match="no notebook at"):
        shell.run_line_magic("mlops", f"convert {tmp_path / 'missing.ipynb'}")


# ---- old formats and mistakes ---------------------------------------------------------------


def test_an_nbformat_3_notebook_is_upgraded_and_converted(tmp_path):
    from nbformat import v3

    old = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_text_cell("markdown", source="# Old notebook"),
        v3.new_code_cell(input="x = 21"),
        v3.new_code_cell(input="y = x * 2"),
    ])])
    path = tmp_path / "old.ipynb"
    path.write_text(v3.writes_json(old))
    pipeline = convert(path)
    assert pipeline.spec.notebook["nbformat"].startswith("4.")
    assert steps_of(pipeline)["old_notebook"].results == ["x", "y"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not a notebook: invalid JSON"),
        ('{"hello": 1}', "is not a notebook: it has no cells"),
        ('{"cells": [], "metadata": {}}', "has no nbformat version"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
    ],
)
def test_not_a_notebook(tmp_path, content, message):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InvalidInput, match=message):
        convert(path)


def test_missing_file(tmp_path):
    with pytest.raises(NotFound, match="no notebook at"):
        convert(tmp_path / "nope.ipynb")


@pytest.mark.parametrize(
    "cells, message",
    [
        ([code("x = 1"), code("def f(:\n    pass")], r"cell 1: invalid syntax at line 1"),
        ([code("%mlops log acc=high", "step:a")], r"cell 0: metric 'acc' must be a number"),
        ([code("x = 1", "step:a"), code("y = 2", "after:nowhere")], r"cell 1: tag after:nowhere names no step"),
        ([code("x = 1", "step:a", "after:b"), code("y = x", "step:b")], r"cycle: a -> b -> a"),
        ([code("x = 1", "step:a"), code("y = 1", "step:b"), code("z = 1", "step:a")], r"step a ended at cell 0"),
        ([code("x = 1", "step:load data")], r"step name 'load data' must be a Python identifier"),
        ([code("x = 1", "step:a", "step:b")], r"cell 0 has two step tags"),
        ([code("a = 1", "parameters"), code("b = 2", "parameters")], r"cells 0 and 1 are both tagged parameters"),
        ([code("a = 1", "step:s"), code("b = a", "parameters")], r"parameters\) reads a"),
        ([code("%%mlops feature f\nx", "step:a")], r"needs one NAME, --entity COL and --timestamp COL"),
    ],
)
def test_mistakes_are_one_clear_error(cells, message):
    with pytest.raises(InvalidInput, match=message):
        convert_cells(*cells)


def test_cli_reports_a_bad_notebook_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "x = (", "metadata": {},
                                           "outputs": [], "execution_count": None}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert cli.main(["convert", str(path), "-o", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("mlops: error: cell 0:") and "\n" not in error
    assert not (tmp_path / "out").exists()


def test_unknown_names_are_warned_about_not_guessed():
    pipeline = convert_cells(code("y = undefined_thing + 1", "step:a"))
    assert any("`undefined_thing` is used but not defined" in w["message"] for w in pipeline.spec.warnings)


def test_in_memory_notebook_needs_an_output_folder():
    with pytest.raises(InvalidInput, match="say where to write"):
        api.convert(nbformat.v4.new_notebook(cells=[markdown("# x")]))
