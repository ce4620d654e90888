"""Feature statistics: describe a column, compare two descriptions, two-sample KS.

``describe(series)`` returns a plain, JSON-serialisable dict (ints, floats, strings, lists,
``None`` for NaN or undefined values; never numpy scalars) that is stored with each feature
version. ``compare(old, new)`` reports the differences between two such dicts (two versions
of a feature, or the training set against served values) including the population
stability index (PSI). ``histogram_on(series, edges)`` counts raw values on the bins of a
stored histogram, for an exact PSI; ``ks_statistic(a, b)`` is the two-sample
Kolmogorov–Smirnov test on raw samples.

Conventions
-----------
* ``count`` is the number of non-null values, ``nulls`` the number of nulls (NaN, None,
  NaT), ``rows = count + nulls``; ``null_fraction = nulls / rows`` (0.0 for an empty series).
* Histogram bins are ``[e0, e1), [e1, e2), …, [e_{k-1}, e_k]`` (the last one closed).
  ``describe`` uses ``bins`` equal-width bins over ``[min, max]``, a single bin
  ``[min, min]`` when all values are equal, and no bins when there are no values.
* Numeric ``±inf`` values are counted in ``infinite`` and left out of the moments, quantiles
  and histogram (whose counts then sum to ``count - infinite``).
* ``std`` is the sample standard deviation (ddof=1, as pandas); ``None`` below two values.
* Quantiles use numpy's default (linear interpolation).
* Datetimes are binned on epoch time; edges, min, max and quantiles are ISO-8601 strings
  (with the offset for timezone-aware columns). Timedeltas are described as numeric
  seconds (``"unit": "seconds"``).

PSI
---
``PSI = Σ (q_i − p_i) · ln(q_i / p_i)`` over bins, ``p`` the old and ``q`` the new
proportions. Proportions are floored at :data:`PSI_EPSILON` (``1e-4``) so an empty bin on
either side gives a large but finite term instead of ``log(0)``. Bands
(:func:`psi_band`): ``< 0.1`` stable, ``< 0.25`` moderate shift, otherwise major shift.

For numeric and datetime features the bins are the OLD histogram's bins, with the first and
last bins extended to ``−∞`` / ``+∞`` so new values outside the old range still count. The
new counts on those bins are exact when given as ``new_counts_on_old_edges`` (computed with
:func:`histogram_on`, which clips out-of-range values into the end bins the same way);
otherwise they are approximated from the new histogram by assuming a uniform density inside
each new bin (a point mass for a single zero-width bin) and redistributing its count onto
the old bins in proportion to the overlap. When the old histogram is a single zero-width
bin (a constant feature) the comparison uses three bins: below, equal to and above that
value.

Categorical and boolean PSI is over the union of both sides' top values plus an "other"
bucket (each side's ``other_count``); a value missing from one side's top list counts in
that side's "other".
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "PSI_EPSILON",
    "QUANTILES",
    "KSResult",
    "compare",
    "describe",
    "histogram_on",
    "kolmogorov_sf",
    "ks_statistic",
    "psi",
    "psi_band",
]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
PSI_EPSILON = 1e-4
_NS_PER_S = 1_000_000_000


# --------------------------------------------------------------------------- helpers


def _float(x: Any) -> float | None:
    """Plain float, or None for None/NaN/±inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    """A category value as a JSON-friendly scalar (str/int/float/bool), else its str()."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _float(value)
    if isinstance(value, np.str_):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _as_series(series: Any):
    import pandas as pd

    if isinstance(series, pd.Series):
        return series
    if isinstance(series, (pd.Index, pd.api.extensions.ExtensionArray)):
        return pd.Series(series)
    if hasattr(series, "__array__") or isinstance(series, (list, tuple)):
        return pd.Series(series)
    return pd.Series(list(series))


def _kind(s) -> str:
    import pandas as pd

    t = pd.api.types
    dtype = s.dtype
    if t.is_bool_dtype(dtype):
        return "boolean"
    if t.is_datetime64_any_dtype(dtype):
        return "datetime"
    if t.is_timedelta64_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if t.is_numeric_dtype(dtype):
        return "numeric"
    if dtype == object:
        inferred = t.infer_dtype(s, skipna=True)
        if inferred == "boolean":
            return "boolean"
    return "categorical"


def _edge_counts(values, edges, clip: bool = True):
    """Counts of ``values`` (float array) on bins ``[e_i, e_{i+1})``, last bin closed.

    With ``clip`` values below/above the edges go to the first/last bin, otherwise they are
    dropped. A single zero-width bin counts the values equal to its edge (all values with clip).
    """
    import numpy as np

    edges = np.asarray(edges, dtype="float64")
    k = len(edges) - 1
    if k < 1:
        return [0] * max(k, 0)
    values = np.asarray(values, dtype="float64")
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = k - 1
    if clip:
        np.clip(idx, 0, k - 1, out=idx)
    else:
        idx = idx[(idx >= 0) & (idx < k) & (values <= edges[-1])]
    return [int(c) for c in np.bincount(idx, minlength=k)[:k]]


def _nunique(values) -> int:
    """Distinct count of a 1-d array (hash-based; faster than np.unique on large arrays)."""
    import pandas as pd

    return len(pd.unique(values)) if len(values) else 0


def _numeric_values(s):
    """(float64 array of non-null values, unit or None) for a numeric/timedelta series."""
    import numpy as np
    import pandas as pd

    valid = s.dropna()
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        ns = valid.to_numpy(dtype="timedelta64[ns]").view("int64")
        return ns.astype("float64") / _NS_PER_S, "seconds"
    return valid.to_numpy(dtype="float64", na_value=np.nan), None


def _datetime_ns(s):
    """(int64 ns-since-epoch array of non-null values, tz or None) for a datetime series."""
    valid = s.dropna()
    tz = getattr(s.dtype, "tz", None)
    if tz is not None:
        valid = valid.dt.tz_convert(None)  # UTC wall time
    return valid.to_numpy(dtype="datetime64[ns]").view("int64"), tz


def _iso(ns: int, tz) -> str:
    import pandas as pd

    ts = pd.Timestamp(int(ns), unit="ns")
    if tz is not None:
        ts = ts.tz_localize("UTC").tz_convert(tz)
    return ts.isoformat()


def _iso_to_ns(value: Any) -> int:
    import pandas as pd

    return int(pd.Timestamp(value).as_unit("ns").value)


# --------------------------------------------------------------------------- describe


def describe(series: Any, *, bins: int = 20, top: int = 10) -> dict:
    """Statistics of one feature column, as a JSON-serialisable dict (see module docstring).

    Keys for every kind: ``kind`` ("numeric" | "categorical" | "boolean" | "datetime"),
    ``rows``, ``count``, ``nulls``, ``null_fraction``, ``distinct``. Numeric adds ``min``,
    ``max``, ``mean``, ``std``, ``quantiles`` ({"0.01": …, …, "0.99": …}), ``histogram``
    ({"edges", "counts"}) and ``infinite``; categorical and boolean add ``top``
    ([[value, count], …], most frequent first) and ``other_count`` (boolean also
    ``true_fraction``); datetime adds ISO ``min``, ``max``, ``quantiles`` and a histogram
    with ISO edges.
    """
    if int(bins) < 1:
        raise ValueError("bins must be >= 1")
    if int(top) < 0:
        raise ValueError("top must be >= 0")
    s = _as_series(series)
    kind = _kind(s)
    rows = len(s)
    nulls = int(s.isna().sum())
    count = rows - nulls
    out: dict[str, Any] = {
        "kind": kind,
        "rows": rows,
        "count": count,
        "nulls": nulls,
        "null_fraction": (nulls / rows) if rows else 0.0,
    }
    if kind == "numeric":
        out.update(_describe_numeric(s, int(bins)))
    elif kind == "datetime":
        out.update(_describe_datetime(s, int(bins)))
    else:
        out.update(_describe_top(s, kind, count, int(top)))
    return out


def _describe_numeric(s, bins: int) -> dict:
    import numpy as np

    values, unit = _numeric_values(s)
    finite_mask = np.isfinite(values)
    infinite = int(values.size - finite_mask.sum())
    if infinite:
        distinct = _nunique(values)
        values = values[finite_mask]
    else:
        distinct = int(s.nunique(dropna=True)) if unit is None else _nunique(values)
    out: dict[str, Any] = {"distinct": distinct, "infinite": infinite}
    if unit:
        out["unit"] = unit
    n = values.size
    if n == 0:
        out.update(
            min=None, max=None, mean=None, std=None,
            quantiles={str(q): None for q in QUANTILES},
            histogram={"edges": [], "counts": []},
        )
        return out
    lo = float(values.min())
    hi = float(values.max())
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else None
    if lo == hi:
        std = 0.0 if n > 1 else None
        mean = lo  # exact, no rounding noise for a constant column
    qs = np.quantile(values, QUANTILES)
    edges = [lo, hi] if lo == hi else [float(e) for e in np.linspace(lo, hi, bins + 1)]
    if lo != hi:
        edges[0], edges[-1] = lo, hi
    out.update(
        min=_float(lo),
        max=_float(hi),
        mean=_float(mean),
        std=_float(std),
        quantiles={str(q): _float(v) for q, v in zip(QUANTILES, qs)},
        histogram={"edges": edges, "counts": _edge_counts(values, edges)},
    )
    return out


def _datetime_edges(lo: int, hi: int, bins: int) -> list[int]:
    """Integer-ns edges over [lo, hi]; interior edges rounded to whole seconds when wide."""
    if lo == hi:
        return [lo, hi]
    span = hi - lo
    edges = [lo]
    for i in range(1, bins):
        e = lo + (span * i) // bins
        if span >= bins * _NS_PER_S:
            e = round(e / _NS_PER_S) * _NS_PER_S
        edges.append(e)
    edges.append(hi)
    return edges


def _describe_datetime(s, bins: int) -> dict:
    import numpy as np

    ns, tz = _datetime_ns(s)
    out: dict[str, Any] = {"distinct": _nunique(ns)}
    if ns.size == 0:
        out.update(
            min=None, max=None,
            quantiles={str(q): None for q in QUANTILES},
            histogram={"edges": [], "counts": []},
        )
        return out
    lo, hi = int(ns.min()), int(ns.max())
    edges = _datetime_edges(lo, hi, bins)
    # quantiles on float ns (~256 ns resolution), clamped into [lo, hi]
    qs = np.clip(np.round(np.quantile(ns.astype("float64"), QUANTILES)), lo, hi)
    out.update(
        min=_iso(lo, tz),
        max=_iso(hi, tz),
        quantiles={str(q): _iso(int(v), tz) for q, v in zip(QUANTILES, qs)},
        histogram={
            "edges": [_iso(e, tz) for e in edges],
            "counts": _edge_counts(ns.astype("float64"), [float(e) for e in edges]),
        },
    )
    return out


def _describe_top(s, kind: str, count: int, top: int) -> dict:
    valid = s.dropna()
    try:
        vc = valid.value_counts(sort=True, dropna=True)
    except TypeError:  # unhashable values (lists, dicts): describe their text
        vc = valid.astype(str).value_counts(sort=True, dropna=True)
    vc = vc[vc > 0]  # unused categories of a Categorical
    head = vc.iloc[:top]
    pairs = [[_jsonable(v), int(c)] for v, c in zip(head.index, head.to_numpy())]
    out: dict[str, Any] = {
        "distinct": len(vc),
        "top": pairs,
        "other_count": int(count - sum(c for _, c in pairs)),
    }
    if kind == "boolean":
        trues = int(sum(int(c) for v, c in zip(vc.index, vc.to_numpy()) if bool(v)))
        out["true_fraction"] = (trues / count) if count else None
    return out


# --------------------------------------------------------------------------- histogram_on


def histogram_on(series: Any, edges: Sequence[Any], *, clip: bool = True) -> list[int]:
    """Counts of the non-null values of ``series`` on the bins given by ``edges``.

    ``edges`` are numbers, or ISO strings/timestamps for a datetime series (as stored by
    :func:`describe`). Bins are ``[e_i, e_{i+1})`` with the last one closed. With ``clip``
    (the default, matching how :func:`compare` extends the end bins) values below the first
    or above the last edge are counted in the first or last bin; otherwise they are dropped.
    Pass the result to ``compare(old, new, new_counts_on_old_edges=...)`` for an exact PSI.
    """
    import numpy as np

    s = _as_series(series)
    edges = list(edges)
    if len(edges) < 2:
        return []
    if _kind(s) == "datetime" or isinstance(edges[0], str) or hasattr(edges[0], "isoformat"):
        values = _datetime_ns(s)[0].astype("float64") if len(s) else np.empty(0)
        num_edges = [float(_iso_to_ns(e)) for e in edges]
    else:
        values = _numeric_values(s)[0]
        values = values[np.isfinite(values)]
        num_edges = [float(e) for e in edges]
    if any(b < a for a, b in itertools.pairwise(num_edges)):
        raise ValueError("histogram edges must be non-decreasing")
    return _edge_counts(values, num_edges, clip=clip)


# --------------------------------------------------------------------------- PSI


def psi(expected: Sequence[float], actual: Sequence[float], *, epsilon: float = PSI_EPSILON) -> float | None:
    """Population stability index between two count (or proportion) vectors on the same bins.

    Proportions are floored at ``epsilon``. ``None`` when either side has no mass.
    """
    import numpy as np

    p = np.asarray(expected, dtype="float64")
    q = np.asarray(actual, dtype="float64")
    if p.shape != q.shape:
        raise ValueError(f"PSI needs counts on the same bins ({p.size} vs {q.size})")
    if p.size == 0 or p.sum() <= 0 or q.sum() <= 0:
        return None
    p = np.maximum(p / p.sum(), epsilon)
    q = np.maximum(q / q.sum(), epsilon)
    value = float(np.sum((q - p) * np.log(q / p)))
    return max(value, 0.0)


def psi_band(value: float | None) -> str | None:
    """"stable" (< 0.1), "moderate shift" (< 0.25) or "major shift"; None for None."""
    if value is None:
        return None
    if value < 0.1:
        return "stable"
    if value < 0.25:
        return "moderate shift"
    return "major shift"


def _redistribute(new_edges, new_counts, old_edges):
    """New histogram counts moved onto the old bins (end bins open), uniform within bins."""
    import numpy as np

    ne = np.asarray(new_edges, dtype="float64")
    nc = np.asarray(new_counts, dtype="float64")
    oe = np.asarray(old_edges, dtype="float64")
    total = float(nc.sum())
    inner = oe[1:-1]
    if ne.size == 2 and ne[0] == ne[1]:  # point mass at ne[0]
        below = np.where(inner > ne[0], total, 0.0)  # mass strictly below each inner edge
    else:
        cum = np.concatenate([[0.0], np.cumsum(nc)])
        below = np.interp(inner, ne, cum)
    cdf = np.concatenate([[0.0], below, [total]])
    return np.diff(cdf)


def _numeric_psi(old_hist, new_hist, new_counts_on_old_edges, to_float):
    """PSI on the old histogram's bins; returns (psi, method)."""
    import numpy as np

    old_edges = [to_float(e) for e in old_hist.get("edges") or []]
    old_counts = list(old_hist.get("counts") or [])
    new_edges = [to_float(e) for e in (new_hist or {}).get("edges") or []]
    new_counts = list((new_hist or {}).get("counts") or [])
    if len(old_edges) < 2 or sum(old_counts) == 0:
        return None, None
    if len(old_edges) == 2 and old_edges[0] == old_edges[1]:
        # constant old feature: below / equal / above that value
        a = old_edges[0]
        if len(new_edges) < 2 or sum(new_counts) == 0:
            return None, None
        total = float(sum(new_counts))
        if len(new_edges) == 2 and new_edges[0] == new_edges[1]:
            v = new_edges[0]
            q = [total if v < a else 0.0, total if v == a else 0.0, total if v > a else 0.0]
        else:
            cum = np.concatenate([[0.0], np.cumsum(np.asarray(new_counts, dtype="float64"))])
            below = float(np.interp(a, new_edges, cum))
            q = [below, 0.0, total - below]
        return psi([0, sum(old_counts), 0], q), "approximate"
    if new_counts_on_old_edges is not None:
        q = [float(c) for c in new_counts_on_old_edges]
        if len(q) != len(old_counts):
            raise ValueError(
                f"new_counts_on_old_edges has {len(q)} bins, the old histogram {len(old_counts)}"
            )
        return psi(old_counts, q), "exact"
    if len(new_edges) < 2 or sum(new_counts) == 0:
        return None, None
    q = _redistribute(new_edges, new_counts, old_edges)
    return psi(old_counts, q), "approximate"


