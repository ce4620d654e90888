"""Model references as users type them: ``name@alias``, ``name@latest``, ``name/3``."""

from ..errors import InvalidInput
from ..validation import check_name


def check_model_name(name):
    check_name(name, "model name")
    if "@" in name:
        raise InvalidInput(f"model name {name!r} must not contain '@' (it separates a name from an alias)")
    return name


def parse_model_reference(reference):
    """``(name, version, alias)`` with exactly one of version and alias set."""
    if not isinstance(reference, str):
        raise InvalidInput(f"model reference must be a string like 'name@production' or 'name/3', got {reference!r}")
    if "@" in reference:
        name, alias = reference.rsplit("@", 1)
        return check_model_name(name), None, check_name(alias, "alias")
    if "/" in reference:
        name, version = reference.rsplit("/", 1)
        return check_model_name(name), parse_version(version), None
    raise InvalidInput(
        f"say which version of {reference!r} to load: '{reference}@production', '{reference}@latest' or '{reference}/1'"
    )


def parse_version(version):
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"model version must be a positive whole number, got {version!r}")
    return int(text)
