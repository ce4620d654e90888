"""Expectations: tests that keep a feature column within its parameters.

Rules are typed in a magic (``%mlops expect NAME min=0 max=1e6 nulls<=0.01``) or passed to
``mlops.expect(...)``; they are parsed by :func:`parse_rules` into frozen :class:`Rule` objects,
checked against a pandas Series with :func:`check_all`, and the resulting :class:`Report` is
stored as JSON with the feature version.  This module is pure: it never touches the registry,
and pandas is imported only inside the functions that need it.

Built-in rules (canonical spelling first)::

    min=0            every non-null value >= 0 (also ``min>=0``; ISO dates for datetime columns)
    max=1e6          every non-null value <= 1e6 (also ``max<=1e6``)
    nulls<=0.01      at most 1% of rows are null (``nulls<=1%`` works too)
    not_null         no nulls at all (same as ``nulls<=0``)
    unique<=50       at most 50 distinct non-null values
    dtype=float64    exact dtype, or a family: int, float, bool, string, datetime, numeric, category
    in=[a,b,'c d']   every non-null value is one of these; numbers compare numerically
    mean_between=a,b the mean of the non-null values lies in [a, b]

Anything else is a :func:`callable_rule`.  A callable rule is recorded in JSON (name and source)
for display, but it cannot be rebuilt from JSON: :func:`rule_from_dict` refuses it.

Nulls (NaN, None, NaT, pd.NA) are ignored by min/max/in/mean_between and counted by
nulls/not_null.  All checks are vectorised over the column.
"""

import dataclasses
import datetime as _dt
import difflib
import inspect
import math
import numbers
import re
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import GateFailed, InvalidInput

MAX_EXAMPLES = 5

RULE_NAMES = ("min", "max", "nulls", "not_null", "unique", "dtype", "in", "mean_between")
DTYPE_FAMILIES = ("int", "integer", "float", "bool", "boolean", "string", "datetime", "numeric",
                  "category")

__all__ = [
    "DTYPE_FAMILIES",
    "RULE_NAMES",
    "CallableRule",
    "DtypeRule",
    "InRule",
    "MaxRule",
    "MeanBetweenRule",
    "MinRule",
    "NullsRule",
    "Report",
    "Rule",
    "RuleResult",
    "UniqueRule",
    "callable_rule",
    "check_all",
    "parse_rule",
    "parse_rules",
    "rule_from_dict",
]


# --------------------------------------------------------------------------- formatting helpers

def _json_safe(value):
    """Return ``value`` as something ``json.dumps`` accepts strictly (no NaN, no numpy types)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas
        np = None
    if np is not None and isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, (tuple, list)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timedelta):
            return str(value)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if np is not None and isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    return str(value)


def _fmt_number(value):
    """Canonical text for a rule parameter: ``1000000`` for ``1e6``, ``0.01`` for ``0.01``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _show(value, limit=40):
    """One-line display of a JSON-safe value in a message."""
    if isinstance(value, (str, float)):
        text = repr(value)
    elif isinstance(value, list):
        text = "(" + ", ".join(_show(item, limit) for item in value) + ")"
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _examples(series, mask):
    """Up to ``MAX_EXAMPLES`` failing values with their index labels, JSON-safe."""
    picked = series[mask].head(MAX_EXAMPLES)
    return tuple({"index": _json_safe(label), "value": _json_safe(value)}
                 for label, value in zip(picked.index.tolist(), picked.tolist()))


def _show_examples(examples, with_values=True):
    if not examples:
        return ""
    if with_values:
        parts = [f"{_show(e['value'])} at index {_show(e['index'])}" for e in examples]
    else:
        parts = ["index " + ", ".join(_show(e["index"]) for e in examples)]
    return " (e.g. " + ", ".join(parts) + ")"


def _is_series(obj):
    import pandas as pd

    return isinstance(obj, pd.Series)


def _as_series(series):
    import pandas as pd

    if isinstance(series, pd.Series):
        return series
    if isinstance(series, pd.DataFrame):
        if series.shape[1] != 1:
            raise InvalidInput(f"expectations check one column; got a DataFrame with {series.shape[1]} columns")
        return series.iloc[:, 0]
    try:
        return pd.Series(series)
    except Exception as exc:  # noqa: BLE001 - anything pandas refuses is bad input
        raise InvalidInput(f"expectations need a pandas Series, not {type(series).__name__}: {exc}") from None


