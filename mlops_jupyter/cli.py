"""The ``mlops`` command: parses arguments, calls the Python API, prints the result.

A user mistake prints one line, ``mlops: error: …``, and exits with status 1 (2 for
arguments argparse itself rejects); nothing is changed in the registry.
"""

import argparse
import json
import re
import sys
from datetime import datetime, timezone

HELP_WIDTH = 88  # fixed, so --help reads the same everywhere and the README can quote it


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, width=HELP_WIDTH)


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry",
        metavar="URL",
        help="registry to use: sqlite:///PATH or postgresql://USER@HOST/DB "
        "(default: $MLOPS_REGISTRY_URL, else the nearest .mlops/registry.db)",
    )
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Track experiments, register and promote models: the registry behind mlops-jupyter.",
        formatter_class=_formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, help, description=None):
        return commands.add_parser(
            name, help=help, description=description or help, parents=[common], formatter_class=_formatter
        )

    runs = command(
        "runs",
        "list runs, filtered and sorted",
        "List runs, newest first unless --sort says otherwise. The table shows every metric\n"
        "and the params that --filter or --sort name; --format json shows everything.\n\n"
        "Filter examples:\n"
        "  metrics.auc > 0.8 and params.model = 'rf'\n"
        "  status = 'FAILED' or tags.team IN ('a', 'b')\n"
        "  name LIKE 'grid-%' and start_time >= '2026-01-31'",
    )
    runs.add_argument("--experiment", metavar="NAME", action="append", help="only this experiment (repeatable)")
    runs.add_argument("--filter", metavar="EXPR", help="filter expression (see examples above)")
    runs.add_argument("--sort", metavar="KEY", help="e.g. 'metrics.auc desc, start_time' or --sort=-metrics.auc")
    runs.add_argument("--limit", metavar="N", type=int, default=50, help="at most N runs (default: 50)")
    runs.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")

    show = command("show", "everything recorded about one run")
    show.add_argument("run", metavar="RUN", help="run id, unique id prefix, or unique run name")
    show.add_argument("--format", choices=("text", "json"), default="text", help="output format")

    command("experiments", "list experiments with their run counts")

    models = command("models", "list registered models, or the versions of one")
    models.add_argument("name", metavar="NAME", nargs="?", help="show this model's versions")

    history = command("history", "every alias change of a model: who, when, from, to, why")
    history.add_argument("name", metavar="NAME")

    promote = command(
        "promote",
        "give a model version an alias (staging, production, …), if its gates pass",
    )
    promote.add_argument("name", metavar="NAME", help="registered model name")
    promote.add_argument("version", metavar="VERSION", help="version number")
    promote.add_argument("--to", metavar="ALIAS", required=True, help="alias to give, e.g. staging or production")
    promote.add_argument("--reason", metavar="TEXT", help="why; recorded with the change")
    promote.add_argument("--force", action="store_true", help="override failed gates (needs --reason)")

    demote = command("demote", "take an alias away from a model")
    demote.add_argument("name", metavar="NAME")
    demote.add_argument("alias", metavar="ALIAS")
    demote.add_argument("--reason", metavar="TEXT", help="why; recorded with the change")

    audit = command("audit", "who did what to which object, newest first")
    audit.add_argument("--object", metavar="NAME", help="a run id or a model or experiment name")
    audit.add_argument("--user", metavar="USER", help="only this user's actions")
    audit.add_argument("--limit", metavar="N", type=int, default=50, help="at most N entries (default: 50)")

    convert = command(
        "convert",
        "turn a notebook into a pipeline folder (no registry needed)",
        "Write a pipeline: pipeline.json (steps, inputs, outputs, parameters, code hashes) and\n"
        "one plain Python module per step. Cell tags: step:NAME starts a step (untagged cells join\n"
        "the step above), parameters marks the parameters cell, skip and raises-exception keep a\n"
        "cell out. Without tags, steps split at Markdown headings.",
    )
    convert.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file")
    convert.add_argument("-o", "--out", metavar="DIR", help="output folder (default: NOTEBOOK's name + _pipeline)")

    pipeline = command("pipeline", "run, export or verify a converted pipeline")
    verbs = pipeline.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name, help):
        parser = verbs.add_parser(name, help=help, description=help, parents=[common], formatter_class=_formatter)
        parser.add_argument("directory", metavar="DIR", help="the folder mlops convert wrote")
        return parser

    run = verb("run", "run the pipeline; steps whose code, parameters and inputs are unchanged are skipped")
    run.add_argument("--param", metavar="K=V", action="append", default=[], help="override a parameter (repeatable)")
    run.add_argument("--executor", choices=("local", "dask"), default="local", help="where steps run (default: local)")
    run.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (default: a LocalCluster)")
    run.add_argument("--only", metavar="STEP", help="run up to this step (what it needs, from cache when unchanged)")

    export = verb("export", "write a job for another orchestrator that runs the pipeline's steps")
    export.add_argument("--to", choices=("kfp", "airflow"), required=True, help="target orchestrator")
    export.add_argument("-o", "--out", metavar="PATH", help="output file (default: inside DIR)")

    verify = verb("verify", "run the pipeline and the notebook; compare each step's outputs")
    verify.add_argument("--param", metavar="K=V", action="append", default=[], help="override a parameter (repeatable)")

    command(
        "demo",
        "train three models, track them, register the best, promote it and load it back",
    )

    serve = command(
        "serve",
        "serve online features and predictions over HTTP, behind bearer tokens",
        "Serve one env of the registry over HTTP until Ctrl-C. Every request needs\n"
        "'Authorization: Bearer TOKEN' with a token of that env (mlops token create).\n"
        "  GET  /features/NAME/ENTITY          one feature value of one entity\n"
        "  POST /features                      {\"features\": [...], \"entities\": [...]}\n"
        "  POST /models/NAME/predict           {\"records\": [{column: value}...]} or {\"entities\": [...]}\n"
        "  GET  /health, /ready, /metrics      liveness, loaded models, Prometheus metrics\n"
        "Predictions come from the version holding the env's alias, followed within a second\n"
        "when it moves. Every feature and prediction request is recorded for monitoring.",
    )
    serve.add_argument("--env", choices=("staging", "production"), default="staging",
                       help="which env's alias and online features to serve (default: staging)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--max-body", metavar="BYTES", type=int, default=1024 * 1024,
                       help="larger request bodies are refused with 413 (default: 1 MiB)")

    token = command("token", "create, list or revoke the bearer tokens of mlops serve")
    token_verbs = token.add_subparsers(dest="verb", metavar="VERB", required=True)

    def token_verb(name, help):
        return token_verbs.add_parser(name, help=help, description=help, parents=[common], formatter_class=_formatter)

    create = token_verb("create", "create a token and print it, this once (the registry keeps only its hash)")
    create.add_argument("--env", choices=("staging", "production"), required=True, help="the env it may serve")
    create.add_argument("--role", choices=("serve", "admin"), default="serve",
                        help="serve: features and predictions; admin: also administration (default: serve)")
    create.add_argument("--description", metavar="TEXT", help="what or who it is for")
    token_verb("list", "list tokens: id, env, role, who created or revoked them and when")
    revoke = token_verb("revoke", "revoke a token: servers refuse it within a second")
    revoke.add_argument("id", metavar="ID", help="the token's id (tok_…), from mlops token list")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .errors import MlopsError

    try:
        if args.command not in ("demo", "convert"):
            from . import api

            api.connect(args.registry)
        status = HANDLERS[args.command](args)
    except MlopsError as error:
        print(f"mlops: error: {error}", file=sys.stderr)
        return 1
    return status or 0


