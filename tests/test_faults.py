"""Faults a user relies on the registry to survive: many kernels at once, killed and exiting kernels.

Every scenario runs real child processes (``python -c``) against one registry, on SQLite and
on PostgreSQL. Children and the test talk over pipes: a child reports on stdout (one line per
fact, flushed), and waits for the test on stdin, so nothing here synchronises by sleeping.
"""

import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import mlops_jupyter as mlops
from mlops_jupyter.registry import database
from mlops_jupyter.registry.schema import experiments, registry_info, runs

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
CHILD_TIMEOUT = 60  # seconds any one child may take to say something or exit; a hang fails, not stalls
KERNELS = 4

# Imports the heavy modules up front, so that once children are told "go" they race at once.
CHILD_PRELUDE = """
import os, sys
import mlops_jupyter as mlops
from mlops_jupyter import api
from mlops_jupyter.registry import store

def say(*words):
    print(*words, flush=True)

def wait_for_go():
    line = sys.stdin.readline()
    assert line == "go\\n", repr(line)
"""


class Child:
    """A ``python -c`` process on the registry at ``url`` (passed as MLOPS_REGISTRY_URL)."""

    def __init__(self, code, url, folder, name, args=()):
        env = dict(os.environ, MLOPS_REGISTRY_URL=url, MLOPS_USER="tester", PYTHONUNBUFFERED="1")
        env.pop("MLOPS_ARTIFACTS_URL", None)
        self.stderr_path = folder / f"{name}.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *map(str, args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=folder,
                bufsize=0,
            )
        self.pid = self.process.pid
        self._buffer = b""

    def line(self, timeout=CHILD_TIMEOUT):
        """The child's next stdout line; fails the test if it exits or stays silent instead."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                pytest.fail(f"child {self.pid} said nothing for {timeout}s; stderr:\n{self.stderr()}")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.process.wait(timeout)
                pytest.fail(
                    f"child {self.pid} exited ({self.process.returncode}) before its next line; "
                    f"stderr:\n{self.stderr()}"
                )
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def send(self, text):
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def finish(self, timeout=CHILD_TIMEOUT):
        """Close stdin, wait for the exit; return (exit code, the rest of stdout's lines)."""
        self.process.stdin.close()
        rest = self._buffer + self.process.stdout.read()
        self._buffer = b""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"child {self.pid} did not exit within {timeout}s; stderr:\n{self.stderr()}")
        return code, rest.decode().splitlines()

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def spawn(tmp_path):
    """``spawn(code, url, *args)`` starts a child; any still running at the end is killed."""
    children = []

    def start(code, url, *args):
        child = Child(code, url, tmp_path, f"child{len(children)}", args)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        for stream in (child.process.stdin, child.process.stdout):
            if not stream.closed:
                stream.close()


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """A registry URL whose database does not exist yet (SQLite) or is an empty schema (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'registry.db'}"
    return request.getfixturevalue("pg_schema_url")


def go(children):
    for child in children:
        child.send("go\n")


def assert_clean_exit(child, code):
    stderr = child.stderr()
    assert code == 0, f"child {child.pid} exited {code}; stderr:\n{stderr}"
    for symptom in ("database is locked", "duplicate column", "already exists", "Traceback"):
        assert symptom not in stderr, stderr


def schema_revision(url):
    engine = database.create_engine(url)
    try:
        return database.current_revision(engine)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- many kernels writing at once

LOG_MANY = """
count = int(sys.argv[1])
mlops.connect()
run = mlops.start_run()
say(run.id)
wait_for_go()
for i in range(count):
    mlops.log_metric("m", i, step=i)
mlops.end_run()
"""


@pytest.mark.parametrize(
    "backend, count",
    [
        ("sqlite", 5_000),
        # Fewer points: each PostgreSQL commit waits for an fsync of the WAL.
        pytest.param("postgresql", 1_000, marks=pytest.mark.postgres),
    ],
)
def test_concurrent_writers_lose_no_metric_point(request, tmp_path, spawn, backend, count):
    url = f"sqlite:///{tmp_path / 'registry.db'}" if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    # A registry already in use (its artifact root and experiment recorded): writing is what races.
    # (First use by several kernels at once: test_kernels_opening_* and test_first_use_*, below.)
    mlops.connect(url)
    mlops.set_experiment("default")

    children = [spawn(LOG_MANY, url, count) for _ in range(KERNELS)]
    run_ids = [child.line() for child in children]  # every run started, every child at the line
    go(children)
    for child in children:
        code, _ = child.finish()
        assert_clean_exit(child, code)

    assert len(set(run_ids)) == KERNELS
    for run_id in run_ids:
        history = mlops.get_metric_history(run_id, "m")
        assert [(step, value) for step, value, _ in history] == [(i, float(i)) for i in range(count)]
        run = mlops.get_run(run_id)
        assert run["status"] == "FINISHED"
        assert run["metrics"] == {"m": count - 1}
    assert mlops.registry_counts()["metrics"] == KERNELS * count


# ---------------------------------------------------------------- many kernels creating a registry

OPEN_FRESH = """
import alembic.command  # what creating the schema needs, loaded before the race
wait_for_go()
mlops.connect()
with mlops.start_run() as run:
    mlops.log_metric("m", 1.0)