# --------------------------------------------------------------------------- results

@dataclasses.dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one column.

    ``failing_rows`` counts failing rows for row-wise rules (min, max, in, nulls, row-wise
    callables) and is ``None`` for aggregate rules (unique, mean_between, dtype, aggregate
    callables), whose ``observed`` value tells the story instead.
    """

    rule: str
    passed: bool
    failing_rows: int | None = None
    observed: Any = None
    examples: tuple = ()
    total_rows: int = 0
    detail: str = ""

    def as_dict(self):
        return {
            "rule": self.rule,
            "passed": bool(self.passed),
            "failing_rows": self.failing_rows,
            "observed": _json_safe(self.observed),
            "examples": [dict(example) for example in self.examples],
            "total_rows": self.total_rows,
            "detail": self.detail,
        }

    def message(self):
        """One line: ``max=100 failed: 3 of 1,000 rows above 100 (e.g. 250.0 at index 17)``."""
        if self.passed:
            return f"{self.rule} passed"
        return f"{self.rule} failed: {self.detail}".replace("\n", " ")


@dataclasses.dataclass(frozen=True)
class Report:
    """Every rule's result on one column."""

    results: tuple = ()

    @property
    def passed(self):
        return all(result.passed for result in self.results)

    @property
    def failures(self):
        return [result for result in self.results if not result.passed]

    def as_dict(self):
        return {"passed": self.passed, "results": [result.as_dict() for result in self.results]}

    def message(self):
        """One line per failure, joined with newlines; a single line when everything passed."""
        failures = self.failures
        if not failures:
            count = len(self.results)
            return f"all {count} expectation{'s' if count != 1 else ''} passed"
        return "\n".join(result.message() for result in failures)

    def raise_if_failed(self, what="feature"):
        """Raise :class:`GateFailed` (one-line message, results as verdicts) if any rule failed."""
        failures = self.failures
        if failures:
            count = len(failures)
            raise GateFailed(
                f"{what} refused: {count} expectation{'s' if count != 1 else ''} failed: "
                + "; ".join(result.message() for result in failures),
                verdicts=[result.as_dict() for result in failures],
            )
        return self


# --------------------------------------------------------------------------- rules

class Rule:
    """Base of every expectation rule: ``name``, ``as_dict()``, ``text()``, ``check(series)``."""

    name: ClassVar[str] = "rule"

    def text(self):  # pragma: no cover - every rule overrides
        raise NotImplementedError

    def as_dict(self):  # pragma: no cover - every rule overrides
        raise NotImplementedError

    def check(self, series):  # pragma: no cover - every rule overrides
        raise NotImplementedError

    def __str__(self):
        return self.text()


def _mismatch(rule, series, why):
    return RuleResult(rule.text(), False, None, str(series.dtype), (), len(series), why)


def _comparable(series, threshold):
    """Return ``(values, threshold, not_comparable_mask)`` or a string saying why not comparable."""
    import pandas as pd
    from pandas.api import types

    notnull = series.notna()
    if isinstance(threshold, str):  # an ISO date or datetime
        bound = pd.Timestamp(threshold)
        if types.is_datetime64_any_dtype(series.dtype):
            values = series
        elif types.is_numeric_dtype(series.dtype) or types.is_bool_dtype(series.dtype):
            return f"column dtype {series.dtype} cannot be compared with the date {threshold}"
        else:
            try:
                values = pd.to_datetime(series, errors="coerce", format="ISO8601")
            except (TypeError, ValueError) as exc:
                return f"column dtype {series.dtype} cannot be read as dates ({exc})"
        tz = getattr(values.dtype, "tz", None)
        if tz is not None and bound.tzinfo is None:
            bound = bound.tz_localize(tz)
        elif tz is None and bound.tzinfo is not None:
            bound = bound.tz_convert("UTC").tz_localize(None)
        return values, bound, notnull & values.isna()
    if types.is_datetime64_any_dtype(series.dtype) or types.is_timedelta64_dtype(series.dtype):
        return f"column dtype {series.dtype} cannot be compared with the number {_fmt_number(threshold)}"
    if types.is_bool_dtype(series.dtype):
        values = series.astype("float64")
    elif types.is_numeric_dtype(series.dtype):
        values = series
    else:
        values = pd.to_numeric(series, errors="coerce")
    return values, threshold, notnull & values.isna()