def _when(seconds):
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def print_table(rows, columns):
    """Rows of dicts as aligned text columns."""
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip())
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _runs(args):
    from . import api

    rows = api.search_runs(args.filter, experiment=args.experiment, order_by=args.sort, limit=args.limit, output="list")
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    metric_keys = sorted({key for row in rows for key in row["metrics"]})
    # Params can be dozens per run: show those the filter or sort names (JSON has them all).
    named = set(re.findall(r"params\.([\w./:-]+)", f"{args.filter or ''} {args.sort or ''}"))
    param_keys = sorted({key for row in rows for key in row["params"]} & named)
    flat = [
        {
            "run": row["id"][:8],
            "name": row["name"],
            "experiment": row["experiment"],
            "status": row["status"],
            "started": _when(row["start_time"]),
            **{f"metrics.{k}": row["metrics"].get(k) for k in metric_keys},
            **{f"params.{k}": row["params"].get(k) for k in param_keys},
        }
        for row in rows
    ]
    columns = ["run", "name", "experiment", "status", "started"]
    columns += [f"metrics.{k}" for k in metric_keys] + [f"params.{k}" for k in param_keys]
    if args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, columns)
        writer.writeheader()
        writer.writerows(flat)
    else:
        print_table(flat, columns)


def _show(args):
    from . import api

    run = api.get_run(args.run)
    if args.format == "json":
        print(json.dumps(run, indent=2, default=str))
        return
    for field in ("id", "name", "experiment", "status", "user", "parent_run_id", "notebook_path",
                  "source_path", "git_commit", "python_version", "code_hash"):
        print(f"{field:<14} {run[field] if run[field] is not None else '-'}")
    print(f"{'started':<14} {_when(run['start_time'])}")
    print(f"{'ended':<14} {_when(run['end_time'])}")
    for kind in ("params", "metrics", "tags"):
        if run[kind]:
            print(f"\n{kind}")
            for key, value in sorted(run[kind].items()):
                print(f"  {key:<20} {_cell(value)}")
    if run["datasets"]:
        print("\ndatasets")
        for dataset in run["datasets"]:
            shape = "x".join(str(n) for n in dataset["schema"]["shape"])
            print(f"  {dataset['name']:<20} {dataset['context']:<10} {shape:<12} {dataset['digest'][:12]}")
    if run["artifacts"]:
        print("\nartifacts")
        for artifact in run["artifacts"]:
            print(f"  {artifact['path']:<30} {artifact['size']:>10} B  {artifact['sha256'][:12]}")


def _experiments(args):
    from . import api

    print_table(api.list_experiments(), ["name", "runs", "created_by"])