def _categorical_psi(old: dict, new: dict):
    key = lambda v: json.dumps(v, sort_keys=True, default=str)
    old_top = {key(v): (v, int(c)) for v, c in old.get("top") or []}
    new_top = {key(v): (v, int(c)) for v, c in new.get("top") or []}
    keys = list(old_top) + [k for k in new_top if k not in old_top]
    p = [old_top.get(k, (None, 0))[1] for k in keys] + [int(old.get("other_count") or 0)]
    q = [new_top.get(k, (None, 0))[1] for k in keys] + [int(new.get("other_count") or 0)]
    new_values = [new_top[k][0] for k in new_top if k not in old_top]
    missing_values = [old_top[k][0] for k in old_top if k not in new_top]
    return psi(p, q), new_values, missing_values


# --------------------------------------------------------------------------- compare


def _sub(a, b):
    return None if a is None or b is None else float(b) - float(a)


def compare(old: dict, new: dict, *, new_counts_on_old_edges: Sequence[float] | None = None) -> dict:
    """Differences between two :func:`describe` results of the same feature.

    Always: ``kind``, ``count_change``, ``null_fraction_change`` (new − old), ``psi``,
    ``psi_band`` and a one-line ``summary`` (e.g. ``"mean +0.42σ, PSI 0.08 (stable)"``).
    Numeric: ``mean_shift`` (in old standard deviations when the old std > 0, else the raw
    difference; ``mean_shift_unit`` says "std" or "absolute"), ``mean_diff``, ``std_ratio``
    (new / old std; 1.0 when both are 0, None when only the old one is 0 or undefined) and
    ``psi_method`` ("exact" with ``new_counts_on_old_edges``, else "approximate").
    Categorical/boolean: ``new_values`` (in the new top list but not the old) and
    ``missing_values`` (the reverse); boolean also ``true_fraction_change``.
    Datetime: ``psi`` on epoch time as for numeric. Different kinds give ``kind_changed``.
    """
    kind = old.get("kind")
    out: dict[str, Any] = {
        "kind": kind,
        "count_change": int(new.get("count", 0)) - int(old.get("count", 0)),
        "null_fraction_change": _sub(old.get("null_fraction"), new.get("null_fraction")),
    }
    if kind != new.get("kind"):
        out.update(kind_changed=True, new_kind=new.get("kind"), psi=None, psi_band=None)
        out["summary"] = f"kind changed: {kind} → {new.get('kind')}"
        return out
    parts: list[str] = []
    if kind == "numeric":
        o_mean, n_mean, o_std, n_std = old.get("mean"), new.get("mean"), old.get("std"), new.get("std")
        diff = _sub(o_mean, n_mean)
        if diff is None:
            shift, unit = None, None
        elif o_std is not None and o_std > 0:
            shift, unit = diff / o_std, "std"
        else:
            shift, unit = diff, "absolute"
        if o_std is not None and o_std > 0 and n_std is not None:
            ratio = n_std / o_std
        elif o_std == 0 and n_std == 0:
            ratio = 1.0
        else:
            ratio = None
        value, method = _numeric_psi(old.get("histogram") or {}, new.get("histogram"),
                                     new_counts_on_old_edges, float)
        out.update(mean_shift=_float(shift), mean_shift_unit=unit, mean_diff=_float(diff),
                   std_ratio=_float(ratio), psi=value, psi_method=method)
        if shift is not None:
            parts.append(f"mean {shift:+.2f}σ" if unit == "std" else f"mean {shift:+.4g}")
    elif kind == "datetime":
        value, method = _numeric_psi(old.get("histogram") or {}, new.get("histogram"),
                                     new_counts_on_old_edges, lambda e: float(_iso_to_ns(e)))
        out.update(psi=value, psi_method=method)
    else:
        value, new_values, missing_values = _categorical_psi(old, new)
        out.update(psi=value, new_values=new_values, missing_values=missing_values)
        if kind == "boolean":
            out["true_fraction_change"] = _sub(old.get("true_fraction"), new.get("true_fraction"))
            if out["true_fraction_change"] is not None:
                parts.append(f"true {out['true_fraction_change'] * 100:+.1f}pp")
    out["psi_band"] = psi_band(out["psi"])
    parts.append("PSI n/a" if out["psi"] is None else f"PSI {out['psi']:.2f} ({out['psi_band']})")
    if out.get("new_values"):
        n = len(out["new_values"])
        parts.append(f"{n} new value{'s' if n != 1 else ''}")
    ncf = out["null_fraction_change"]
    if ncf is not None and abs(ncf) >= 0.01:
        parts.append(f"nulls {ncf * 100:+.1f}pp")
    out["summary"] = ", ".join(parts)
    return out