class _BoundRule(Rule):
    def _observed(self, values):  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self, series):
        series = _as_series(series)
        total = len(series)
        got = _comparable(series, self.value)
        if isinstance(got, str):
            return _mismatch(self, series, got)
        values, bound, not_comparable = got
        outside = self._outside(values, bound)
        failing = not_comparable | outside
        count = int(failing.sum())
        observed = self._observed(values) if values.notna().any() else None
        if count == 0:
            return RuleResult(self.text(), True, 0, observed, (), total, "")
        examples = _examples(series, failing)
        what = f"{self.word} {_fmt_number(self.value)}"
        if int(not_comparable.sum()):
            what += " or not comparable"
        detail = f"{count:,} of {total:,} rows {what}{_show_examples(examples)}"
        return RuleResult(self.text(), False, count, observed, examples, total, detail)


@dataclasses.dataclass(frozen=True)
class MinRule(_BoundRule):
    """Every non-null value is at least ``value`` (a number, or an ISO date string)."""

    value: Any
    name: ClassVar[str] = "min"
    word: ClassVar[str] = "below"

    def text(self):
        return f"min={_fmt_number(self.value)}"

    def as_dict(self):
        return {"rule": "min", "value": self.value}

    def _outside(self, values, bound):
        return values < bound

    def _observed(self, values):
        return _json_safe(values.min())


@dataclasses.dataclass(frozen=True)
class MaxRule(_BoundRule):
    """Every non-null value is at most ``value`` (a number, or an ISO date string)."""

    value: Any
    name: ClassVar[str] = "max"
    word: ClassVar[str] = "above"

    def text(self):
        return f"max={_fmt_number(self.value)}"

    def as_dict(self):
        return {"rule": "max", "value": self.value}

    def _outside(self, values, bound):
        return values > bound

    def _observed(self, values):
        return _json_safe(values.max())


@dataclasses.dataclass(frozen=True)
class NullsRule(Rule):
    """At most ``max_fraction`` of the rows are null; ``not_null`` is ``max_fraction=0``.

    ``observed`` is the null fraction; ``failing_rows`` is the number of null rows.
    """

    max_fraction: float
    name: ClassVar[str] = "nulls"

    def text(self):
        if self.max_fraction == 0:
            return "not_null"
        return f"nulls<={_fmt_number(self.max_fraction)}"

    def as_dict(self):
        return {"rule": "nulls", "max_fraction": self.max_fraction}

    def check(self, series):
        series = _as_series(series)
        total = len(series)
        if total == 0:
            return RuleResult(self.text(), True, 0, None, (), 0, "")
        nulls = series.isna()
        count = int(nulls.sum())
        fraction = count / total
        if fraction <= self.max_fraction:
            return RuleResult(self.text(), True, count, fraction, (), total, "")
        examples = _examples(series, nulls)
        limit = "none allowed" if self.max_fraction == 0 else f"at most {self.max_fraction:.2%} allowed"
        detail = (f"{count:,} of {total:,} rows null ({fraction:.2%}; {limit})"
                  f"{_show_examples(examples, with_values=False)}")
        return RuleResult(self.text(), False, count, fraction, examples, total, detail)


@dataclasses.dataclass(frozen=True)
class UniqueRule(Rule):
    """At most ``max_count`` distinct non-null values; ``observed`` is the distinct count."""

    max_count: int
    name: ClassVar[str] = "unique"

    def text(self):
        return f"unique<={self.max_count}"

    def as_dict(self):
        return {"rule": "unique", "max_count": self.max_count}

    def check(self, series):
        series = _as_series(series)
        total = len(series)
        try:
            distinct = int(series.nunique(dropna=True))
        except TypeError:  # unhashable values, e.g. lists
            distinct = int(series.dropna().astype(str).nunique())
        if distinct <= self.max_count:
            return RuleResult(self.text(), True, None, distinct, (), total, "")
        sample = series.dropna().drop_duplicates().head(MAX_EXAMPLES)
        examples = tuple({"index": _json_safe(label), "value": _json_safe(value)}
                         for label, value in zip(sample.index.tolist(), sample.tolist()))
        shown = ", ".join(_show(e["value"]) for e in examples)
        detail = (f"{distinct:,} distinct values, at most {self.max_count:,} allowed"
                  f" (e.g. {shown})")
        return RuleResult(self.text(), False, None, distinct, examples, total, detail)


