"""Small helpers that generated step code calls, for what a magic did with the notebook's namespace."""

import sys


def dataframes(namespace, names):
    """The DataFrames among ``names`` in ``namespace``: what ``%%mlops feature`` records as sources."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return {}
    return {name: namespace[name] for name in names if isinstance(namespace.get(name), pandas.DataFrame)}
