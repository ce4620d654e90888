"""The online store: the latest value per entity of materialised features, for serving.

Two backends hold the same thing:

* the registry database (default): table ``online_features``, one row per (env, feature,
  entity) with the value as JSON text;
* Redis (``store="redis://host:port/db"``): one hash per (env, feature), key
  ``mlops:{env}:{feature}``, field = entity key, value = JSON ``{"v": value, "t": event_time,
  "ver": version}``; the hash ``mlops:{env}`` maps each materialised feature to its version.

Entities are ints or strings. Their key is canonical text: ``str()`` of an integer (numpy
integers and integral floats included, so ``7``, ``np.int64(7)`` and ``7.0`` are one entity),
the string itself for strings. Values come back as JSON gives them: floats, ints, strings,
bools, None for nulls, and timestamps as ISO-8601 strings.
"""

import json
import math
import numbers

from ..config import redact
from ..errors import InvalidInput, MlopsError, NotFound
from ..validation import check_name

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_checked_envs = set()
_redis_clients = {}


def check_env(env):
    """An env name: a safe name, at most 64 characters, without ``:`` (it separates Redis keys)."""
    if env in _checked_envs:
        return env
    check_name(env, "env")
    if len(env) > 64 or ":" in env:
        raise InvalidInput(f"env {env!r} must be at most 64 characters and contain no ':' (e.g. 'staging')")
    _checked_envs.add(env)
    return env


def check_store(store):
    """None for the registry database, or a Redis URL; anything else is refused."""
    if store is None:
        return None
    if not isinstance(store, str):
        raise InvalidInput(f"store must be None (the registry) or a redis:// URL, not {type(store).__name__}")
    if not store.startswith(REDIS_SCHEMES):
        scheme = store.split("://", 1)[0] if "://" in store else store
        raise InvalidInput(
            f"unsupported online store {redact(scheme)!r}: use None (the registry database) or a redis:// URL"
        )
    return store


def entity_key(value):
    """The canonical text of an entity value (see the module docstring)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if value is None or isinstance(value, bool) or kind.__name__ == "bool_":
        raise InvalidInput(f"entity {value!r} must be an int or a string")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        if math.isfinite(value) and float(value).is_integer():
            return str(int(value))
        raise InvalidInput(f"entity {value!r} must be an int or a string (a non-integral number cannot be a key)")
    raise InvalidInput(f"entity {value!r} must be an int or a string, not {kind.__name__}")


def entity_keys(entities):
    """``(entities as a list, their keys)``; a single entity is a list of one."""
    if isinstance(entities, (str, int)) or not hasattr(entities, "__iter__"):
        entities = [entities]
    elif not isinstance(entities, list):
        entities = list(entities)
    if not entities:
        raise InvalidInput("entities must not be empty: give one entity value or a list of them")
    return entities, [entity_key(entity) for entity in entities]


def _json_default(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def latest_values(frame, name, entity, timestamp):
    """The latest (max timestamp; on ties the last row) value of each entity, as
    ``[(entity_key, value_json, event_time_epoch_seconds)]``."""
    import pandas

    frame = frame[frame[entity].notna() & frame[timestamp].notna()]
    times = frame[timestamp]
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    seconds = (times - pandas.Timestamp(0)) / pandas.Timedelta(seconds=1)
    entities = frame[entity]
    if pandas.api.types.is_integer_dtype(entities.dtype) and not pandas.api.types.is_bool_dtype(entities.dtype):
        keys = entities.astype("int64").astype(str)
    else:
        keys = entities.map(entity_key)
    work = pandas.DataFrame({"key": keys.to_numpy(), "t": seconds.to_numpy(), "row": range(len(frame))})
    work = work.sort_values("t", kind="stable").drop_duplicates("key", keep="last")
    values = frame[name].iloc[work["row"].to_numpy()]
    if pandas.api.types.is_datetime64_any_dtype(values.dtype):
        plain = [None if value is pandas.NaT else value.isoformat() for value in values]
    else:
        objects = values.astype(object)
        plain = objects.where(values.notna(), None).tolist()
    dumps = json.dumps
    return [
        (key, dumps(value, default=_json_default), float(at))
        for key, value, at in zip(work["key"].tolist(), plain, work["t"].tolist())
    ]


# ---- Redis --------------------------------------------------------------------------------


def _redis(url):
    client = _redis_clients.get(url)
    if client is None:
        try:
            import redis
        except ImportError:
            raise MlopsError("a redis:// online store needs the redis package: pip install 'mlops-jupyter[redis]'") from None
        client = _redis_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    return client


def _run(url, pipeline):
    import redis

    try:
        return pipeline.execute()
    except redis.RedisError as error:
        raise MlopsError(f"online store {redact(url)}: {str(error).splitlines()[0]}") from None


def _hash_key(env, name):
    return f"mlops:{env}:{name}"


def write_redis(url, env, items):
    """Replace each ``(name, version, rows)`` in Redis in one MULTI/EXEC transaction."""
    client = _redis(url)
    pipeline = client.pipeline(transaction=True)
    for name, version, rows in items:
        key = _hash_key(env, name)
        pipeline.delete(key)
        if rows:
            mapping = {
                entity: '{"v": %s, "t": %s, "ver": %d}' % (value, json.dumps(at), version)
                for entity, value, at in rows
            }
            pipeline.hset(key, mapping=mapping)
        pipeline.hset(f"mlops:{env}", name, version)
    _run(url, pipeline)


def read_redis(url, env, names, keys):
    """``{name: [value_json or None per key]}``; NotFound for a feature not materialised in ``env``."""
    client = _redis(url)
    pipeline = client.pipeline(transaction=False)
    pipeline.hmget(f"mlops:{env}", names)
    for name in names:
        pipeline.hmget(_hash_key(env, name), keys)
    versions, *found = _run(url, pipeline)
    for name, version in zip(names, versions):
        if version is None:
            raise NotFound(not_materialized(name, env, url))
    result = {}
    for name, values in zip(names, found):
        present = [raw for raw in values if raw is not None]
        # One JSON decode for all values: a decode per value would cost more than the round trip.
        decoded = iter(json.loads(b"[" + b",".join(present) + b"]") if present else ())
        result[name] = [None if raw is None else next(decoded)["v"] for raw in values]
    return result


def not_materialized(name, env, where="the registry"):
    return (
        f"feature {name!r} has not been materialised in env {env!r} of {redact(where)}; "
        f"run mlops.materialize({name!r}, env={env!r}) first"
    )