def _dtype_matches(dtype_name, dtype):
    from pandas.api import types

    family = dtype_name.lower()
    if family in ("int", "integer"):
        return types.is_integer_dtype(dtype) and not types.is_bool_dtype(dtype)
    if family == "float":
        return types.is_float_dtype(dtype)
    if family in ("bool", "boolean"):
        return types.is_bool_dtype(dtype)
    if family == "string":
        return types.is_string_dtype(dtype)
    if family == "datetime":
        return types.is_datetime64_any_dtype(dtype)
    if family == "numeric":
        return types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
    if family == "category":
        return isinstance(dtype, types.CategoricalDtype)
    if str(dtype) == dtype_name:
        return True
    return dtype == types.pandas_dtype(dtype_name)


@dataclasses.dataclass(frozen=True)
class DtypeRule(Rule):
    """The column has this dtype: an exact pandas dtype name or a family (int, float, ...)."""

    dtype: str
    name: ClassVar[str] = "dtype"

    def text(self):
        return f"dtype={self.dtype}"

    def as_dict(self):
        return {"rule": "dtype", "dtype": self.dtype}

    def check(self, series):
        from pandas.api import types

        series = _as_series(series)
        dtype = series.dtype
        if self.dtype.lower() == "string" and dtype == object:
            # an object column counts as strings only if every non-null value is a str
            ok = types.infer_dtype(series, skipna=True) in ("string", "empty")
        else:
            ok = _dtype_matches(self.dtype, dtype)
        detail = "" if ok else f"column dtype is {dtype}, expected {self.dtype}"
        return RuleResult(self.text(), bool(ok), None, str(dtype), (), len(series), detail)


@dataclasses.dataclass(frozen=True)
class InRule(Rule):
    """Every non-null value is one of ``values``; numbers compare numerically, strings exactly."""

    values: tuple
    name: ClassVar[str] = "in"

    def text(self):
        def one(value):
            if isinstance(value, str):
                if _looks_like_number(value) or re.search(r"[,\[\]'\"\s]", value) or value == "":
                    return repr(value)
                return value
            return _fmt_number(value)

        return "in=[" + ",".join(one(value) for value in self.values) + "]"

    def as_dict(self):
        return {"rule": "in", "values": list(self.values)}

    def check(self, series):
        import pandas as pd
        from pandas.api import types

        series = _as_series(series)
        total = len(series)
        numbers_ = [v for v in self.values if not isinstance(v, str)]
        strings = [v for v in self.values if isinstance(v, str)]
        dtype = series.dtype
        if types.is_datetime64_any_dtype(dtype):
            allowed = pd.to_datetime(pd.Series(strings, dtype=object), errors="coerce", format="ISO8601")
            tz = getattr(dtype, "tz", None)
            if tz is not None:
                allowed = allowed.dt.tz_localize(tz) if allowed.dt.tz is None else allowed
            ok = series.isin(allowed.dropna())
        elif types.is_bool_dtype(dtype) or types.is_numeric_dtype(dtype):
            ok = series.isin(numbers_) if numbers_ else pd.Series(False, index=series.index)
        else:
            ok = series.isin(strings + numbers_)
        failing = series.notna() & ~ok
        count = int(failing.sum())
        if count == 0:
            return RuleResult(self.text(), True, 0, None, (), total, "")
        examples = _examples(series, failing)
        allowed_text = self.text()[len("in="):]
        detail = f"{count:,} of {total:,} rows not in {allowed_text}{_show_examples(examples)}"
        return RuleResult(self.text(), False, count, None, examples, total, detail)


