"""Point-in-time-correct ("as-of") joins of feature values onto label rows.

``point_in_time_join(labels, features, entity=..., timestamp=..., max_age=None)`` returns
``labels`` (same rows, same order, same index, duplicates kept) with one new column per
feature: the value of that feature's latest row for the same entity whose timestamp is at or
before the label row's timestamp (an exact-time tie counts as available), else null. With
``max_age``, a value older than that (``label time - feature time > max_age``) is null too.

Rows with no earlier value, a null entity or a null timestamp are kept, with nulls: nothing is
dropped. Several feature rows at the same (entity, timestamp): the last one in that feature
frame's row order wins. Feature rows with a null entity or timestamp are ignored.

How: the label entities are factorized once and every feature's entities mapped to the same
integer codes; times are taken as int64 in a common unit. Each row then gets one int64 key,
``entity code * span + (time - origin) // step`` (``step``: the coarsest of 1 s / 1 ms / 1 us
dividing every time exactly), which orders rows by (entity, time). The label keys are sorted
once; each feature's keys are sorted stably (a radix sort on the entity code when the frame is
already in time order) and ``numpy.searchsorted`` finds, for every label row, the *position* of
its feature row; the values are then taken by position, whatever their dtype. When that key
would overflow int64 (nanosecond times over years with many entities), ``pandas.merge_asof``
on the bare integer arrays (labels sorted once by time, entity code as ``by``) does the search.
Features that share the same (entity, timestamp) rows (several columns of one source) share
one search.
"""

_UNITS = ("s", "ms", "us", "ns")


