"""Figure 7: converting a 300-cell notebook into a pipeline, against soorgeon's ``refactor``.

The notebook is generated (``notebook_cells``): an H1 title, a setup section (``%matplotlib``,
imports, a ``parameters`` cell, ``%config``), 29 sections of ten cells each (an H2 heading, a
DataFrame built, columns added in place, a helper function, ``%timeit``, a matplotlib plot, a
groupby, a loop and a list comprehension, a cell joining the previous section's frame and
``display``) and a conclusion reading every section's summary: 300 cells, 264 of them code.

Two versions: the *full* notebook has what real notebooks do and soorgeon refuses (a star
import, and helper functions that read notebook globals); the *soorgeon variant* replaces them
(``import math`` / ``math.sqrt``, the global passed as an argument) and imports ``display``
(soorgeon's pyflakes check refuses the undefined name Jupyter provides). Ours converts both;
soorgeon only the variant, so the ratio is taken on the variant.

Timed, alternating in every round:

* ``mlops convert NB -o DIR``: the CLI's wall time in a fresh process (what a user waits for).
* ``convert(NB)`` + ``Pipeline.write(DIR)`` in a warm worker process (the converter itself).
* ``soorgeon refactor NB`` (CLI, on a fresh copy of the notebook: it writes beside it), and
  soorgeon's own entry point in a warm worker (``clean.basic_clean`` + ``export.refactor``).

soorgeon and ploomber live in ``benchmarks/.venv-ploomber`` (created when missing).
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _peer

ROUNDS = 5
TARGET_MS = 500
SECTIONS = 29
PLOOMBER_VENV = _peer.HERE / ".venv-ploomber"
PLOOMBER_PYTHON = PLOOMBER_VENV / "bin" / "python"
PLOOMBER_PACKAGES = ("ploomber", "soorgeon", "pandas", "numpy", "matplotlib", "pyarrow")
_PLOOMBER_READY = PLOOMBER_VENV / ".ready"
# ploomber-core sends usage statistics unless told not to.
PLOOMBER_ENV = {"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true", "MPLBACKEND": "Agg"}


# ---- the peers' venv (shared with bench_pipeline_rerun.py) ---------------------------------


def ensure_ploomber():
    """``benchmarks/.venv-ploomber``'s python, with soorgeon and ploomber installed."""
    if _PLOOMBER_READY.exists() and PLOOMBER_PYTHON.exists():
        return PLOOMBER_PYTHON
    log = PLOOMBER_VENV / "install.log"
    print(f"[peer] creating {PLOOMBER_VENV.relative_to(_peer.ROOT)} with {' '.join(PLOOMBER_PACKAGES)}", flush=True)
    if not PLOOMBER_PYTHON.exists():
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(PLOOMBER_VENV)], check=True)
    with open(log, "w") as out:
        done = subprocess.run([str(PLOOMBER_PYTHON), "-m", "pip", "install", "--disable-pip-version-check",
                               *PLOOMBER_PACKAGES], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"[peer] pip install failed ({done.returncode}); see {log}")
    _PLOOMBER_READY.write_text(json.dumps(_peer.versions(PLOOMBER_PYTHON, PLOOMBER_PACKAGES)))
    return PLOOMBER_PYTHON


def env():
    environment = _peer.worker_env()
    environment.update(PLOOMBER_ENV)
    return environment


def wall_ms(command, cwd, check=True):
    """Wall time of ``command`` (a fresh process) in ms; raises with its output when it fails."""
    started = time.perf_counter()
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=600)
    elapsed = (time.perf_counter() - started) * 1000
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, done


def mlops_cli():
    return _peer.ours_python().parent / "mlops"


# ---- the notebook --------------------------------------------------------------------------