@dataclasses.dataclass(frozen=True)
class MeanBetweenRule(Rule):
    """The mean of the non-null values lies in ``[low, high]``; ``observed`` is the mean."""

    low: float
    high: float
    name: ClassVar[str] = "mean_between"

    def text(self):
        return f"mean_between={_fmt_number(self.low)},{_fmt_number(self.high)}"

    def as_dict(self):
        return {"rule": "mean_between", "low": self.low, "high": self.high}

    def check(self, series):
        import pandas as pd
        from pandas.api import types

        series = _as_series(series)
        total = len(series)
        dtype = series.dtype
        if types.is_bool_dtype(dtype):
            values = series.astype("float64")
        elif types.is_numeric_dtype(dtype):
            values = series
        else:
            return _mismatch(self, series, f"column dtype {dtype} has no numeric mean")
        mean = values.mean(skipna=True) if total else None
        if mean is None or pd.isna(mean):
            return RuleResult(self.text(), True, None, None, (), total, "")
        mean = float(mean)
        if self.low <= mean <= self.high:
            return RuleResult(self.text(), True, None, mean, (), total, "")
        side = "below" if mean < self.low else "above"
        detail = (f"mean {mean:.6g} is {side} the range [{_fmt_number(self.low)}, "
                  f"{_fmt_number(self.high)}] over {int(values.notna().sum()):,} non-null rows")
        return RuleResult(self.text(), False, None, mean, (), total, detail)


@dataclasses.dataclass(frozen=True)
class CallableRule(Rule):
    """A rule from a Python callable taking the Series.

    The callable returns a boolean Series (row-wise: ``False`` rows fail) or a bool (the whole
    column passes or fails).  ``as_dict()`` records the name and source for display only;
    :func:`rule_from_dict` cannot rebuild it from JSON.
    """

    function: Callable
    name: str = "callable"

    def text(self):
        return self.name

    def as_dict(self):
        try:
            source = inspect.getsource(self.function).strip()
        except (OSError, TypeError):
            source = None
        return {"rule": "callable", "name": self.name, "source": source}

    def check(self, series):
        import numpy as np
        import pandas as pd

        series = _as_series(series)
        total = len(series)
        try:
            outcome = self.function(series)
        except Exception as exc:  # noqa: BLE001 - the user's function failing is a failed rule
            detail = f"the function raised {type(exc).__name__}: {exc}".replace("\n", " ")
            return RuleResult(self.text(), False, None, None, (), total, detail)
        if isinstance(outcome, (bool, np.bool_)):
            passed = bool(outcome)
            detail = "" if passed else "the function returned False for the column"
            return RuleResult(self.text(), passed, None, passed, (), total, detail)
        if isinstance(outcome, np.ndarray) and outcome.dtype == bool and outcome.shape == (total,):
            outcome = pd.Series(outcome, index=series.index)
        if isinstance(outcome, pd.Series) and (
                pd.api.types.is_bool_dtype(outcome.dtype) or outcome.dtype == object):
            if len(outcome) != total:
                raise InvalidInput(
                    f"expectation {self.name} returned {len(outcome)} rows for a column of {total}")
            if outcome.dtype == object:
                outcome = outcome.astype("boolean")
            ok = outcome.fillna(False).astype(bool).to_numpy()
            failing = pd.Series(~ok, index=series.index)
            count = int(failing.sum())
            if count == 0:
                return RuleResult(self.text(), True, 0, None, (), total, "")
            examples = _examples(series, failing)
            detail = f"{count:,} of {total:,} rows failed{_show_examples(examples)}"
            return RuleResult(self.text(), False, count, None, examples, total, detail)
        raise InvalidInput(
            f"expectation {self.name} must return a bool or a boolean Series, "
            f"not {type(outcome).__name__}")


def callable_rule(function, name=None):
    """Make a :class:`CallableRule`; ``name`` defaults to the function's name."""
    if not callable(function):
        raise InvalidInput(f"callable_rule needs a function, not {type(function).__name__}")
    if name is None:
        name = getattr(function, "__name__", None) or type(function).__name__
        if name == "<lambda>":
            name = "lambda"
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a callable expectation needs a non-empty name")
    return CallableRule(function, name.strip())


# --------------------------------------------------------------------------- parsing

