"""The ``%mlops`` / ``%%mlops`` magics: parse a command line, call the API, show the result.

Every command is a method registered in ``COMMANDS`` with its own IPython
``MagicArgumentParser``, so ``%mlops help CMD`` and ``%mlops?`` document every option.
A user mistake (bad argument, unknown name, failed gate) becomes one ``UsageError`` line.
"""

import difflib
import re
import shlex
import sys
import time
from contextlib import nullcontext

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Bool, Int, Unicode, observe

from .. import api
from ..errors import MlopsError

COMMANDS = {}  # name -> function(magics, args, cell)
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def command(name, help, *arguments, cell=False):
    """Register a ``%mlops NAME`` command with its arguments (``(args, kwargs)`` pairs)."""

    def decorate(function):
        parser = MagicArgumentParser(prog=f"{'%' if cell else ''}mlops {name}", description=help)
        for args, kwargs in arguments:
            parser.add_argument(*args, **kwargs)
        function.parser = parser
        function.help = help
        function.takes_cell = cell
        COMMANDS[name] = function
        return function

    return decorate


def arg(*args, **kwargs):
    return args, kwargs


def parse_pairs(pairs, what, numbers):
    """``["a=1", "b=x"]`` as a dict; values are floats when ``numbers``, else text."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must be written key=value, got {pair!r}")
        if numbers:
            try:
                value = float(value)
            except ValueError:
                raise UsageError(f"metric {key!r} must be a number, got {value!r}") from None
        parsed[key] = value
    return parsed


@magics_class
class MlopsMagics(Magics):
    """Settings of the ``%mlops`` magics; change them with ``%config MlopsMagics.NAME = value``."""

    registry_url = Unicode(
        "",
        help="Registry to use: sqlite:///PATH or postgresql://USER@HOST/DB. Empty: $MLOPS_REGISTRY_URL, "
        "else the nearest .mlops/registry.db above the working directory.",
    ).tag(config=True)
    default_experiment = Unicode("", help="Experiment new runs go into; empty keeps the API's default.").tag(
        config=True
    )
    autolog = Bool(True, help="Log scikit-learn fits and scores inside %%mlops run cells.").tag(config=True)
    display_limit = Int(50, help="Rows shown by table commands such as %mlops runs.").tag(config=True)
    widgets = Bool(True, help="Show ipywidgets panels in a live kernel; HTML only when False.").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self._pending = {"registry_url", "default_experiment"}  # settings not yet applied to the API

    @observe("registry_url", "default_experiment")
    def _settings_changed(self, change):
        self._pending.add(change["name"])

    def ensure_configured(self):
        """Apply changed settings to the API on first use, so loading the extension stays instant."""
        if "registry_url" in self._pending and self.registry_url:
            api.connect(self.registry_url)
        if "default_experiment" in self._pending and self.default_experiment:
            api.set_experiment(self.default_experiment)
        self._pending.clear()

    @property
    def live(self):
        from .display import is_live_kernel

        return self.widgets and is_live_kernel(self.shell)

    @line_cell_magic
    def mlops(self, line, cell=None):
        name, _, rest = line.strip().partition(" ")
        name = name or "status"
        function = COMMANDS.get(name)
        if function is None:
            close = difflib.get_close_matches(name, COMMANDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown command {name!r}{hint}; %mlops help lists the commands")
        if cell is not None and not function.takes_cell:
            cells = " and ".join(n for n, f in COMMANDS.items() if f.takes_cell)
            raise UsageError(f"%%mlops {name} is not a cell command; use %mlops {name} (only {cells} take a cell)")
        try:
            # POSIX splitting, so --filter 'metrics.auc > 0.8' arrives without its quotes.
            words = shlex.split(rest)
        except ValueError as error:
            raise UsageError(f"cannot read the arguments: {error}") from None
        args = function.parser.parse_args(words)
        try:
            self.ensure_configured()
            return function(self, args, cell)
        except MlopsError as error:
            raise UsageError(str(error)) from None

    def variable(self, name):
        """A notebook variable by name, or ``obj.attribute`` path."""
        if not _IDENTIFIER_PATH.match(name):
            raise UsageError(f"{name!r} is not a variable name")
        head, *attributes = name.split(".")
        if head not in self.shell.user_ns:
            raise UsageError(f"no variable {head!r} in the notebook")
        value = self.shell.user_ns[head]
        for attribute in attributes:
            if not hasattr(value, attribute):
                raise UsageError(f"{type(value).__name__} {head!r} has no attribute {attribute!r}")
            value = getattr(value, attribute)
        return value

    def show(self, view):
        """Display ``view``; a display failure is reported, never fatal to the command."""
        from IPython.display import display

        try:
            display(view)
        except Exception as error:  # the command already did its work; don't lose it to a repr
            print(f"(could not display the result: {error})")


# ---- commands ---------------------------------------------------------------------------


@command("help", "Show the commands, or one command's options.", arg("topic", nargs="?", metavar="CMD"))
def show_help(magics, args, cell):
    if args.topic is None:
        print(overview())
        return
    if args.topic not in COMMANDS:
        close = difflib.get_close_matches(args.topic, COMMANDS, n=1)
        raise UsageError(f"no command {args.topic!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    print(COMMANDS[args.topic].parser.format_help())


@command("status", "Registry URL, user, active experiment and run.")
def status(magics, args, cell):
    from ..config import current_user, redact
    from .display import status_view

    registry = api.current_registry()
    run = api.active_run()
    info = {
        "registry": redact(registry.url),
        "artifacts": registry.artifacts.root,
        "user": current_user(),
        "experiment": api.active_experiment(),
        "active_run": {"id": run.id, "name": run.name} if run else None,
        "counts": api.registry_counts(),
        "unhealthy": api.unhealthy_models(),  # verdicts recorded by %mlops monitor: nothing recomputed here
    }
    magics.show(status_view(info))
    return info


@command(
    "connect",
    "Choose the registry (sqlite:///PATH or postgresql://USER@HOST/DB).",
    arg("url", metavar="URL"),
    arg("--artifacts", metavar="URL", help="artifact store: a folder or an fsspec URL"),
)
def connect(magics, args, cell):
    registry = api.connect(args.url, artifacts=args.artifacts)
    magics.registry_url = args.url
    magics._pending.discard("registry_url")
    print(f"connected to {registry.url}; artifacts in {registry.artifacts.root}")
    return registry


@command("experiment", "Set the active experiment (created if missing).", arg("name", metavar="NAME"))
def experiment(magics, args, cell):
    api.set_experiment(args.name)
    print(f"experiment: {args.name}")


@command(
    "run",
    "As a cell magic, run the cell inside a run; as a line magic, `run start [NAME]` / `run end`.",
    arg("name", nargs="*", metavar="NAME", help="cell: the run's name; line: start [NAME] or end"),
    arg("--tags", nargs="+", default=[], metavar="K=V", help="tags for the run"),
    arg("--no-autolog", action="store_true", help="don't log scikit-learn fits and scores"),
    arg("--status", default="FINISHED", help="with `run end`: FINISHED, FAILED or KILLED"),
    cell=True,
)
def run(magics, args, cell):
    tags = parse_pairs(args.tags, "tag", numbers=False)
    if cell is not None:
        if len(args.name) > 1:
            raise UsageError(f"a run has one name, got {' '.join(args.name)!r}; quote it or use dashes")
        return run_cell(magics, args.name[0] if args.name else None, tags, cell, not args.no_autolog)
    action, *rest = args.name or ["?"]
    if action == "start":
        if len(rest) > 1:
            raise UsageError("usage: %mlops run start [NAME] [--tags K=V ...]")
        active = api.active_run()
        if active is not None:
            raise UsageError(f"run {active.name} is active; end it with %mlops run end first")
        started = api.start_run(rest[0] if rest else None, tags=tags)
        print(f"run {started.name} ({started.id[:8]}) started in experiment {started.experiment}")
        return started
    if action == "end":
        active = api.active_run()
        if active is None:
            raise UsageError("no active run to end")
        api.end_run(args.status.upper())
        magics.show(_summary(active))
        return None
    raise UsageError("as a line magic, use `%mlops run start [NAME]` or `%mlops run end`; %%mlops run runs a cell")


def run_cell(magics, name, tags, cell, autolog):
    """Run ``cell`` through the shell inside a new run; a failing cell fails the run."""
    started = time.perf_counter()
    active = api.start_run(name, tags=tags, code=cell)
    if autolog and magics.autolog:
        from ..tracking.autolog import autolog as autolog_context

        logging = autolog_context(active, magics.shell.user_ns)
    else:
        logging = nullcontext()
    try:
        with logging:
            result = magics.shell.run_cell(cell, store_history=False)
    except BaseException:
        api.end_run("FAILED", run=active)
        raise
    error = result.error_in_exec or result.error_before_exec
    status = "FINISHED" if error is None else ("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
    api.end_run(status, run=active)
    magics.show(_summary(active, time.perf_counter() - started))
    if error is not None:
        # One line after the cell's own traceback, and an error status so "Run All" stops here.
        raise UsageError(f"run {active.name} ({active.id[:8]}) marked {status}: {type(error).__name__}: {error}")
    return None


def _summary(run, duration=None):
    from .display import run_summary_view

    return run_summary_view(api.get_run(run), duration=duration)


@command(
    "log",
    "Log metrics (numbers) to the active run.",
    arg("pairs", nargs="+", metavar="K=V"),
    arg("--step", type=int, help="the step these values belong to (default: counts up per metric)"),
)
def log(magics, args, cell):
    api.log_metrics(parse_pairs(args.pairs, "a metric", numbers=True), step=args.step)


@command("param", "Log params to the active run.", arg("pairs", nargs="+", metavar="K=V"))
def param(magics, args, cell):
    api.log_params(parse_pairs(args.pairs, "a param", numbers=False))


@command(
    "runs",
    "Runs as a table; e.g. --filter \"metrics.auc > 0.8 and params.model = 'rf'\".",
    arg("--experiment", metavar="E", help="only this experiment (default: the active one; 'all' for every one)"),
    arg("--filter", metavar="EXPR", help="filter expression"),
    arg("--sort", metavar="KEY", help="e.g. 'metrics.auc desc'"),
    arg("--limit", type=int, metavar="N", help="at most N runs (default: display_limit)"),
)
def runs(magics, args, cell):
    from .display import rich_frame, runs_frame_view

    experiment = args.experiment or api.active_experiment()
    experiment = None if experiment == "all" else experiment
    limit = args.limit or magics.display_limit

    def query(filter, order_by):
        return api.search_runs(filter, experiment=experiment, order_by=order_by, limit=limit)

    frame = query(args.filter, args.sort)
    live = magics.live
    return rich_frame(
        frame,
        lambda f: runs_frame_view(f, live=live, query=query, limit=limit, filter=args.filter, order_by=args.sort),
    )


@command("compare", "Runs side by side: params, metrics, and metric curves as plots.", arg("runs", nargs="+", metavar="RUN"))
def compare(magics, args, cell):
    from .display import Progress, compare_view, rich_frame

    if len(args.runs) < 2:
        raise UsageError("compare needs at least two runs")
    recorded, histories = [], {}
    with Progress(len(args.runs), "loading runs", live=magics.live) as progress:
        for reference in args.runs:
            found = api.get_run(reference)
            recorded.append(found)
            histories[found["id"]] = {key: api.get_metric_history(found["id"], key) for key in found["metrics"]}
            progress.update()
    import pandas

    table = pandas.DataFrame(
        {
            f"{r['name']} ({r['id'][:8]})": {
                **{f"params.{k}": v for k, v in r["params"].items()},
                **{f"metrics.{k}": v for k, v in r["metrics"].items()},
            }
            for r in recorded
        }
    )
    live = magics.live
    return rich_frame(table, lambda _: compare_view(recorded, histories, live=live))


@command(
    "register",
    "Register a fitted model held in a notebook variable as a new version.",
    arg("variable", metavar="VAR", help="the variable holding the fitted model (or VAR.attribute)"),
    arg("--name", required=True, help="registered model name"),
    arg("--run", metavar="RUN", help="the run it came from (default: the active run, else the last one)"),
    arg("--primary-metric", metavar="METRIC", help="the metric promotion gates compare"),
    arg("--description", metavar="TEXT"),
)
def register(magics, args, cell):
    model = magics.variable(args.variable)
    run_reference = args.run
    if run_reference is None and api.active_run() is None:
        latest = api.search_runs(experiment=api.active_experiment(), limit=1, output="list")
        run_reference = latest[0]["id"] if latest else None
    version = api.register_model(
        model, args.name, run=run_reference, primary_metric=args.primary_metric, description=args.description
    )
    source = f" from run {version['run_id'][:8]}" if version["run_id"] else ""
    print(f"registered {args.name} version {version['version']}{source}")
    return version


@command(
    "promote",
    "Give a model version an alias, if the promotion gates pass.",
    arg("name", metavar="NAME"),
    arg("version", metavar="VERSION"),
    arg("--to", required=True, metavar="ALIAS", help="staging, production or any alias"),
    arg("--reason", metavar="TEXT", help="why; recorded"),
    arg("--force", action="store_true", help="override failed gates (needs --reason)"),
)
def promote(magics, args, cell):
    result = api.promote(args.name, args.version, args.to, reason=args.reason, force=args.force)
    if result["changed"]:
        previous = f"v{result['from_version']}" if result["from_version"] else "nobody"
        print(f"{args.name}@{result['alias']}: {previous} -> v{result['to_version']}")
    else:
        print(f"{args.name} v{result['to_version']} already holds {result['alias']}")
    return result


@command(
    "demote",
    "Take an alias away from a model.",
    arg("name", metavar="NAME"),
    arg("alias", metavar="ALIAS"),
    arg("--reason", metavar="TEXT"),
)
def demote(magics, args, cell):
    result = api.demote(args.name, args.alias, reason=args.reason)
    print(f"{args.name}@{result['alias']}: v{result['from_version']} -> nobody")
    return result


@command("models", "Registered models, or one model's versions with promote actions.", arg("name", nargs="?", metavar="NAME"))
def models(magics, args, cell):
    import pandas

    from .display import models_view, rich_frame, versions_view

    live = magics.live
    if args.name is None:
        listed = api.list_models()
        return rich_frame(pandas.DataFrame(listed), lambda _: models_view(listed, live=live))
    versions = api.list_versions(args.name)
    history = api.model_history(args.name)
    return rich_frame(
        pandas.DataFrame(versions), lambda _: versions_view(args.name, versions, history, live=live, api=api)
    )


@command("load", "The model object for NAME@ALIAS or NAME/VERSION.", arg("reference", metavar="NAME@ALIAS"))
def load(magics, args, cell):
    return api.load_model(args.reference)


_background_server = []  # the one server this kernel runs, if any


@command(
    "serve",
    "Serve online features and predictions over HTTP from this kernel, in the background "
    "(`%mlops serve stop` stops it; `%mlops serve status` shows it). Endpoints: see `mlops serve --help`.",
    arg("action", nargs="?", choices=["start", "stop", "status"], default="start"),
    arg("--env", choices=["staging", "production"], default="staging", help="the env served (default: staging)"),
    arg("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"),
    arg("--port", type=int, default=8000, help="port (default: 8000)"),
)
def serve(magics, args, cell):
    from ..serving.server import BackgroundServer

    server = _background_server[0] if _background_server else None
    if args.action == "stop":
        if server is None:
            raise UsageError("no server is running in this kernel")
        server.stop()
        _background_server.clear()
        print(f"stopped serving {server.state.env} on {server.url}; "
              f"{server.state.request_log.rows_written} requests recorded")
    elif args.action == "status":
        if server is None:
            print("not serving (start with %mlops serve --env staging)")
        else:
            models = ", ".join(f"{name} v{m.version}" for name, m in sorted(server.state.models.items())) or "none"
            print(f"serving {server.state.env} on {server.url}; models: {models}; "
                  f"{server.state.request_log.rows_written} requests recorded")
    else:
        if server is not None:
            raise UsageError(f"already serving {server.state.env} on {server.url}; %mlops serve stop first")
        server = BackgroundServer(args.env, host=args.host, port=args.port).start()
        _background_server.append(server)
        models = ", ".join(f"{name} v{m.version}" for name, m in sorted(server.state.models.items())) or "none yet"
        print(f"serving {args.env} on {server.url} (models: {models}); stop with %mlops serve stop")
    return server


@command(
    "lineage",
    "Where a model version came from: run, pipeline, notebook, training set, feature versions, sources; as a graph.",
    arg("reference", metavar="NAME[@ALIAS]", help="a model (its latest version), NAME@ALIAS or NAME/VERSION"),
)
def lineage(magics, args, cell):
    from .display import lineage_view

    found = api.lineage(args.reference)
    magics.show(lineage_view(found, live=magics.live))
    return found


_RELATIVE_TIME = re.compile(r"^(\d+(?:\.\d+)?)\s*(m|min|h|d|w)$")
_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_option(text):
    """``--since``: a duration back from now (30m, 24h, 7d, 2w) or an ISO date/time; epoch seconds."""
    from datetime import datetime, timezone

    if text is None:
        return None
    relative = _RELATIVE_TIME.match(text.strip())
    if relative:
        return time.time() - float(relative.group(1)) * _SECONDS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since takes a duration like 24h or 7d, or a date like 2026-01-31, not {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


@command(
    "monitor",
    "How a served model does: drift of served inputs against its training set, predictions over time, "
    "performance where labels came back.",
    arg("name", metavar="NAME"),
    arg("--env", default="production", help="the alias served (default: production)"),
    arg("--since", metavar="T", help="only requests since T: 24h, 7d or a date (default: all)"),
    arg("--bucket", default="auto", choices=["auto", "hour", "day"], help="time buckets of the plots"),
)
def monitor(magics, args, cell):
    from .display import monitor_view

    result = api.monitor(args.name, env=args.env, since=since_option(args.since), bucket=args.bucket)
    magics.show(monitor_view(result, live=magics.live))
    return result


@command(
    "audit",
    "Who created, read, promoted and served what, and when (served requests counted per day).",
    arg("--object", metavar="NAME", help="one model, feature, run or training set"),
    arg("--user", metavar="U", help="one user (for served requests: who created the token)"),
    arg("--since", metavar="T", help="24h, 7d or a date"),
    arg("--limit", type=int, default=1000, metavar="N", help="at most N rows (default 1000)"),
)
def audit(magics, args, cell):
    from .display import audit_view, rich_frame

    frame = api.audit_report(args.object, user=args.user, since=since_option(args.since), limit=args.limit)
    limit = magics.display_limit
    return rich_frame(frame, lambda f: audit_view(f, limit=limit))


@command(
    "feature",
    "As a cell magic, the cell computes a feature and registers it; `%mlops feature show NAME[@V]` shows one.",
    arg("name", nargs="+", metavar="NAME", help="cell: the feature's name; line: show NAME[@VERSION]"),
    arg("--entity", metavar="COL", help="cell: the entity column of the result"),
    arg("--timestamp", metavar="COL", help="cell: the timestamp column of the result"),
    arg("--source", nargs="+", default=None, metavar="VAR", help="cell: the source DataFrames (default: those the cell uses)"),
    arg("--description", metavar="TEXT"),
    cell=True,
)
def feature(magics, args, cell):
    if cell is None:
        if len(args.name) != 2 or args.name[0] != "show":
            raise UsageError("as a line magic, use `%mlops feature show NAME[@VERSION]`; %%mlops feature defines one")
        return show_feature(magics, args.name[1])
    if len(args.name) != 1:
        raise UsageError(f"a feature has one name, got {' '.join(args.name)!r}")
    if not args.entity or not args.timestamp:
        raise UsageError("%%mlops feature needs --entity COL and --timestamp COL")
    (name,) = args.name
    sources = {source: magics.variable(source) for source in (args.source or _dataframes_used(magics, cell))}
    result = magics.shell.run_cell(cell, store_history=False)
    error = result.error_in_exec or result.error_before_exec
    if error is not None:
        raise UsageError(f"feature {name} not registered: the cell raised {type(error).__name__}: {error}")
    values = result.result if result.result is not None else magics.shell.user_ns.get(name)
    version = api.register_feature(
        name, values, entity=args.entity, timestamp=args.timestamp, code=cell, sources=sources,
        description=args.description,
    )
    state = "registered as version" if version["created"] else "unchanged: still version"
    print(f"feature {name} {state} {version['version']} ({version['rows']:,} rows, {version['dtype']})")
    return None


def _dataframes_used(magics, cell):
    """Names the cell reads that hold DataFrames in the notebook: the feature's sources."""
    import ast

    try:
        tree = ast.parse(cell)
    except SyntaxError:
        return []  # running the cell reports the syntax error
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return []
    return sorted(n for n in names if isinstance(magics.shell.user_ns.get(n), pandas.DataFrame))