def notebook_cells(soorgeon_variant=False):
    """``[(cell_type, source, tags)]`` of the 300-cell notebook."""
    star = not soorgeon_variant
    root = "sqrt" if star else "math.sqrt"
    cells = [
        ("markdown", "# Monthly analysis\n\nA generated notebook: each part builds a frame, "
                     "looks at it and keeps a summary.", []),
        ("markdown", "## Setup", []),
        ("code", "%matplotlib inline\nimport numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n"
                 + ("from math import *" if star else "import math\nfrom IPython.display import display"), []),
        ("code", "n_rows = 400\nseed = 7\nthreshold = 0.5", ["parameters"]),
        ("code", "rng = np.random.default_rng(seed)\n%config InlineBackend.figure_format = 'png'", []),
    ]
    for i in range(SECTIONS):
        frame = f"frame_{i}"
        reads_global = star and i % 3 == 0  # every third helper reads the notebook's `threshold`
        helper = (f"def weight_{i}(values):\n    \"\"\"Share of values above the notebook's threshold.\"\"\"\n"
                  f"    return float((values > threshold).mean())" if reads_global else
                  f"def weight_{i}(values, limit):\n    \"\"\"Share of values above ``limit``.\"\"\"\n"
                  f"    return float((values > limit).mean())")
        call = f"share_{i} = weight_{i}({frame}['b'])" if reads_global else \
            f"share_{i} = weight_{i}({frame}['b'], threshold)"
        previous = (f"combined_{i} = pd.concat([{frame}, frame_{i - 1}], ignore_index=True)\n" if i else
                    f"combined_{i} = {frame}.copy()\n")
        cells += [
            ("markdown", f"## Part {i + 1}: segment {i}\n\nBuild the segment, add derived columns, plot it.", []),
            ("code", f"{frame} = pd.DataFrame({{\n    'g': rng.integers(0, 5, size=n_rows),\n"
                     f"    'a': rng.normal(size=n_rows),\n    'b': rng.uniform(size=n_rows),\n}})\n{frame}.shape", []),
            ("code", f"{frame}['c'] = {frame}['a'] * 2 + {frame}['b']\n{frame}['d'] = np.log1p({frame}['b'])", []),
            ("code", helper, []),
            ("code", call, []),
            ("code", f"%timeit {frame}['c'].sum()\ntotal_{i} = {frame}['c'].sum()", []),
            ("code", f"fig, ax = plt.subplots(figsize=(4, 3))\nax.hist({frame}['a'], bins=20)\n"
                     f"ax.set_title('segment {i}')\nplt.show()", []),
            ("code", f"grouped_{i} = {frame}.groupby('g')['c'].agg(['mean', 'std', 'count'])\ngrouped_{i}", []),
            ("code", f"for column in ['a', 'b']:\n    {frame}[column + '_z'] = "
                     f"({frame}[column] - {frame}[column].mean()) / {frame}[column].std()\n"
                     f"large_{i} = [k for k, v in grouped_{i}['mean'].items() if v > threshold]", []),
            ("code", previous + f"summary_{i} = {{'rows': len(combined_{i}), 'share': share_{i}, "
                                f"'root': {root}(total_{i} ** 2), 'large': len(large_{i})}}\n"
                                f"display(combined_{i}.tail(3))", []),
        ]
    names = ", ".join(f"summary_{i}" for i in range(SECTIONS))
    cells += [
        ("markdown", "## Conclusion", []),
        ("code", f"all_summaries = [{names}]", []),
        ("code", "overview = pd.DataFrame(all_summaries)\noverview.describe()", []),
        ("code", "fig, ax = plt.subplots()\nax.plot(overview['share'])\nplt.show()", []),
        ("code", "print(len(overview), overview['rows'].sum())", []),
    ]
    assert len(cells) == 300, len(cells)
    return cells