_RULE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|=|<|>)?\s*(.*?)\s*$", re.DOTALL)
_NUMBER_RE = re.compile(r"^[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_OPERATORS = {
    "min": ("=", ">="),
    "max": ("=", "<="),
    "nulls": ("<=",),
    "unique": ("<=",),
    "dtype": ("=", "=="),
    "in": ("=",),
    "mean_between": ("=",),
}
_EXAMPLES = {
    "min": "min=0", "max": "max=1e6", "nulls": "nulls<=0.01", "unique": "unique<=50",
    "dtype": "dtype=float64", "in": "in=[a,b,c]", "mean_between": "mean_between=0,1",
    "not_null": "not_null",
}


def _looks_like_number(text):
    return bool(_NUMBER_RE.match(text.strip()))


def _number(text, rule_text, what="a number"):
    text = text.strip()
    if not _looks_like_number(text):
        raise InvalidInput(f"expectation {rule_text!r}: {text!r} is not {what}")
    value = float(text.replace("_", ""))
    if not math.isfinite(value):
        raise InvalidInput(f"expectation {rule_text!r}: {text!r} is not a finite number")
    return int(value) if value.is_integer() and abs(value) < 1e16 and "." not in text \
        and "e" not in text.lower() else value


def _date(text, rule_text):
    try:
        _dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"expectation {rule_text!r}: {text!r} is neither a number nor an ISO date") from None
    return text


def _split_list(body, rule_text):
    """Split ``a, 'b c', 3`` into values: quoted items are strings, bare numbers are numbers."""
    item = re.compile(r"\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|([^,'\"]*))\s*(,|$)")
    items, position, body = [], 0, body.strip()
    while body and position <= len(body):
        match = item.match(body, position)
        if not match:
            raise InvalidInput(f"expectation {rule_text!r}: cannot read the list [{body}]")
        single, double, bare, separator = match.groups()
        if single is not None or double is not None:
            items.append(re.sub(r"\\(.)", r"\1", single if single is not None else double))
        else:
            bare = bare.strip()
            if not bare:
                raise InvalidInput(f"expectation {rule_text!r}: empty item in the list")
            items.append(_number(bare, rule_text) if _looks_like_number(bare) else bare)
        if not separator:
            break
        position = match.end()
        if position == len(body):
            raise InvalidInput(f"expectation {rule_text!r}: empty item in the list")
    return items