def show_feature(magics, reference):
    from .display import feature_view

    entry = api.get_feature(reference)
    view = feature_view(
        entry,
        versions=api.list_feature_versions(entry["name"]),
        expectations=api.current_registry().store.get_expectations(entry["name"]),
        training_sets=api.training_sets_using(entry["name"]),
        live=magics.live,
    )
    magics.show(view)
    if entry["version"] > 1:
        print(f"v{entry['version']} against v{entry['version'] - 1}: "
              f"{api.compare_feature_versions(entry['name'], new=entry['version'])['summary']}")
    return entry


@command(
    "expect",
    "Set a feature's expectations, e.g. min=0 max=1e6 nulls<=0.01 unique<=50 dtype=float64.",
    arg("name", metavar="NAME"),
    arg("rules", nargs="+", metavar="RULE"),
)
def expect(magics, args, cell):
    report = api.expect(args.name, *args.rules)
    print(f"{args.name}: {len(args.rules)} expectations set; on the latest version: {report.message()}")
    return report


@command("features", "Registered features, newest version of each.", arg("--search", metavar="TEXT"))
def features(magics, args, cell):
    import pandas

    from .display import features_view, rich_frame

    listed = api.list_features(args.search)
    live = magics.live
    return rich_frame(pandas.DataFrame(listed), lambda _: features_view(listed, live=live))


