"""What a run records about where it came from, without extra typing and without subprocesses.

Package versions come from importlib.metadata for the top-level modules actually imported,
cached per process (MLflow spends seconds in a pip subprocess to guess requirements).
"""

import functools
import hashlib
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path

MAX_CODE_BYTES = 1 << 20
_versions = {}  # top-level module name -> {distribution: version} or {} when none is installed
_distributions_by_module = None
_packages_cache = (0, {})  # (len(sys.modules) when computed, result): modules are rarely unloaded


@functools.lru_cache(maxsize=16)  # a script's source is hashed once, not at every run
def code_hash(code):
    return hashlib.sha256(code.encode()).hexdigest()


def imported_packages():
    """``{distribution: version}`` of third-party top-level packages imported in this process."""
    global _packages_cache
    if _packages_cache[0] == len(sys.modules):
        return _packages_cache[1]
    stdlib = sys.stdlib_module_names
    packages = {}
    for name in list(sys.modules):
        if "." in name or name.startswith("_") or name in stdlib:
            continue
        if getattr(sys.modules[name], "__file__", None) is None:
            continue  # built-in or synthetic (e.g. Cython's cython_runtime): no distribution to find
        if name not in _versions:
            _versions[name] = _distribution_versions(name)
        packages.update(_versions[name])
    _packages_cache = (len(sys.modules), dict(sorted(packages.items())))
    return _packages_cache[1]


def _distribution_versions(module_name):
    global _distributions_by_module
    try:
        return {module_name: metadata.version(module_name)}
    except metadata.PackageNotFoundError:
        pass
    # The import name differs from the distribution's (sklearn → scikit-learn): ask the
    # mapping, built once per process because it scans every installed distribution.
    if _distributions_by_module is None:
        _distributions_by_module = metadata.packages_distributions()
    found = {}
    for distribution in _distributions_by_module.get(module_name, ()):
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit(start=None):
    """The commit checked out in the repository around ``start``, read from .git without git."""
    git_dir = _find_git_dir(str(start or os.getcwd()))
    return _read_head(git_dir) if git_dir is not None else None


@functools.lru_cache(maxsize=64)
def _find_git_dir(folder):
    # Cached: where the repository is does not change while a kernel runs; HEAD is read every time.
    folder = Path(folder).resolve()
    for candidate in (folder, *folder.parents):
        git_dir = candidate / ".git"
        if git_dir.is_file():  # a worktree or submodule: "gitdir: PATH"
            text = git_dir.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = (candidate / text.split(":", 1)[1].strip()).resolve()
        if git_dir.is_dir():
            return git_dir
    return None


def _read_head(git_dir):
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.split(":", 1)[1].strip()
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        ref_file = base / ref
        if ref_file.is_file():
            return ref_file.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None  # a branch with no commits yet


@functools.cache
def script_source():
    """The running script's path and text, when the process runs a .py file (read once)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not path.endswith(".py"):
        return None, None
    try:
        if os.path.getsize(path) > MAX_CODE_BYTES:
            return os.path.abspath(path), None
        return os.path.abspath(path), Path(path).read_text(errors="replace")
    except OSError:
        return None, None


def notebook_path():
    """The notebook this kernel runs, which Jupyter Server tells the kernel in its environment."""
    path = os.environ.get("JPY_SESSION_NAME")
    return path if path and path.endswith(".ipynb") else None


def _proc_stat(pid):
    """``(state, start time in seconds since boot)`` of a process, from /proc; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_start_time(pid):
    """When ``pid`` started, so a reused pid is not taken for the run's owner."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def owner():
    return _owner(os.getpid())


@functools.lru_cache(maxsize=4)
def _owner(pid):
    return {"owner_host": socket.gethostname(), "owner_pid": pid, "owner_started": process_start_time(pid)}


def is_alive(pid, started):
    """Whether the process that owned a run is still the same running process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc to ask: the pid exists, so assume it is the owner
    state, now_started = stat
    if state in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return started is None or abs(now_started - started) < 0.5


def capture(code=None, source_path=None):
    """``(provenance columns of a new run, the code to snapshot or None)``."""
    if code is None and source_path is None:
        source_path, code = script_source()
    columns = {
        "notebook_path": notebook_path(),
        "source_path": source_path,
        "code_hash": code_hash(code) if code is not None else None,
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "packages": imported_packages(),
    }
    return columns, code
