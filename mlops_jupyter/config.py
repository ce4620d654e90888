"""Where the registry and its artifacts are, and who the user is.

Resolution order for the registry: an explicit URL, then ``MLOPS_REGISTRY_URL``, then a
``.mlops/registry.db`` found by walking up from the working directory (as git finds
``.git``), else a new one in the working directory.
"""

import functools
import getpass
import os
from pathlib import Path
from urllib.parse import urlsplit

from .errors import InvalidInput

REGISTRY_ENV = "MLOPS_REGISTRY_URL"
ARTIFACTS_ENV = "MLOPS_ARTIFACTS_URL"
USER_ENV = "MLOPS_USER"
REGISTRY_DIR = ".mlops"
REGISTRY_FILE = "registry.db"

# fsspec protocols that can hold an artifact store; anything else (http, ftp, data, …) is refused.
ARTIFACT_SCHEMES = frozenset(
    {"file", "memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hdfs", "webhdfs", "sftp"}
)


def current_user():
    return os.environ.get(USER_ENV) or _login_name()


@functools.cache
def _login_name():
    return getpass.getuser()


def find_default_registry(start=None):
    """The ``.mlops/registry.db`` nearest above ``start``, or where a new one belongs."""
    start = Path(start or os.getcwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / REGISTRY_DIR / REGISTRY_FILE
        if candidate.is_file():
            return candidate
    return start / REGISTRY_DIR / REGISTRY_FILE


def resolve_registry_url(url=None):
    """The normalised SQLAlchemy URL of the registry to use."""
    if url:
        return normalize_registry_url(url)
    if os.environ.get(REGISTRY_ENV):
        return normalize_registry_url(os.environ[REGISTRY_ENV])
    path = find_default_registry()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def normalize_registry_url(url):
    """Accept ``sqlite:///path`` and ``postgresql://…``; make SQLite paths absolute."""
    if not isinstance(url, str) or "\x00" in url:
        raise InvalidInput(f"registry URL must be a string without NUL bytes, got {url!r}")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return _normalize_sqlite_url(url)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return "postgresql+psycopg:" + url.split(":", 1)[1]
    raise InvalidInput(
        f"unsupported registry URL {redact(url)!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def _normalize_sqlite_url(url):
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        raise InvalidInput(
            f"SQLite registry URL {url!r} must name a file: sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = Path(url[len(prefix):].split("?", 1)[0]).expanduser().resolve()
    if not path.parent.is_dir():
        raise InvalidInput(f"folder {str(path.parent)!r} for the SQLite registry does not exist")
    if path.is_dir():
        raise InvalidInput(f"{str(path)!r} is a folder; name the registry file, e.g. {path}/registry.db")
    return f"sqlite:///{path}"


def sqlite_path(url):
    """The file of a normalised SQLite URL, or None for other databases."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def check_artifact_url(url):
    """An artifact root: a local folder or an fsspec URL with a storage scheme we accept."""
    if not isinstance(url, str) or not url or "\x00" in url:
        raise InvalidInput(f"artifact location must be a non-empty string without NUL bytes, got {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) <= 1:  # a plain path (or a Windows drive letter)
        return str(Path(url).expanduser().resolve())
    if scheme not in ARTIFACT_SCHEMES:
        raise InvalidInput(
            f"artifact URL scheme {scheme!r} is not supported; use a folder or one of: "
            + ", ".join(sorted(ARTIFACT_SCHEMES))
        )
    if scheme == "file":
        return str(Path(urlsplit(url).path).resolve())
    return url


def default_artifact_root(registry_url):
    """Artifacts live beside an SQLite file; for a server database, in the project's .mlops/."""
    if os.environ.get(ARTIFACTS_ENV):
        return check_artifact_url(os.environ[ARTIFACTS_ENV])
    path = sqlite_path(registry_url)
    if path is not None:
        return str(path.parent / "artifacts")
    return str(find_default_registry().parent / "artifacts")


def redact(url):
    """Hide a password in a URL before it goes into a message."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
