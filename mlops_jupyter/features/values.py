"""A feature's computed values: validated into (entity, timestamp, value) rows, stored as Parquet."""

import io

from ..errors import InvalidInput


def normalize_values(name, values, entity, timestamp):
    """``values`` as a DataFrame of exactly the columns ``entity``, ``timestamp`` and ``name``.

    Accepts a DataFrame holding the entity and timestamp columns and one value column (named
    ``name``, or the only other column), or a Series indexed by (entity, timestamp).
    """
    import pandas

    if isinstance(values, pandas.Series):
        index_names = [n for n in values.index.names if n is not None]
        if not {entity, timestamp} <= set(index_names):
            raise InvalidInput(
                f"feature {name!r}: a Series result needs an index with levels {entity!r} and {timestamp!r}; "
                f"it has {index_names or 'an unnamed index'}"
            )
        values = values.rename(name).reset_index()[[entity, timestamp, name]]
    if not isinstance(values, pandas.DataFrame):
        raise InvalidInput(
            f"feature {name!r}: the result must be a DataFrame or Series, not {type(values).__name__}"
        )
    missing = [column for column in (entity, timestamp) if column not in values.columns]
    if missing:
        raise InvalidInput(
            f"feature {name!r}: the result has no column {missing[0]!r} (columns: {', '.join(map(str, values.columns))})"
        )
    others = [column for column in values.columns if column not in (entity, timestamp)]
    if name in others:
        value_column = name
    elif len(others) == 1:
        value_column = others[0]
    else:
        raise InvalidInput(
            f"feature {name!r}: the result must have one value column besides {entity!r} and {timestamp!r} "
            f"(or one named {name!r}); it has {others}"
        )
    frame = values[[entity, timestamp, value_column]].rename(columns={value_column: name}).reset_index(drop=True)
    check_timestamps(frame[timestamp], f"feature {name!r}")
    return frame


def check_timestamps(column, what):
    """Timestamps must be datetimes of one time zone (or all naive)."""
    import pandas

    if not pandas.api.types.is_datetime64_any_dtype(column.dtype):
        mixed = column.dtype == object and column.map(lambda v: str(getattr(v, "tzinfo", None))).nunique() > 1
        reason = "mixes time zones (and naive times)" if mixed else f"holds {column.dtype}, not datetimes"
        raise InvalidInput(
            f"{what}: timestamp column {column.name!r} {reason}; convert it with pandas.to_datetime(..., utc=True)"
        )


def to_parquet(frame):
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def from_parquet(data):
    import pandas

    return pandas.read_parquet(io.BytesIO(data))
