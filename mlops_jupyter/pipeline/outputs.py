"""Step values as bytes and back: each kind in the format that keeps it exactly and readably.

The kind is the file extension of the artifact (``outputs/NAME.EXT``):

    parquet         pandas DataFrame (when pyarrow accepts it and it reads back equal)
    series.parquet  pandas Series (likewise)
    npy             numpy array of a non-object dtype, saved without pickle
    json            values JSON gives back equal and of the same types
    skops           scikit-learn estimators
    module          a module, by its import name
    pkl             anything else, with cloudpickle

Pickled and skops blobs are only ever read back through sha256s the registry recorded when
this runner stored them, and the artifact store verifies the bytes against that hash, so
loading them runs no code but ours.
"""

import importlib
import io
import json
import sys
import types

from ..errors import MlopsError

_UNNAMED_SERIES = "__unnamed_series__"  # Parquet columns need string names


class UnstorableValue(MlopsError):
    """A step value that no serializer can store."""


def encode(value, name, step):
    """``(bytes, kind)`` of ``value``, the variable ``name`` of step ``step``."""
    module = type(value).__module__.partition(".")[0]
    encoded = None
    if module == "pandas":
        encoded = _pandas(value)
    elif module == "numpy":
        encoded = _numpy(value)
    elif isinstance(value, types.ModuleType):
        encoded = value.__name__.encode(), "module"
    elif _json_exact(value):
        encoded = json.dumps(value).encode(), "json"
    elif "sklearn" in sys.modules and _is_estimator(value):  # an estimator means sklearn is loaded
        encoded = _skops(value)
    return encoded or _pickle(value, name, step)


def decode(data, kind):
    if kind == "json":
        return json.loads(data)
    if kind == "module":
        return importlib.import_module(data.decode())
    if kind == "npy":
        import numpy

        return numpy.load(io.BytesIO(data), allow_pickle=False)
    if kind in ("parquet", "series.parquet"):
        import pandas

        frame = pandas.read_parquet(io.BytesIO(data))
        if kind == "parquet":
            return frame
        series = frame.iloc[:, 0]
        return series.rename(None) if series.name == _UNNAMED_SERIES else series
    if kind == "skops":
        import skops.io

        return skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    if kind == "pkl":
        import cloudpickle

        return cloudpickle.loads(data)
    raise MlopsError(f"unknown stored value kind {kind!r}; this runner stores {', '.join(KINDS)}")


KINDS = ("parquet", "series.parquet", "npy", "json", "skops", "module", "pkl")


def split_path(path):
    """``outputs/NAME.KIND`` -> ``(NAME, KIND)`` (names are identifiers, so the first dot splits)."""
    name, _, kind = path.removeprefix("outputs/").partition(".")
    return name, kind


def _pandas(value):
    import pandas

    if type(value) is pandas.DataFrame:
        frame, kind = value, "parquet"
    elif type(value) is pandas.Series:
        name = _UNNAMED_SERIES if value.name is None else value.name
        frame, kind = value.to_frame(name=name), "series.parquet"
    else:
        return None
    try:
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        data = buffer.getvalue()
    except (ValueError, TypeError, NotImplementedError):  # pyarrow's errors subclass these
        return None  # e.g. non-string column names or mixed-type object columns: pickled instead
    return (data, kind) if _reads_back_equal(value, data, kind) else None


def _reads_back_equal(value, data, kind):
    """Parquet drops some details (e.g. an index's freq, some extension dtypes); keep it only when exact."""
    import pandas.testing

    check = pandas.testing.assert_frame_equal if kind == "parquet" else pandas.testing.assert_series_equal
    try:
        check(decode(data, kind), value, check_exact=True, check_freq=True, check_flags=True)
    except (AssertionError, TypeError, ValueError):
        return False
    return True


def _numpy(value):
    import numpy

    if type(value) is not numpy.ndarray or value.dtype.hasobject:
        return None
    buffer = io.BytesIO()
    numpy.save(buffer, value, allow_pickle=False)
    return buffer.getvalue(), "npy"


def _json_exact(value):
    """Whether JSON gives ``value`` back equal and with the same types all the way down."""
    if not isinstance(value, (dict, list, str, int, float, bool, type(None))):
        return False
    try:
        back = json.loads(json.dumps(value))
    except (TypeError, ValueError, RecursionError):
        return False
    return _same(value, back)


def _same(original, back):
    if type(original) is not type(back):
        return False
    if isinstance(original, dict):
        return original.keys() == back.keys() and all(_same(original[k], back[k]) for k in original)
    if isinstance(original, list):
        return len(original) == len(back) and all(_same(a, b) for a, b in zip(original, back))
    return original == back  # NaN is not equal to itself: pickled instead


def _is_estimator(value):
    from sklearn.base import BaseEstimator

    return isinstance(value, BaseEstimator)


def _skops(value):
    from ..errors import InvalidInput
    from ..models.serialize import dump

    try:
        data, _, _ = dump(value)
    except InvalidInput:
        return None  # e.g. a lambda inside a pipeline: cloudpickle can keep it
    return data, "skops"


def _pickle(value, name, step):
    import cloudpickle

    try:
        return cloudpickle.dumps(value), "pkl"
    except Exception as error:  # pickling raises TypeError, PicklingError, AttributeError, …
        raise UnstorableValue(
            f"step {step!r}: variable {name!r} is a {type(value).__module__}.{type(value).__qualname__}, "
            f"which cannot be stored ({type(error).__name__}: {error}); "
            "return something storable instead (data, not an open file, lock, generator or connection)"
        ) from None