@command(
    "training-set",
    "Point-in-time join of features onto entity rows; returns the DataFrame and records it.",
    arg("name", metavar="NAME"),
    arg("--entities", required=True, metavar="VAR", help="DataFrame of entity, timestamp (and label) rows"),
    arg("--features", required=True, metavar="A,B…", help="features, optionally name@version"),
    arg("--label", metavar="COL", help="the label column of the entities"),
    arg("--max-age", metavar="AGE", help="ignore values older than this, e.g. 7D or 12h"),
)
def training_set(magics, args, cell):
    return api.training_set(
        args.name, magics.variable(args.entities), args.features, label=args.label, max_age=args.max_age
    )


@command(
    "convert",
    "Turn a notebook into a pipeline folder: steps, their inputs and outputs, one function each.",
    arg("notebook", nargs="?", metavar="NOTEBOOK", help="the .ipynb file (default: this notebook, as saved)"),
    arg("--out", metavar="DIR", help="where to write it (default: NOTEBOOK_pipeline beside the notebook)"),
)
def convert(magics, args, cell):
    import os

    notebook = args.notebook or magics.shell.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
    if not notebook:
        raise UsageError("which notebook? %mlops convert NOTEBOOK.ipynb (this kernel does not know its notebook)")
    pipeline = api.convert(notebook, out=args.out)
    spec = pipeline.spec
    print(f"{len(spec.steps)} steps written to {pipeline.directory}:")
    for step in spec.steps:
        print(f"  {step.name}: needs {', '.join(step.arguments) or '-'}; gives {', '.join(step.returns) or '-'}")
    for warning in spec.warnings:
        print(f"  warning, cell {warning['cell']}: {warning['message']}")
    print(f"run it with: mlops pipeline run {pipeline.directory}")
    return pipeline


def overview():
    lines = ["%mlops COMMAND [options]  — `%mlops help COMMAND` shows one command's options", ""]
    for name, function in COMMANDS.items():
        lines.append(f"  {name:<11} {function.help}")
    lines += [
        "",
        "Line magics expand $var and {expression}. Table commands return their value: df = %mlops runs.",
        "Settings: %config MlopsMagics.autolog = False (also registry_url, default_experiment, display_limit, widgets).",
    ]
    return "\n".join(lines)


MlopsMagics.mlops.__doc__ = overview()
