"""Saving models with skops, never plain pickle, so loading cannot run arbitrary code.

skops refuses to build any type it does not trust. At registration we record exactly which
extra types this file needs; at load we trust those and nothing more, after the artifact
store has verified the bytes against their sha256.
"""

import hashlib
import io
import json
import zipfile

from ..errors import IntegrityError, InvalidInput

FORMAT = "skops"


def dump(model):
    """``(bytes, trusted_types, fingerprint)``, or a clear error naming what cannot be saved."""
    import skops.io

    try:
        data = skops.io.dumps(model)
    except Exception as error:  # skops raises TypeError, AttributeError, … for unsupported objects
        raise InvalidInput(
            f"cannot save a {class_name(model)} safely with skops: {error}. "
            "Register the fitted estimator or pipeline itself (lambdas and open handles cannot be saved)"
        ) from None
    trusted = sorted(skops.io.get_untrusted_types(data=data))
    try:
        # skops saves functions by name; one defined in a notebook cannot be found again.
        skops.io.loads(data, trusted=trusted)
    except Exception as error:
        raise InvalidInput(
            f"cannot save a {class_name(model)} safely with skops: it would not load back ({error}). "
            "Use functions importable from a module instead of lambdas or notebook-defined ones"
        ) from None
    return data, trusted, fingerprint(data)


def fingerprint(data):
    """A hash of a skops file's content that is the same for every save of the same model.

    Two saves differ only in the ``__id__`` numbers (Python object ids) in ``schema.json``
    and the array file names derived from them; renumber those in order of appearance.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if "schema.json" not in archive.namelist():
            return hashlib.sha256(data).hexdigest()
        ordinals = {}

        def renumber(node):
            if isinstance(node, list):
                return [renumber(item) for item in node]
            if not isinstance(node, dict):
                return node
            result = {}
            for key, value in node.items():
                if key == "__id__":
                    value = ordinals.setdefault(value, len(ordinals))
                elif key == "file" and isinstance(value, str):
                    stem, _, suffix = value.partition(".")
                    value = f"{ordinals.setdefault(stem, len(ordinals))}.{suffix}"
                else:
                    value = renumber(value)
                result[key] = value
            return result

        digest = hashlib.sha256(json.dumps(renumber(json.loads(archive.read("schema.json")))).encode())
        for info in archive.infolist():
            if info.filename != "schema.json":
                digest.update(archive.read(info))
    return digest.hexdigest()


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
