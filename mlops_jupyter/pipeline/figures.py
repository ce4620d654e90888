"""Figures a pipeline step draws, kept as PNG artifacts of its step run instead of shown.

Generated step modules call ``save_figures()`` where the notebook showed a plot; the runner
wraps each step in ``capturing()``, which also keeps the figures still open when it ends.
"""

import io
import os
import sys
from contextlib import contextmanager

_captured = None  # PNG bytes of the running step's figures; None when no step runs


def save_figures():
    """Keep every open matplotlib figure as a PNG of the running step and close it; return how many.

    Outside a pipeline run this does nothing, so a step module imported by hand still works.
    """
    # A step that never imported pyplot has no figures: no need to import matplotlib here.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or _captured is None:
        return 0
    numbers = pyplot.get_fignums()
    for number in numbers:
        figure = pyplot.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        pyplot.close(figure)
        _captured.append(buffer.getvalue())
    return len(numbers)


@contextmanager
def capturing():
    """Run a step with matplotlib drawing off-screen (Agg); yield the list its figures go to."""
    global _captured
    previous_backend = os.environ.get("MPLBACKEND")
    # Set for a pyplot the step imports; switched directly when pyplot is already loaded.
    os.environ["MPLBACKEND"] = "Agg"
    pyplot = sys.modules.get("matplotlib.pyplot")
    previous_pyplot_backend = pyplot.get_backend() if pyplot is not None else None
    if pyplot is not None:
        pyplot.switch_backend("Agg")
    _captured = figures = []
    try:
        yield figures
        save_figures()
    finally:
        _captured = None
        if previous_pyplot_backend is not None:  # e.g. a notebook's inline backend, given back
            pyplot.switch_backend(previous_pyplot_backend)
        if previous_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = previous_backend
