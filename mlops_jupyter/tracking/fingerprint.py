"""Fingerprints of datasets: shape, columns and dtypes, and a content hash in one vectorised pass."""

import hashlib
import sys

from ..errors import InvalidInput


def fingerprint(data):
    """``(digest, rows, schema)`` of a pandas DataFrame/Series or a NumPy array."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, (pandas.DataFrame, pandas.Series)):
        return _pandas_fingerprint(pandas, data)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(data, numpy.ndarray):
        return _array_fingerprint(numpy, data)
    raise InvalidInput(
        f"cannot fingerprint a {type(data).__name__}: pass a pandas DataFrame or Series, or a NumPy array"
    )


def _pandas_fingerprint(pandas, data):
    frame = data.to_frame() if isinstance(data, pandas.Series) else data
    columns = {str(name): str(dtype) for name, dtype in frame.dtypes.items()}
    digest = hashlib.sha256()
    digest.update(repr(sorted(columns.items())).encode())
    _update_with_values(pandas, digest, frame.index)
    if len(set(frame.dtypes)) == 1 and _is_plain_numeric(pandas, frame.dtypes.iloc[0]):
        import numpy

        # One dtype, one block: hash it in a single pass instead of column by column.
        digest.update(numpy.ascontiguousarray(frame.to_numpy()).view(numpy.uint8))
    else:
        for position in range(frame.shape[1]):
            _update_with_values(pandas, digest, frame.iloc[:, position])
    schema = {"kind": type(data).__name__, "shape": list(frame.shape), "columns": columns}
    return digest.hexdigest(), int(frame.shape[0]), schema


def _update_with_values(pandas, digest, values):
    """Feed one column (or the index) to the hash: raw bytes for plain numbers, pandas' hasher otherwise."""
    if _is_plain_numeric(pandas, values.dtype):
        import numpy

        digest.update(numpy.ascontiguousarray(values.to_numpy()).view(numpy.uint8))
    else:
        # Strings, categories, nullable types: one 64-bit hash per value, vectorised.
        digest.update(pandas.util.hash_pandas_object(values, index=False).to_numpy().tobytes())


def _is_plain_numeric(pandas, dtype):
    return not isinstance(dtype, pandas.api.extensions.ExtensionDtype) and dtype.kind in "biufcmM"


def _array_fingerprint(numpy, array):
    contiguous = numpy.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    if contiguous.dtype.hasobject:
        raise InvalidInput("cannot fingerprint an object-dtype array: convert it to a DataFrame first")
    digest.update(contiguous.data)
    rows = int(contiguous.shape[0]) if contiguous.ndim else 1
    schema = {"kind": "ndarray", "shape": list(contiguous.shape), "dtype": str(contiguous.dtype)}
    return digest.hexdigest(), rows, schema