def _unknown(name, rule_text):
    close = difflib.get_close_matches(name.lower(), RULE_NAMES, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise InvalidInput(
        f"unknown expectation {rule_text!r}{hint} (rules: {', '.join(RULE_NAMES)}, or a Python callable)")


def parse_rule(text):
    """Parse one rule string (``min=0``, ``nulls<=0.01``, ``in=[a,b]`` ...) into a :class:`Rule`."""
    if not isinstance(text, str):
        raise InvalidInput(f"an expectation must be a string or a function, not {type(text).__name__}")
    rule_text = text.strip()
    match = _RULE_RE.match(rule_text)
    if not rule_text or not match:
        raise InvalidInput(f"cannot read expectation {rule_text!r}; write e.g. min=0 or nulls<=0.01")
    name, operator, value = match.groups()
    name = name.lower()
    if name == "not_null":
        if operator or value:
            raise InvalidInput(f"expectation {rule_text!r}: not_null takes no value")
        return NullsRule(0.0)
    if name not in _OPERATORS:
        _unknown(name, rule_text)
    if operator not in _OPERATORS[name]:
        raise InvalidInput(f"expectation {rule_text!r}: write it as {_EXAMPLES[name]}")
    if not value:
        raise InvalidInput(f"expectation {rule_text!r} has no value; write it as {_EXAMPLES[name]}")
    if name in ("min", "max"):
        parsed = _number(value, rule_text) if _looks_like_number(value) else _date(value, rule_text)
        return MinRule(parsed) if name == "min" else MaxRule(parsed)
    if name == "nulls":
        percent = value.endswith("%")
        fraction = _number(value[:-1] if percent else value, rule_text, "a fraction")
        fraction = float(fraction) / (100 if percent else 1)
        if not 0 <= fraction <= 1:
            raise InvalidInput(f"expectation {rule_text!r}: the null fraction must be between 0 and 1")
        return NullsRule(fraction)
    if name == "unique":
        count = _number(value, rule_text, "a whole number")
        if isinstance(count, float) and not count.is_integer() or count < 0:
            raise InvalidInput(f"expectation {rule_text!r}: the distinct count must be a whole number >= 0")
        return UniqueRule(int(count))
    if name == "dtype":
        return DtypeRule(_check_dtype(value, rule_text))
    if name == "in":
        body = value
        if body.startswith("["):
            if not body.endswith("]"):
                raise InvalidInput(f"expectation {rule_text!r}: the list has no closing ]")
            body = body[1:-1]
        items = _split_list(body, rule_text)
        if not items:
            raise InvalidInput(f"expectation {rule_text!r}: the list of allowed values is empty")
        return InRule(tuple(items))
    # mean_between
    body = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    parts = body.split(",")
    if len(parts) != 2:
        raise InvalidInput(f"expectation {rule_text!r}: write it as mean_between=LOW,HIGH")
    low, high = (float(_number(part, rule_text)) for part in parts)
    if low > high:
        raise InvalidInput(f"expectation {rule_text!r}: the range is inverted ({_fmt_number(low)} > {_fmt_number(high)})")
    return MeanBetweenRule(low, high)


def _check_dtype(value, rule_text):
    if value.lower() in DTYPE_FAMILIES:
        return value.lower()
    from pandas.api import types

    try:
        types.pandas_dtype(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"expectation {rule_text!r}: {value!r} is not a dtype "
            f"(use a pandas dtype or one of {', '.join(DTYPE_FAMILIES)})") from None
    return value


def _split_line(line):
    """Split a magic line into rule strings on whitespace outside brackets and quotes."""
    parts, current, depth, quote = [], [], 0, None
    for char in line:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "[":
            depth += 1
            current.append(char)
        elif char == "]":
            depth -= 1
            current.append(char)
        elif char.isspace() and depth <= 0:
            if current:
                parts.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current))
    return parts


def parse_rules(texts):
    """Parse rules as typed in a magic into a list of :class:`Rule`.

    ``texts`` is a string (split on whitespace outside brackets and quotes), or an iterable of
    rule strings, :class:`Rule` objects and callables (which become :func:`callable_rule`).
    """
    if isinstance(texts, str):
        texts = _split_line(texts)
    elif isinstance(texts, Rule) or callable(texts):
        texts = [texts]
    try:
        items = list(texts)
    except TypeError:
        raise InvalidInput(f"expectations must be strings or functions, not {type(texts).__name__}") from None
    rules = []
    for item in items:
        if isinstance(item, Rule):
            rules.append(item)
        elif isinstance(item, str):
            rules.append(parse_rule(item))
        elif callable(item):
            rules.append(callable_rule(item))
        else:
            raise InvalidInput(f"an expectation must be a string or a function, not {type(item).__name__}")
    return rules


def rule_from_dict(data):
    """Rebuild a built-in rule from its ``as_dict()``; callable rules cannot be rebuilt."""
    if not isinstance(data, dict) or "rule" not in data:
        raise InvalidInput("a stored expectation must be a dict with a 'rule' key")
    kind = data["rule"]
    try:
        if kind == "min":
            return MinRule(data["value"])
        if kind == "max":
            return MaxRule(data["value"])
        if kind == "nulls":
            return NullsRule(float(data["max_fraction"]))
        if kind == "unique":
            return UniqueRule(int(data["max_count"]))
        if kind == "dtype":
            return DtypeRule(str(data["dtype"]))
        if kind == "in":
            return InRule(tuple(data["values"]))
        if kind == "mean_between":
            return MeanBetweenRule(float(data["low"]), float(data["high"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"stored expectation {kind!r} is malformed: {exc}") from None
    if kind == "callable":
        raise InvalidInput(
            f"expectation {data.get('name', 'callable')!r} is a Python callable and cannot be "
            "rebuilt from JSON; attach the function again")
    _unknown(str(kind), str(kind))


def check_all(series, rules):
    """Check every rule against ``series`` and return a :class:`Report`."""
    series = _as_series(series)
    return Report(tuple(rule.check(series) for rule in parse_rules(rules)))