# --------------------------------------------------------------------------- KS


class KSResult(NamedTuple):
    """Two-sample Kolmogorov–Smirnov result; unpacks as ``(statistic, pvalue)``."""

    statistic: float
    pvalue: float


def kolmogorov_sf(x: float) -> float:
    """Kolmogorov distribution survival function ``Q(x) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²x²}``.

    For small ``x`` (< 0.3, where the alternating series converges slowly) Q is 1 to within
    1e-12 (evaluated via the dual theta series).
    """
    if x <= 0:
        return 1.0
    if x < 1.0:
        # Jacobi dual form: P(K <= x) = sqrt(2π)/x Σ_{k≥1} exp(−(2k−1)²π²/(8x²))
        c = math.pi ** 2 / (8.0 * x * x)
        total = 0.0
        for k in range(1, 50):
            term = math.exp(-((2 * k - 1) ** 2) * c)
            total += term
            if term < 1e-17:
                break
        return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-17:
            break
    return min(1.0, max(0.0, 2.0 * total))


def _ks_sf_pelz_good(n: int, d: float) -> float:
    """P(D_n > d) for the one-sample two-sided KS statistic, Pelz–Good (1976) expansion.

    P(D_n <= d) ≈ K0(z) + K1(z)/√n + K2(z)/n + K3(z)/n^{3/2}, z = d√n, with (h = k − ½)
      K1 = √(2π)/(6z⁴) Σ_k (π²h² − z²) e^{−π²h²/(2z²)}
      K2 = √(2π)/(72z⁷) Σ_k [6z⁶ + 2z⁴ + π²(2z⁴ − 5z²)h² + π⁴(1 − 2z²)h⁴] e^{−π²h²/(2z²)}
           − √(2π)/(36z³) Σ_k π²k² e^{−π²k²/(2z²)}
      K3 = √(2π)/(6480z¹⁰) Σ_k [π⁶h⁶(5 − 30z²) + π⁴h⁴(212z⁴ − 60z²) + π²h²(135z⁴ − 96z⁶)
           − 30z⁶ − 90z⁸] e^{−π²h²/(2z²)}
           + √(2π)/(216z⁶) Σ_k (3π²k²z² − π⁴k⁴) e^{−π²k²/(2z²)}
    (Simard & L'Ecuyer 2011, §4), and 1 − K0(z) = Q(z) from :func:`kolmogorov_sf`.
    """
    import numpy as np

    if d <= 0:
        return 1.0
    if d >= 1:
        return 0.0
    z = math.sqrt(n) * d
    if z < 0.05:
        return 1.0
    pi2 = math.pi ** 2
    k = np.arange(1, math.ceil(16 * z / math.pi) + 3, dtype="float64")
    h2 = (k - 0.5) ** 2
    k2 = k * k
    w = np.exp(-pi2 * h2 / (2 * z * z))
    u = np.exp(-pi2 * k2 / (2 * z * z))
    z2, z4, z6 = z ** 2, z ** 4, z ** 6
    r = math.sqrt(2 * math.pi)
    k1 = r / (6 * z4) * np.sum((pi2 * h2 - z2) * w)
    k2_ = (r / (72 * z ** 7) * np.sum((6 * z6 + 2 * z4 + pi2 * (2 * z4 - 5 * z2) * h2
                                       + pi2 ** 2 * (1 - 2 * z2) * h2 ** 2) * w)
           - r / (36 * z ** 3) * np.sum(pi2 * k2 * u))
    k3 = (r / (6480 * z ** 10) * np.sum((pi2 ** 3 * h2 ** 3 * (5 - 30 * z2)
                                         + pi2 ** 2 * h2 ** 2 * (212 * z4 - 60 * z2)
                                         + pi2 * h2 * (135 * z4 - 96 * z6)
                                         - 30 * z6 - 90 * z ** 8) * w)
          + r / (216 * z6) * np.sum((3 * pi2 * k2 * z2 - pi2 ** 2 * k2 ** 2) * u))
    sf = kolmogorov_sf(z) - (k1 / math.sqrt(n) + k2_ / n + k3 / n ** 1.5)
    return float(min(1.0, max(0.0, sf)))


