"""Saving models with skops, never plain pickle, so loading cannot run arbitrary code.

skops refuses to build any type it does not trust. At registration we record exactly which
extra types this file needs; at load we trust those and nothing more, after the artifact
store has verified the bytes against their sha256.
"""

from ..errors import IntegrityError, InvalidInput

FORMAT = "skops"


def dump(model):
    """``(bytes, trusted_types)`` for a model, or a clear error naming what cannot be saved."""
    import skops.io

    try:
        data = skops.io.dumps(model)
    except Exception as error:  # skops raises TypeError, AttributeError, … for unsupported objects
        raise InvalidInput(
            f"cannot save a {class_name(model)} safely with skops: {error}. "
            "Register the fitted estimator or pipeline itself (lambdas and open handles cannot be saved)"
        ) from None
    return data, sorted(skops.io.get_untrusted_types(data=data))


def load(data, trusted_types):
    import skops.io

    needed = set(skops.io.get_untrusted_types(data=data))
    unexpected = needed - set(trusted_types)
    if unexpected:
        raise IntegrityError(
            f"model file asks to load types it did not declare at registration: {', '.join(sorted(unexpected))}; "
            "refusing to load it"
        )
    return skops.io.loads(data, trusted=sorted(needed))


def class_name(obj):
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
