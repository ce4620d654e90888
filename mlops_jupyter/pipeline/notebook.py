"""Reading a notebook: any nbformat version, upgraded to 4; clear errors for anything else."""

import hashlib
import json
from pathlib import Path

from ..errors import InvalidInput, NotFound


def read_notebook(notebook):
    """``(node, path or None, sha256)`` for a path or an in-memory notebook (dict or NotebookNode).

    ``node`` is a version-4 notebook as a dict; older versions are upgraded by nbformat.
    """
    if isinstance(notebook, (str, Path)):
        path = Path(notebook)
        if not path.is_file():
            raise NotFound(f"no notebook at {str(path)!r}")
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not a notebook: it is not UTF-8 text") from None
        where = str(path)
        content = _json(text, where)
    elif isinstance(notebook, dict):
        path, where, content = None, "the notebook", notebook
        data = json.dumps(notebook, sort_keys=True).encode()
    else:
        raise InvalidInput(f"a notebook is a path or an nbformat dict, not {type(notebook).__name__}")
    if not isinstance(content, dict) or not ("cells" in content or "worksheets" in content):
        raise InvalidInput(f"{where} is not a notebook: it has no cells")
    if not isinstance(content.get("nbformat"), int):
        raise InvalidInput(f"{where} is not a notebook: it has no nbformat version")
    if content["nbformat"] == 4 and isinstance(content.get("cells"), list):
        node = content  # already the shape conversion reads; nbformat costs seconds to import beside JupyterLab
    else:
        import nbformat

        try:
            node = nbformat.reads(json.dumps(content), as_version=4)
        except Exception as error:  # nbformat raises its own types and plain ones for broken files
            raise InvalidInput(f"{where} is not a readable notebook: {error}") from None
    if not all(isinstance(cell, dict) for cell in node["cells"]):
        raise InvalidInput(f"{where} is not a readable notebook: its cells are not all objects")
    return node, path, hashlib.sha256(data).hexdigest()


def _json(text, where):
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"{where} is not a notebook: invalid JSON ({error})") from None


def source_of(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def tags_of(cell):
    return list(cell.get("metadata", {}).get("tags", []) or [])