def _models(args):
    from . import api

    if args.name is None:
        rows = [
            {**model, "aliases": ", ".join(f"{a}=v{v}" for a, v in sorted(model["aliases"].items())) or "-"}
            for model in api.list_models()
        ]
        print_table(rows, ["name", "latest_version", "aliases", "created_by"])
        return
    rows = [
        {
            "version": version["version"],
            "aliases": ", ".join(version["aliases"]) or "-",
            "run": (version["run_id"] or "-")[:8],
            "class": version["model_class"].rsplit(".", 1)[-1],
            "metrics": ", ".join(f"{k}={_cell(v)}" for k, v in sorted(version["metrics"].items())) or "-",
            "created": _when(version["created_at"]),
        }
        for version in api.list_versions(args.name)
    ]
    print_table(rows, ["version", "aliases", "run", "class", "metrics", "created"])


def _history(args):
    from . import api

    rows = [
        {
            **entry,
            "when": _when(entry["at"]),
            "from": f"v{entry['from_version']}" if entry["from_version"] else "-",
            "to": f"v{entry['to_version']}" if entry["to_version"] else "-",
            "forced": "yes" if entry["forced"] else "",
        }
        for entry in api.model_history(args.name)
    ]
    print_table(rows, ["when", "alias", "from", "to", "user", "forced", "reason"])


def _promote(args):
    from . import api

    result = api.promote(args.name, args.version, args.to, reason=args.reason, force=args.force)
    if not result["changed"]:
        print(f"{args.name} v{result['to_version']} already holds {result['alias']}; nothing changed")
        return
    previous = f"v{result['from_version']}" if result["from_version"] else "nobody"
    print(f"{args.name}@{result['alias']}: {previous} -> v{result['to_version']}")
    for verdict in result["verdicts"]:
        print(f"  {'passed' if verdict['passed'] else 'FAILED (forced)'}  {verdict['gate']}: {verdict['message']}")


def _demote(args):
    from . import api

    result = api.demote(args.name, args.alias, reason=args.reason)
    print(f"{args.name}@{result['alias']}: v{result['from_version']} -> nobody")


def _audit(args):
    from . import api

    rows = [
        {**entry, "when": _when(entry["at"]), "detail": json.dumps(entry["detail"]) if entry["detail"] else ""}
        for entry in api.audit(args.object, user=args.user, limit=args.limit)
    ]
    print_table(rows, ["when", "user", "action", "object_type", "object_name", "detail"])


def _convert(args):
    from . import api

    pipeline = api.convert(args.notebook, out=args.out)
    spec = pipeline.spec
    print(f"{len(spec.steps)} steps written to {pipeline.directory}")
    for step in spec.steps:
        needs = ", ".join(step.arguments) or "-"
        gives = ", ".join(step.returns) or "-"
        print(f"  {step.name:<20} needs {needs}; gives {gives}")
    for warning in spec.warnings:
        where = f"cell {warning['cell']}" if warning["cell"] is not None else "notebook"
        print(f"warning: {where}: {warning['message']}", file=sys.stderr)


def _pipeline(args):
    from . import api

    params = dict(_pair(text) for text in args.param) if "param" in args else {}
    if args.verb == "run":
        result = api.run_pipeline(
            args.directory, params=params, executor=args.executor, scheduler=args.scheduler, only=args.only
        )
        print(f"pipeline run {result['run_id'][:8]}: {result['summary']}")
    elif args.verb == "export":
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            written = api.export_pipeline(args.directory, args.to, out=args.out)
        print(f"wrote {written}")
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
    else:
        report = api.verify_pipeline(args.directory, params=params)
        print(report.text())
        return 0 if report.ok else 1  # a script can tell a reproducing pipeline from one that doesn't


def _pair(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        from .errors import InvalidInput

        raise InvalidInput(f"--param must be written key=value, got {text!r}")
    from .pipeline.spec import parse_value

    return key, parse_value(value)


def _demo(args):
    from .demo import run_demo

    run_demo(args.registry)


def _serve(args):
    from .serving.server import serve

    serve(args.env, host=args.host, port=args.port, max_body_bytes=args.max_body)


def _token(args):
    from . import api

    if args.verb == "create":
        created = api.create_token(args.env, role=args.role, description=args.description)
        print(f"token {created['id']} ({created['env']}, {created['role']}); shown this once, keep it secret:")
        print(created["token"])
    elif args.verb == "list":
        rows = [{**row, "created": _when(row["created_at"]), "revoked": _when(row["revoked_at"])}
                for row in api.list_tokens()]
        print_table(rows, ["id", "env", "role", "description", "created", "created_by", "revoked"])
    else:
        api.revoke_token(args.id)
        print(f"revoked {args.id}")


HANDLERS = {
    "runs": _runs,
    "show": _show,
    "experiments": _experiments,
    "models": _models,
    "history": _history,
    "promote": _promote,
    "demote": _demote,
    "audit": _audit,
    "convert": _convert,
    "pipeline": _pipeline,
    "demo": _demo,
    "serve": _serve,
    "token": _token,
}

if __name__ == "__main__":
    sys.exit(main())