def write_notebook(path, soorgeon_variant=False):
    """Write the notebook as nbformat 4.5 JSON (standard library only)."""
    cells = []
    for index, (kind, source, tags) in enumerate(notebook_cells(soorgeon_variant)):
        cell = {"cell_type": kind, "id": f"cell-{index:03d}", "metadata": {"tags": tags} if tags else {},
                "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"},
                                             "language_info": {"name": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    Path(path).write_text(json.dumps(notebook, indent=1))
    return Path(path)


# ---- the two sides in warm worker processes ------------------------------------------------


class Ours:
    def __init__(self):
        from mlops_jupyter.pipeline.convert import convert

        self.convert = convert

    def convert_ms(self, notebook, out):
        started = time.perf_counter()
        pipeline = self.convert(notebook)
        converted = time.perf_counter()
        pipeline.write(out)
        done = time.perf_counter()
        return {"convert": (converted - started) * 1000, "total": (done - started) * 1000,
                "steps": len(pipeline.spec.steps), "warnings": len(pipeline.spec.warnings)}


class Soorgeon:
    def __init__(self):
        import os

        os.environ.update(PLOOMBER_ENV)
        from soorgeon import clean, export

        self.clean, self.export = clean, export

    def refactor_ms(self, notebook):
        """soorgeon's ``refactor`` entry point as its CLI calls it (defaults), timed in this process."""
        import contextlib
        import io
        import os

        folder = os.getcwd()
        os.chdir(Path(notebook).parent)
        try:
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                # what `soorgeon refactor NB` does (soorgeon/cli.py): black the notebook, then refactor it
                self.clean.basic_clean(Path(notebook).name, string_normalization=False)
                self.export.refactor(Path(notebook).name, None, product_prefix=None, df_format=None,
                                     single_task=False, file_format=None, serializer=None)
            return (time.perf_counter() - started) * 1000
        finally:
            os.chdir(folder)


# ---- orchestration -------------------------------------------------------------------------


def soorgeon_refuses(notebook, scratch):
    """soorgeon's answer to the full notebook: its error's first line, or None if it accepts it."""
    folder = scratch / "soorgeon-full"
    folder.mkdir()
    copy = shutil.copy(notebook, folder / "nb.ipynb")
    _, done = wall_ms([PLOOMBER_VENV / "bin" / "soorgeon", "refactor", copy], folder, check=False)
    if done.returncode == 0:
        return None
    text = (done.stderr + done.stdout).strip().splitlines()
    errors = [line.split("Error: ", 1)[1] for line in text if "InputError: " in line]
    return (errors[-1] if errors else text[-1]).strip()


def main():
    args = _peer.parse_args(__doc__.splitlines()[0])
    rounds = 3 if args.quick else ROUNDS
    peer = not args.no_peer
    if peer:
        ensure_ploomber()
    _peer.warm_bytecode(_peer.ours_python(), "ours")
    times = {key: [] for key in ("ours_cli", "ours_cli_full", "ours_convert", "ours_total", "ours_total_full",
                                 "soorgeon_cli", "soorgeon_inproc", "bare_ours", "bare_peer")}
    with _peer.scratch_dir() as scratch:
        full = write_notebook(scratch / "analysis.ipynb")
        variant = write_notebook(scratch / "analysis_variant.ipynb", soorgeon_variant=True)
        refusal = soorgeon_refuses(full, scratch) if peer else None
        ours = _peer.Worker(_peer.ours_python(), __file__, "Ours", cwd=scratch)
        other = _peer.Worker(PLOOMBER_PYTHON, __file__, "Soorgeon", cwd=scratch) if peer else None
        try:
            shape = ours.call("convert_ms", notebook=str(full), out=str(scratch / "warm-full"))
            shape_variant = ours.call("convert_ms", notebook=str(variant), out=str(scratch / "warm-variant"))
            wall_ms([mlops_cli(), "convert", full, "-o", scratch / "warm-cli"], scratch)  # .pyc files
            if peer:
                warm = scratch / "soorgeon-warm"
                warm.mkdir()
                other.call("refactor_ms", notebook=str(shutil.copy(variant, warm / "nb.ipynb")))
                warm = scratch / "soorgeon-warm-cli"
                warm.mkdir()
                wall_ms([PLOOMBER_VENV / "bin" / "soorgeon", "refactor", shutil.copy(variant, warm / "nb.ipynb")], warm)
            for r in range(rounds):
                here = scratch / f"round-{r}"
                here.mkdir()
                steps = [
                    ("ours_cli", lambda: wall_ms([mlops_cli(), "convert", variant, "-o", here / "cli"], scratch)[0]),
                    ("ours_cli_full", lambda: wall_ms([mlops_cli(), "convert", full, "-o", here / "cli-full"],
                                                      scratch)[0]),
                    ("ours_total", lambda: ours.call("convert_ms", notebook=str(variant), out=str(here / "inproc"))),
                    ("ours_total_full", lambda: ours.call("convert_ms", notebook=str(full),
                                                          out=str(here / "inproc-full"))),
                    ("bare_ours", lambda: wall_ms([_peer.ours_python(), "-c", "pass"], scratch)[0]),
                ]
                if peer:
                    def soorgeon_cli():
                        folder = here / "soorgeon-cli"
                        folder.mkdir()
                        copy = shutil.copy(variant, folder / "nb.ipynb")
                        return wall_ms([PLOOMBER_VENV / "bin" / "soorgeon", "refactor", copy], folder)[0]

                    def soorgeon_inproc():
                        folder = here / "soorgeon-inproc"
                        folder.mkdir()
                        return other.call("refactor_ms", notebook=str(shutil.copy(variant, folder / "nb.ipynb")))

                    steps += [("soorgeon_cli", soorgeon_cli), ("soorgeon_inproc", soorgeon_inproc),
                              ("bare_peer", lambda: wall_ms([PLOOMBER_PYTHON, "-c", "pass"], scratch)[0])]
                steps = steps[::2] + steps[1::2] if r % 2 else steps  # interleave differently each round
                for key, measure in steps:
                    value = measure()
                    if isinstance(value, dict):
                        times[key].append(value["total"])
                        if key == "ours_total":
                            times["ours_convert"].append(value["convert"])
                    else:
                        times[key].append(value)
                print(f"[convert] round {r + 1}/{rounds}: ours CLI {times['ours_cli'][-1]:.0f} ms, in-process "
                      f"{times['ours_total'][-1]:.0f} ms" + (f"; soorgeon CLI {times['soorgeon_cli'][-1]:.0f} ms, "
                                                            f"in-process {times['soorgeon_inproc'][-1]:.0f} ms"
                                                            if peer else ""), flush=True)
        finally:
            ours.close()
            if other is not None:
                other.close()

    m = {key: (_peer.median(values) if values else None) for key, values in times.items()}
    rows = [
        _peer.row("`mlops convert` CLI wall time vs `soorgeon refactor`, 300 cells (soorgeon variant)",
                  m["ours_cli"], m["soorgeon_cli"], target=f"≤ {TARGET_MS} ms", limit=TARGET_MS),
        _peer.row("same notebook converted in a warm process: `convert()` + `write()` vs soorgeon's `basic_clean()` + `export.refactor()`",
                  m["ours_total"], m["soorgeon_inproc"], target=f"≤ {TARGET_MS} ms", limit=TARGET_MS),
        _peer.row("  of which `convert()` alone (ours only)", m["ours_convert"], None),
        _peer.row("`mlops convert` CLI wall time, full notebook (star import, globals in functions; soorgeon "
                  "refuses it)", m["ours_cli_full"], None, target=f"≤ {TARGET_MS} ms", limit=TARGET_MS),
        _peer.row("full notebook in a warm process (ours only)", m["ours_total_full"], None),
        _peer.row("bare interpreter start (`python -c pass`) of each venv", m["bare_ours"], m["bare_peer"],
                  note="for information"),
    ]
    notes = [
        f"{rounds} rounds; each round runs every case once, in an order that alternates between rounds; medians.",
        f"Notebook: 300 cells (36 markdown, 264 code), {SECTIONS} H2 sections; ours made {shape['steps']} steps "
        f"from the full notebook ({shape['warnings']} warnings) and "
        f"{shape_variant['steps']} from the variant. No step tags: both tools split at H2 headings.",
        "soorgeon on the full notebook: " + (f"refused (`{refusal}`); timed on the variant, which replaces the star "
                                             "import by `import math`, passes the global to the helper functions as an "
                                             "argument and imports `display` (soorgeon refuses the undefined name)"
                                             if refusal else "accepted") if peer else "soorgeon not measured",
        "CLI rows are the wall time of a fresh process (`.venv/bin/mlops convert NB -o DIR`, "
        "`.venv-ploomber/bin/soorgeon refactor NB`), including interpreter start and imports; bytecode is "
        "cached for both (`PYCACHE` in `_peer.py`).",
        "soorgeon in-process: `clean.basic_clean` (black) and `export.refactor` with the CLI's defaults, what `soorgeon refactor` runs, "
        "in a warm worker that imported soorgeon beforehand.",
    ]
    if peer:
        notes.append("Versions: " + ", ".join(f"{k} {v}" for k, v in _peer.versions(
            PLOOMBER_PYTHON, ("soorgeon", "ploomber", "pandas")).items() if v))
    result = _peer.finish(args, 7, "Converting a 300-cell notebook (peer: soorgeon)", rows, notes, peer="soorgeon")
    return result


if __name__ == "__main__":
    main()