def point_in_time_join(labels, features, *, entity, timestamp, max_age=None):
    """Join each feature's latest value at or before each label row's time, per entity.

    ``labels``: a DataFrame with the ``entity`` and ``timestamp`` columns and anything else.
    ``features``: ``{feature_name: DataFrame}`` whose frames have ``entity``, ``timestamp`` and
    a ``feature_name`` column, or a list of frames with exactly one column besides those two
    (its name is the feature's). ``max_age``: a ``pandas.Timedelta`` or a string like ``"7D"``.
    Returns a new DataFrame; the inputs are not modified.
    """
    import numpy as np
    import pandas as pd
    from pandas.api.extensions import take

    from mlops_jupyter.errors import InvalidInput

    if not isinstance(labels, pd.DataFrame):
        raise InvalidInput(f"labels must be a pandas DataFrame, not {type(labels).__name__}")
    _require_columns(labels, "labels", entity, timestamp)
    frames = _feature_frames(features, entity, timestamp)
    for name, _ in frames:
        if name in labels.columns:
            raise InvalidInput(
                f"feature {name!r} collides with a labels column of the same name; rename one of them"
            )

    # Time: one common unit; time zones must agree (all naive, or all the same zone).
    label_time = labels[timestamp]
    _require_datetime(label_time, "labels", timestamp)
    label_tz = _tz_of(label_time)
    for name, frame in frames:
        where = f"feature {name!r}"
        _require_datetime(frame[timestamp], where, timestamp)
        tz = _tz_of(frame[timestamp])
        if (tz is None) != (label_tz is None):
            aware, naive = (where, "labels") if tz is not None else ("labels", where)
            raise InvalidInput(
                f"{aware} has time-zone-aware timestamps but {naive} has naive ones; "
                f"convert both to the same time zone (e.g. .dt.tz_localize('UTC')) first"
            )
        if tz is not None and str(tz) != str(label_tz):
            raise InvalidInput(
                f"labels timestamps are in {label_tz} but {where}'s are in {tz}; "
                f"convert both to the same time zone (e.g. .dt.tz_convert('UTC')) first"
            )
    times = [label_time] + [frame[timestamp] for _, frame in frames]
    unit = max((_unit_of(t) for t in times), key=_UNITS.index)

    tolerance = None
    if max_age is not None:
        try:
            age = pd.Timedelta(max_age)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"max_age must be a pandas.Timedelta or a string like '7D', not {max_age!r}"
            ) from None
        if age is pd.NaT or age < pd.Timedelta(0):
            raise InvalidInput(f"max_age must be a non-negative time span, not {max_age!r}")
        tolerance = int(age // pd.Timedelta(1, unit=unit))

    # Entities: integer codes shared by labels and every feature.
    label_kind = _entity_kind(labels[entity])
    for name, frame in frames:
        kind = _entity_kind(frame[entity])
        if label_kind and kind and kind != label_kind:
            raise InvalidInput(
                f"entity column {entity!r} holds {label_kind} values in labels but {kind} "
                f"values in feature {name!r}; convert one so they compare (e.g. .astype(str))"
            )
    label_codes, uniques = pd.factorize(labels[entity], use_na_sentinel=True)
    unique_index = pd.Index(uniques)

    label_t = _as_int(label_time, unit)
    keyed = []  # (name, frame, feature times, feature codes)
    for name, frame in frames:
        feature_t = _as_int(frame[timestamp], unit)
        feature_codes = unique_index.get_indexer(frame[entity]).astype(np.int64, copy=False)
        keyed.append((name, frame, feature_t, feature_codes))
    combined = _combined_key_plan(label_t, [k[2] for k in keyed], len(uniques))
    if combined is not None:
        search = _SortedKeySearch(label_t, label_codes, combined, tolerance)
    else:
        search = _MergeAsofSearch(label_t, label_codes, tolerance)

    out = labels.copy(deep=False)
    done = []  # (feature times, feature codes, positions) searched so far, to share
    for name, frame, feature_t, feature_codes in keyed:
        positions = None
        for seen_t, seen_codes, seen_positions in done:
            if np.array_equal(seen_t, feature_t) and np.array_equal(seen_codes, feature_codes):
                positions = seen_positions
                break
        if positions is None:
            positions = search(feature_t, feature_codes)
            done.append((feature_t, feature_codes, positions))
        column = frame[name]
        values = column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array
        out[name] = take(values, positions, allow_fill=True)
    return out


_NAT = -(2**63)


def _combined_key_plan(label_t, feature_ts, n_codes):
    """``(origin, step, span)`` if ``code * span + (t - origin) // step`` fits in int64, else None.

    ``step`` is the coarsest of 1 s, 1 ms, 1 us (in the data's unit) that divides every time
    exactly (data at second resolution stored in nanoseconds, say), so the key stays exact.
    """
    valid = []
    for t in (label_t, *feature_ts):
        if len(t) and t.min() == _NAT:
            t = t[t != _NAT]
        if len(t):
            valid.append(t)
    if not valid:
        return None
    origin = min(int(t.min()) for t in valid)
    top = max(int(t.max()) for t in valid)
    step = 1
    if (n_codes + 1) * (top - origin + 1) >= 2**62:
        for candidate in (10**9, 10**6, 10**3):
            if all(not (t % candidate).any() for t in valid):
                step = candidate
                break
    span = (top - origin) // step + 1
    if (n_codes + 1) * span >= 2**62:
        return None
    return origin, step, span


class _SortedKeySearch:
    """Search on one int64 key per row, ``entity code * span + time offset``: labels sorted once,
    each feature sorted (stable: ties keep the frame's order) and ``searchsorted`` into."""

    def __init__(self, label_t, label_codes, plan, tolerance):
        import numpy as np

        self.origin, self.step, self.span = plan
        self.n = len(label_t)
        usable = (label_t != _NAT) & (label_codes >= 0)
        if usable.all():
            rows, t, codes = None, label_t, label_codes
        else:
            rows = np.flatnonzero(usable)
            t, codes = label_t[rows], label_codes[rows]
        offsets = t - self.origin
        if self.step != 1:
            offsets //= self.step
        keys = codes.astype(np.int64) * self.span
        keys += offsets
        order = np.argsort(keys)
        self.rows = order if rows is None else rows[order]
        self.keys = keys[order]
        offsets = self.keys % self.span
        # A match must be in the same entity (key gap <= the time offset) and not too old.
        self.max_gap = offsets if tolerance is None else np.minimum(offsets, tolerance // self.step)

    def __call__(self, feature_t, feature_codes):
        import numpy as np

        usable = (feature_codes >= 0) & (feature_t != _NAT)
        if usable.all():
            rows, t, codes = None, feature_t, feature_codes
        else:
            rows = np.flatnonzero(usable)
            t, codes = feature_t[rows], feature_codes[rows]
        if len(t) == 0:
            return np.full(self.n, -1, dtype=np.int64)
        offsets = t - self.origin
        if self.step != 1:
            offsets //= self.step
        keys = codes * self.span
        keys += offsets
        if len(t) > 1 and (t[1:] >= t[:-1]).all():
            # Already in time order: a stable sort by entity code alone orders the keys
            # (a radix sort when the codes fit in 16 bits).
            small = codes.astype(np.uint16) if codes.max() < 2**16 else codes
            order = np.argsort(small, kind="stable")
        else:
            order = np.argsort(keys, kind="stable")  # stable: ties keep the frame's order
        keys = keys[order]
        rows = order if rows is None else rows[order]
        found = np.searchsorted(keys, self.keys, side="right")
        found -= 1
        missing = found < 0
        found[missing] = 0
        ok = self.keys - keys[found] <= self.max_gap
        ok &= ~missing
        matched = rows[found]
        matched[~ok] = -1
        positions = np.full(self.n, -1, dtype=np.int64)
        positions[self.rows] = matched
        return positions


class _MergeAsofSearch:
    """Fallback when the combined key would overflow: ``pandas.merge_asof`` on bare integer
    arrays (time, entity code), labels sorted once by time."""

    def __init__(self, label_t, label_codes, tolerance):
        import numpy as np
        import pandas as pd

        self.n = len(label_t)
        self.tolerance = tolerance
        valid = label_t != _NAT
        order = np.flatnonzero(valid) if not valid.all() else np.arange(self.n)
        self.order = order[np.argsort(label_t[order], kind="stable")]
        self.left = pd.DataFrame(
            {"t": label_t[self.order], "e": label_codes[self.order].astype(np.int64)}
        )

    def __call__(self, feature_t, feature_codes):
        import numpy as np
        import pandas as pd

        rows = np.arange(len(feature_t), dtype=np.int64)
        keep = (feature_codes >= 0) & (feature_t != _NAT)
        if not keep.all():
            rows = rows[keep]
        t = feature_t[rows]
        if len(t) > 1 and not (t[1:] >= t[:-1]).all():
            rows = rows[np.argsort(t, kind="stable")]  # stable: ties keep the frame's order
            t = feature_t[rows]
        right = pd.DataFrame({"t": t, "e": feature_codes[rows], "p": rows})
        matched = pd.merge_asof(
            self.left, right, on="t", by="e", direction="backward",
            allow_exact_matches=True, tolerance=self.tolerance,
        )["p"].to_numpy()
        positions = np.full(self.n, -1, dtype=np.int64)
        if matched.dtype.kind == "f":
            found = ~np.isnan(matched)
            positions[self.order[found]] = matched[found].astype(np.int64)
        else:
            positions[self.order] = matched
        return positions


def _feature_frames(features, entity, timestamp):
    """``[(name, frame)]`` from a dict or a list of frames, validated."""
    import pandas as pd

    from mlops_jupyter.errors import InvalidInput

    frames = []
    if isinstance(features, dict):
        for name, frame in features.items():
            where = f"feature {name!r}"
            if not isinstance(frame, pd.DataFrame):
                raise InvalidInput(f"{where} must be a pandas DataFrame, not {type(frame).__name__}")
            _require_columns(frame, where, entity, timestamp)
            if name not in frame.columns:
                raise InvalidInput(f"{where} has no column named {name!r} with its values")
            frames.append((name, frame))
    elif isinstance(features, (list, tuple)):
        for i, frame in enumerate(features):
            where = f"feature frame #{i}"
            if not isinstance(frame, pd.DataFrame):
                raise InvalidInput(f"{where} must be a pandas DataFrame, not {type(frame).__name__}")
            _require_columns(frame, where, entity, timestamp)
            others = [c for c in frame.columns if c not in (entity, timestamp)]
            if len(others) != 1:
                raise InvalidInput(
                    f"{where} must have exactly one value column besides {entity!r} and "
                    f"{timestamp!r}, found {len(others)}: {others!r}"
                )
            frames.append((others[0], frame))
    else:
        raise InvalidInput(
            f"features must be a dict {{name: DataFrame}} or a list of DataFrames, "
            f"not {type(features).__name__}"
        )
    if not frames:
        raise InvalidInput("features is empty: give at least one feature frame")
    names = [name for name, _ in frames]
    for name in names:
        if name in (entity, timestamp):
            raise InvalidInput(f"feature name {name!r} is the entity or timestamp column's name")
        if names.count(name) > 1:
            raise InvalidInput(f"feature {name!r} is given more than once")
    return frames


def _require_columns(frame, where, entity, timestamp):
    from mlops_jupyter.errors import InvalidInput

    for role, column in (("entity", entity), ("timestamp", timestamp)):
        if column not in frame.columns:
            raise InvalidInput(f"{where} has no {role} column {column!r}")
    if not frame.columns.is_unique:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InvalidInput(f"{where} has duplicate column names: {', '.join(dupes)}")


def _require_datetime(series, where, column):
    import pandas as pd

    from mlops_jupyter.errors import InvalidInput

    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        raise InvalidInput(
            f"timestamp column {column!r} of {where} is {series.dtype}, not datetime; "
            f"convert it with pandas.to_datetime first"
        )


def _tz_of(series):
    return getattr(series.dtype, "tz", None)


def _unit_of(series):
    import numpy as np

    dtype = series.dtype
    unit = getattr(dtype, "unit", None)
    if unit is None:
        unit = np.datetime_data(dtype)[0]
    return unit if unit in _UNITS else "ns"


def _as_int(series, unit):
    """The times as int64 counts of ``unit`` since the epoch (UTC for aware ones); NaT is int64 min."""
    import numpy as np
    import pandas as pd

    index = pd.DatetimeIndex(series)
    if index.unit != unit:
        index = index.as_unit(unit)
    return np.asarray(index.asi8, dtype=np.int64)


def _entity_kind(series):
    """A coarse kind for the entity values, to refuse comparing e.g. integers with strings."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    types = pd.api.types
    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_numeric_dtype(dtype):
        return "numeric"
    if types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if dtype == object or types.is_string_dtype(dtype):
        values = series.dtype.categories if isinstance(series.dtype, pd.CategoricalDtype) else series
        inferred = types.infer_dtype(values, skipna=True)
        return {
            "string": "string", "integer": "numeric", "floating": "numeric",
            "mixed-integer-float": "numeric", "decimal": "numeric", "boolean": "boolean",
            "empty": None,
        }.get(inferred, "mixed")
    return str(dtype)
