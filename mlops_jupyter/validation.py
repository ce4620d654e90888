"""Checks on what users name things, shared by every door into the registry."""

import math
import numbers

from .errors import InvalidInput

MAX_NAME_LENGTH = 255
_FORBIDDEN_CHARACTERS = ("/", "\\", "\x00")


def check_name(name, what="name"):
    """Return ``name`` if it is safe to use as an experiment, run, model or alias name.

    Names end up in file paths, URLs and shell commands, so anything path-like is refused.
    """
    if not isinstance(name, str):
        raise InvalidInput(f"{what} must be a string, not {type(name).__name__}")
    if not name or not name.strip():
        raise InvalidInput(f"{what} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    for bad in _FORBIDDEN_CHARACTERS:
        if bad in name:
            shown = {"\x00": "NUL"}.get(bad, repr(bad))
            raise InvalidInput(f"{what} {name!r} must not contain {shown}")
    if name.startswith("."):
        raise InvalidInput(f"{what} {name!r} must not start with a dot")
    if name != name.strip():
        raise InvalidInput(f"{what} {name!r} must not start or end with spaces")
    if any(ord(c) < 32 for c in name):
        raise InvalidInput(f"{what} {name!r} must not contain control characters")
    return name


def check_key(key, what="key"):
    """Metric, param and tag keys: like names, but ``/`` is allowed as a grouping (``val/loss``)."""
    if not isinstance(key, str):
        raise InvalidInput(f"{what} must be a string, not {type(key).__name__}")
    for part in key.split("/"):
        if not part:
            raise InvalidInput(f"{what} {key!r} has an empty part between slashes")
        check_name(part, what)
    return key


def check_relative_path(path, what="artifact path"):
    """A path inside the artifact store: relative, no ``..``, each part a safe name."""
    if not isinstance(path, str):
        raise InvalidInput(f"{what} must be a string, not {type(path).__name__}")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidInput(f"{what} {path!r} must be relative, not absolute")
    if "\\" in path:
        raise InvalidInput(f"{what} {path!r} must use '/' as separator")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidInput(f"{what} {path!r} must not contain empty, '.' or '..' parts")
        check_name(part, what)
    return path


def check_metric_value(key, value):
    """A metric must be a real number; NaN and infinities are kept (a diverging loss is data)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"metric {key!r} must be a number, not {type(value).__name__} {value!r}")
    return float(value)


def check_step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"step must be a whole number, not {step!r}")
    return int(step)


def numeric_or_none(text):
    """The float a param's text stands for, so filters can compare params as numbers."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
