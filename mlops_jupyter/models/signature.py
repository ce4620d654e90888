"""A model's signature: the input columns and dtypes it expects and what it returns."""

import sys


def infer_signature(model, input_example=None, datasets=()):
    """Inputs from an example frame, else from a logged dataset with the model's feature names.

    ``datasets`` are the source run's dataset fingerprints; the newest one whose columns
    contain the model's ``feature_names_in_`` gives the dtypes.
    """
    names = [str(n) for n in getattr(model, "feature_names_in_", [])] or None
    n_features = getattr(model, "n_features_in_", None)
    inputs = None
    pandas = sys.modules.get("pandas")
    if input_example is not None and pandas is not None and isinstance(input_example, pandas.DataFrame):
        inputs = [{"name": str(c), "dtype": str(t)} for c, t in input_example.dtypes.items()]
    elif input_example is not None and hasattr(input_example, "dtype") and hasattr(input_example, "shape"):
        width = input_example.shape[1] if len(input_example.shape) > 1 else 1
        inputs = [{"name": None, "dtype": str(input_example.dtype)}] * width
    elif names:
        columns = {}
        for dataset in reversed(list(datasets)):
            candidate = dataset["schema"].get("columns", {})
            if set(names) <= set(candidate):
                columns = candidate
                break
        inputs = [{"name": n, "dtype": columns.get(n)} for n in names]
    return {
        "inputs": inputs,
        "n_features": int(n_features) if n_features is not None else (len(inputs) if inputs else None),
        "outputs": _outputs(model),
    }


def _outputs(model):
    classes = getattr(model, "classes_", None)
    if classes is not None:
        return {"kind": "class", "classes": [c.item() if hasattr(c, "item") else c for c in classes]}
    if hasattr(model, "predict"):
        return {"kind": "value"}
    if hasattr(model, "transform"):
        return {"kind": "transform"}
    return {"kind": "unknown"}