say(run.id)
"""


def test_kernels_opening_a_new_registry_at_once_agree_on_its_schema(fresh_url, spawn, tmp_path):
    # All at once: the schema, PostgreSQL's recorded artifact root and the "default" experiment.
    children = [spawn(OPEN_FRESH, fresh_url) for _ in range(KERNELS)]
    if fresh_url.startswith("sqlite"):
        (tmp_path / "fresh").mkdir()
        assert not (tmp_path / "fresh" / "registry.db").exists()
    else:
        assert schema_revision(fresh_url) is None  # (on SQLite, looking would create the file)
    go(children)

    run_ids = []
    for child in children:
        code, lines = child.finish()
        assert_clean_exit(child, code)
        run_ids += lines
    assert schema_revision(fresh_url) == database.HEAD_REVISION

    registry = mlops.connect(fresh_url)
    if fresh_url.startswith("postgresql"):
        assert registry.artifacts.root == str(tmp_path / ".mlops" / "artifacts")
    assert len(set(run_ids)) == KERNELS
    found = mlops.search_runs(output="list")
    assert sorted(row["id"] for row in found) == sorted(run_ids)
    assert all(row["status"] == "FINISHED" and row["metrics"] == {"m": 1.0} for row in found)
    assert [e["name"] for e in mlops.list_experiments()] == ["default"]


# ---------------------------------------------------------------- a kernel killed mid-run

LOG_UNTIL_KILLED = """
mlops.connect()
run = mlops.start_run()
say(run.id)
step = 0
while True:
    mlops.log_metric("m", step * 0.5, step=step)
    say(step)  # only once the point is committed
    step += 1
"""


@pytest.mark.parametrize("observer", ["get_run", "search_runs"])
def test_a_killed_kernel_keeps_what_it_logged_and_its_run_shows_crashed(registry, registry_url, spawn, observer):
    child = spawn(LOG_UNTIL_KILLED, registry_url)
    run_id = child.line()
    reported = [int(child.line()) for _ in range(200)]
    assert reported == list(range(200))
    assert mlops.get_run(run_id)["status"] == "RUNNING"  # alive: not taken for crashed

    os.kill(child.pid, signal.SIGKILL)
    code, rest = child.finish()
    assert code == -signal.SIGKILL
    reported += [int(line) for line in rest]  # all it printed up to the kill, far beyond the 200

    # The first look after the kill is what notices the dead owner.
    if observer == "get_run":
        run = mlops.get_run(run_id)
        assert run["status"] == "CRASHED"
    else:
        (row,) = [r for r in mlops.search_runs(output="list") if r["id"] == run_id]
        assert row["status"] == "CRASHED"
        run = mlops.get_run(run_id)
    assert run["end_time"] is not None
    assert mlops.search_runs("status = 'CRASHED'", output="list")[0]["id"] == run_id
    assert mlops.search_runs("status = 'RUNNING'", output="list") == []

    # Durable: every point the child saw committed is there, with nothing torn or missing between.
    history = mlops.get_metric_history(run_id, "m")
    steps = [step for step, _, _ in history]
    assert steps == list(range(len(steps)))
    assert reported == list(range(len(reported)))
    assert len(steps) >= len(reported)  # one more if the kill fell between a commit and its line
    assert all(value == step * 0.5 for step, value, _ in history)
    assert mlops.mark_crashed_runs() == []  # marked once, not again
    assert [e["action"] for e in mlops.audit(run_id)].count("crashed") == 1


# ---------------------------------------------------------------- kernels ending without end_run

EXIT_WITH_OPEN_RUNS = """
mlops.connect()
outer = mlops.start_run("outer")
inner = mlops.start_run("inner")
mlops.log_metric("m", 3.0)
say(outer.id)
say(inner.id)
"""


def test_runs_left_open_at_a_normal_exit_are_finished(registry, registry_url, spawn):
    child = spawn(EXIT_WITH_OPEN_RUNS, registry_url)
    code, (outer, inner) = child.finish()
    assert_clean_exit(child, code)
    for run_id in (outer, inner):
        run = mlops.get_run(run_id)
        assert run["status"] == "FINISHED", run_id
        assert run["end_time"] is not None
    assert mlops.get_run(inner)["parent_run_id"] == outer
    assert mlops.get_run(inner)["metrics"] == {"m": 3.0}


RAISE_IN_RUN = """
try:
    with mlops.start_run() as failed:
        say(failed.id)
        raise ValueError("boom")
except ValueError:
    pass
say(mlops.active_run())
with mlops.start_run() as after:
    mlops.log_metric("m", 2.0)
    say(after.id)
with mlops.start_run() as last:
    say(last.id)
    raise RuntimeError("uncaught")