def ks_statistic(sample_a: Any, sample_b: Any) -> KSResult:
    """Two-sample KS statistic ``D = sup |F_a − F_b|`` and its asymptotic two-sided p-value.

    NaNs are dropped. D is exact (both empirical CDFs evaluated at every observed value via
    ``searchsorted``, so ties are handled). The p-value is asymptotic (as scipy's
    ``ks_2samp(..., method="asymp")``): the tail of the one-sample KS distribution of size
    ``n_e = round(n_a·n_b / (n_a + n_b))`` at D, by the Pelz–Good expansion
    ``Q(z) − K1(z)/√n_e − K2(z)/n_e − K3(z)/n_e^{3/2}`` with ``z = √n_e · D`` and Q the
    Kolmogorov series (:func:`kolmogorov_sf`); accurate to ~1e-4 for ``n_e`` ≳ 50.
    Datetime samples are compared on epoch nanoseconds.
    """
    import numpy as np

    def prep(x):
        s = _as_series(x)
        if _kind(s) == "datetime":
            return _datetime_ns(s)[0].astype("float64")
        v, _ = _numeric_values(s)
        return v[~np.isnan(v)]

    a = np.sort(prep(sample_a))
    b = np.sort(prep(sample_b))
    na, nb = a.size, b.size
    if na == 0 or nb == 0:
        raise ValueError("ks_statistic needs two non-empty samples")
    allv = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, allv, side="right") / na
    cdf_b = np.searchsorted(b, allv, side="right") / nb
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    en = max(1, round(na * nb / (na + nb)))
    return KSResult(d, _ks_sf_pelz_good(en, d))