"""


def test_a_run_whose_block_raises_is_failed_and_blocks_nothing(registry, registry_url, spawn):
    child = spawn(RAISE_IN_RUN, registry_url)
    code, (failed, active_after_failure, after, last) = child.finish()
    assert code == 1
    assert "RuntimeError: uncaught" in child.stderr()

    assert mlops.get_run(failed)["status"] == "FAILED"
    assert active_after_failure == "None"
    run = mlops.get_run(after)
    assert (run["status"], run["parent_run_id"], run["metrics"]) == ("FINISHED", None, {"m": 2.0})
    # The uncaught error fails the run; exiting afterwards must not turn it FINISHED.
    run = mlops.get_run(last)
    assert (run["status"], run["parent_run_id"]) == ("FAILED", None)


# ---------------------------------------------------------------- live runs are left alone

WAIT_IN_RUN = """
mlops.connect()
run = mlops.start_run()
say(run.id)
assert sys.stdin.readline() == "end\\n"
mlops.end_run()
"""


def test_a_live_run_of_another_kernel_is_not_marked_crashed(registry, registry_url, spawn):
    child = spawn(WAIT_IN_RUN, registry_url)
    run_id = child.line()
    assert mlops.get_run(run_id)["owner_pid"] == child.pid

    assert mlops.mark_crashed_runs() == []
    assert mlops.get_run(run_id)["status"] == "RUNNING"
    (row,) = mlops.search_runs(output="list")
    assert row["status"] == "RUNNING"
    mlops.connect(registry_url)  # connecting checks for dead owners too
    assert mlops.get_run(run_id)["status"] == "RUNNING"

    child.send("end\n")
    code, _ = child.finish()
    assert_clean_exit(child, code)
    assert mlops.get_run(run_id)["status"] == "FINISHED"


def test_a_run_whose_pid_was_reused_by_another_process_is_crashed(registry, registry_url):
    # This process is alive, but it is not the process that started the run when the start
    # time differs: the pid was reused after the owner died.
    run = mlops.start_run()
    assert mlops.get_run(run.id)["owner_host"] == socket.gethostname()
    assert mlops.mark_crashed_runs() == []
    engine = sa.create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(runs).where(runs.c.id == run.id).values(owner_started=runs.c.owner_started - 100)
            )
    finally:
        engine.dispose()
    assert mlops.mark_crashed_runs() == [run.id]
    assert mlops.get_run(run.id)["status"] == "CRASHED"


def test_a_killed_kernel_not_yet_reaped_by_its_parent_shows_crashed(tmp_path, spawn):
    # E.g. a notebook's subprocess.Popen("python train.py") killed by the OOM killer: until the
    # notebook calls wait(), the dead child is a zombie, whose pid still answers kill(pid, 0).
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    mlops.connect(url)
    child = spawn(WAIT_IN_RUN, url)
    run_id = child.line()
    os.kill(child.pid, signal.SIGKILL)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, and left unreaped
    assert mlops.get_run(run_id)["status"] == "CRASHED"


# ---------------------------------------------------------------- first use of a shared registry


def behind_an_uncommitted_insert(url, table, row, action):
    """``action()``'s result, run while another kernel's transaction has inserted ``row`` but not
    committed it; that transaction commits as soon as ``action`` waits for it (or has returned)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    outcome = {}

    def act():
        try:
            outcome["result"] = action()
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    try:
        with engine.connect() as other_kernel, engine.connect() as watcher:
            watcher.execution_options(isolation_level="AUTOCOMMIT")
            other_pid = other_kernel.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            other_kernel.execute(sa.insert(table), row)
            thread = threading.Thread(target=act)
            thread.start()
            waiting = sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
            deadline = time.monotonic() + CHILD_TIMEOUT
            # Watching the server for the moment ``action`` blocks: no pipe can tell that.
            while thread.is_alive() and not watcher.execute(waiting, {"pid": other_pid}).scalar():
                assert time.monotonic() < deadline, "action neither finished nor waited for the other kernel"
                time.sleep(0.005)
            other_kernel.commit()
            thread.join(CHILD_TIMEOUT)
            assert not thread.is_alive()
    finally:
        engine.dispose()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.mark.postgres
def test_first_use_of_a_shared_registry_by_two_kernels_records_one_artifact_root(pg_schema_url, tmp_path):
    engine = database.create_engine(pg_schema_url)
    database.ensure_schema(engine)  # the schema exists, with no artifact root recorded yet
    engine.dispose()
    theirs = str(tmp_path / "theirs")
    registry = behind_an_uncommitted_insert(
        pg_schema_url, registry_info, {"key": "artifact_root", "value": theirs}, lambda: mlops.connect(pg_schema_url)
    )
    assert registry.artifacts.root == theirs  # first writer wins; the second kernel uses its choice


@pytest.mark.postgres
def test_first_use_of_an_experiment_by_two_kernels_shares_it(pg_schema_url, tmp_path):
    mlops.connect(pg_schema_url, artifacts=str(tmp_path / "artifacts"))
    row = {"name": "default", "created_at": time.time(), "created_by": "colleague"}
    run = behind_an_uncommitted_insert(pg_schema_url, experiments, row, mlops.start_run)
    assert mlops.get_run(run.id)["experiment"] == "default"
    assert [e["name"] for e in mlops.list_experiments()] == ["default"]
