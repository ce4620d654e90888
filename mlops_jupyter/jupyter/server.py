"""The Jupyter Server extension: the registry as JSON under ``{base_url}mlops/api/``, for the sidebar.

Every route calls ``mlops_jupyter.api`` in a worker thread, so a slow query never stalls the
server, and Jupyter's own authentication and XSRF protection apply to every request. A refused
request answers ``{"message": one line}``: 400 for bad input, 404 for an unknown name, 409 when
the registry's state refuses it (a failed gate, with its ``verdicts``).
"""

import asyncio
import functools
import importlib
import json
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from traitlets import Int, Unicode, default
from traitlets.config import LoggingConfigurable

from .. import api, config
from ..errors import GateFailed, IntegrityError, InvalidInput, MlopsError, NoActiveRun, NotFound

MAX_PAGE = 500
DEFAULT_PAGE = 50
WARM_MODULES = ("mlops_jupyter.registry.store", "pandas")  # SQL for every route, pandas for feature checks
VERSION_FIELDS = ("version", "aliases", "run_id", "metrics", "model_class", "created_at", "created_by", "description")


class MlopsServer(LoggingConfigurable):
    """Settings of the JupyterLab sidebar's server side: ``c.MlopsServer.NAME`` in jupyter_server_config.py."""

    registry_url = Unicode(
        help="Registry the sidebar shows and changes: sqlite:///PATH or postgresql://USER@HOST/DB. Default: "
        "$MLOPS_REGISTRY_URL, else the nearest .mlops/registry.db above the server's root_dir (a new one in "
        "root_dir/.mlops if there is none). Opened on the first request, not at server start.",
    ).tag(config=True)
    artifacts_url = Unicode(
        "",
        help="Where the registry's artifacts are: a folder or an fsspec URL. Empty: $MLOPS_ARTIFACTS_URL, "
        "else beside an SQLite registry, else the location the shared registry recorded.",
    ).tag(config=True)
    worker_threads = Int(
        4, help="Threads that run registry calls; each holds its own database connection."
    ).tag(config=True)
    root_dir = Unicode(help="The server's root_dir: notebooks to convert must be inside it.")

    @default("registry_url")
    def _registry_url_default(self):
        if os.environ.get(config.REGISTRY_ENV):
            return os.environ[config.REGISTRY_ENV]
        path = config.find_default_registry(self.root_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._executor = ThreadPoolExecutor(self.worker_threads, thread_name_prefix="mlops-api")
        self._connect_lock = threading.Lock()
        self._connected = False

    async def run(self, function, *args, registry=True, **kwargs):
        """``function(*args, **kwargs)`` in a worker thread, the registry opened first if it needs one."""
        if registry:
            call = functools.partial(self._connected_call, function, *args, **kwargs)
        else:
            call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def warm_up(self):
        """Import the registry's libraries in the background (about a second on a small machine), so
        the sidebar's first request does not wait for them; nothing is opened or created yet."""
        for module in WARM_MODULES:
            self._executor.submit(importlib.import_module, module)

    def _connected_call(self, function, *args, **kwargs):
        with self._connect_lock:
            if not self._connected:
                try:
                    api.connect(self.registry_url, artifacts=self.artifacts_url or None)
                except Exception as error:  # a bad URL, an unreachable database server: all the set-up's fault
                    first_line = (str(error).splitlines() or [type(error).__name__])[0]
                    raise RegistryUnavailable(
                        f"cannot open the registry {config.redact(self.registry_url)!r} "
                        f"(c.MlopsServer.registry_url): {first_line}"
                    ) from error
                self._connected = True
        return function(*args, **kwargs)


class RegistryUnavailable(Exception):
    """The configured registry cannot be opened: the server's set-up, not the request, is wrong."""


class Refused(tornado.web.HTTPError):
    """A request answered with ``status`` and the JSON ``{"message": message, **extra}``."""

    def __init__(self, status, message, **extra):
        super().__init__(status, "%s", message)  # the message as an argument: a '%' in it stays text
        self.body = {"message": message, **extra}

    @classmethod
    def from_error(cls, error):
        if isinstance(error, (InvalidInput, NoActiveRun)):
            status = 400
        elif isinstance(error, NotFound):
            status = 404
        elif isinstance(error, IntegrityError):
            status = 500  # stored bytes are damaged: nothing the request can fix
        else:
            status = 409  # a failed gate, a duplicate, an alias moved meanwhile: the registry's state refuses
        extra = {}
        if isinstance(error, GateFailed):
            extra["verdicts"] = [v.as_dict() if hasattr(v, "as_dict") else v for v in error.verdicts]
        return cls(status, str(error), **extra)


def _json_ready(value):
    """JSON that a browser parses: NaN and infinities (a diverging loss) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


class MlopsHandler(APIHandler):
    @property
    def mlops(self):
        return self.settings["mlops"]

    async def call(self, function, *args, **kwargs):
        try:
            return await self.mlops.run(function, *args, **kwargs)
        except MlopsError as error:
            raise Refused.from_error(error) from None
        except RegistryUnavailable as error:
            raise Refused(500, str(error)) from None

    def reply(self, body):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_json_ready(body), default=str))

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, Refused):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(_json_ready(error.body), default=str))
        else:
            super().write_error(status_code, **kwargs)

    def body_fields(self):
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError as error:
            raise Refused(400, f"the request body is not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise Refused(400, "the request body must be a JSON object")
        return body

    def int_argument(self, name, default, low, high=None):
        text = self.get_query_argument(name, str(default))
        try:
            value = int(text)
        except ValueError:
            raise Refused(400, f"{name} must be a whole number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise Refused(400, f"{name} must be {bounds}; got {value}")
        return value


def _field(body, name, kinds, what, *, required=True, default=None):
    """``body[name]`` if it has one of the JSON ``kinds``; a 400 naming the field otherwise."""
    if name not in body or body[name] is None:
        if required:
            raise Refused(400, f"field {name!r} is missing: it must be {what}")
        return default
    value = body[name]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise Refused(400, f"field {name!r} must be {what}, not {type(value).__name__} {value!r}")
    return value


class StatusHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        def status():
            return {"registry": config.redact(api.current_registry().url), "user": config.current_user(),
                    "experiment": api.active_experiment(), "counts": api.registry_overview()}

        self.reply(await self.call(status))


class FeaturesHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        self.reply({"items": await self.call(api.feature_summaries, self.get_query_argument("search", None))})


class FeatureHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self, name):
        def feature():
            return {"name": name, "versions": api.list_feature_versions(name),
                    "expectations": api.feature_expectations(name), "training_sets": api.training_sets_using(name)}

        self.reply(await self.call(feature))


class ExperimentsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        self.reply({"items": await self.call(api.list_experiments)})


class RunsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        limit = self.int_argument("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        offset = self.int_argument("offset", 0, 0)
        experiment = self.get_query_argument("experiment", None)
        filter = self.get_query_argument("filter", None) or None
        sort = self.get_query_argument("sort", None) or None

        def page():
            items = api.search_runs(filter, experiment=experiment, order_by=sort, limit=limit, offset=offset,
                                    output="list")
            return {"items": items, "total": api.count_runs(filter, experiment=experiment),
                    "limit": limit, "offset": offset}

        self.reply(await self.call(page))


class RunHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self, run_id):
        self.reply(await self.call(api.get_run, run_id))


class ModelsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        self.reply({"items": await self.call(api.list_models)})


class VersionsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self, name):
        def versions():
            items = [{field: version[field] for field in VERSION_FIELDS} for version in api.list_versions(name)]
            return {"items": items, "history": api.model_history(name)}

        self.reply(await self.call(versions))


class CheckHandler(MlopsHandler):
    @tornado.web.authenticated
    async def post(self, name):
        body = self.body_fields()
        version = _field(body, "version", (int,), "a version number")
        to = _field(body, "to", (str,), "an alias such as 'staging'")
        self.reply(await self.call(api.check_promotion, name, version, to))


class PromoteHandler(MlopsHandler):
    @tornado.web.authenticated
    async def post(self, name):
        body = self.body_fields()
        version = _field(body, "version", (int,), "a version number")
        to = _field(body, "to", (str,), "an alias such as 'staging'")
        reason = _field(body, "reason", (str,), "text", required=False)
        force = _field(body, "force", (bool,), "true or false", required=False, default=False)
        self.reply(await self.call(api.promote, name, version, to, reason=reason, force=force))


class DemoteHandler(MlopsHandler):
    @tornado.web.authenticated
    async def post(self, name):
        body = self.body_fields()
        alias = _field(body, "alias", (str,), "the alias to remove, such as 'staging'")
        reason = _field(body, "reason", (str,), "text", required=False)
        self.reply(await self.call(api.demote, name, alias, reason=reason))


class ConvertHandler(MlopsHandler):
    @tornado.web.authenticated
    async def post(self):
        body = self.body_fields()
        root = Path(self.mlops.root_dir).expanduser().resolve()
        notebook = _inside(root, _field(body, "path", (str,), "a notebook path relative to the server's root"),
                           "path")
        out = _field(body, "out", (str,), "a folder relative to the server's root", required=False)
        folder = _inside(root, out, "out") if out else None
        pipeline = await self.call(api.convert, str(notebook), out=folder, registry=False)
        self.reply({
            "directory": pipeline.directory.resolve().relative_to(root).as_posix(),
            "steps": [{"name": step.name, "cells": step.cells, "inputs": list(step.inputs),
                       "parameters": step.parameters, "outputs": step.outputs, "results": step.results}
                      for step in pipeline.spec.steps],
            "warnings": pipeline.spec.warnings,
        })


def _inside(root, relative, field):
    """``root / relative``, resolved, refused unless it stays inside ``root`` (symlinks followed)."""
    if not relative or "\x00" in relative:
        raise Refused(400, f"field {field!r} must be a non-empty path without NUL bytes")
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise Refused(400, f"field {field!r}: {relative!r} is outside the server's root folder")
    return target


ROUTES = [
    ("status", StatusHandler),
    ("features", FeaturesHandler),
    ("features/(?P<name>[^/]+)", FeatureHandler),
    ("experiments", ExperimentsHandler),
    ("runs", RunsHandler),
    ("runs/(?P<run_id>[^/]+)", RunHandler),
    ("models", ModelsHandler),
    ("models/(?P<name>[^/]+)/versions", VersionsHandler),
    ("models/(?P<name>[^/]+)/check", CheckHandler),
    ("models/(?P<name>[^/]+)/promote", PromoteHandler),
    ("models/(?P<name>[^/]+)/demote", DemoteHandler),
    ("convert", ConvertHandler),
]


def load(serverapp):
    """Add the routes to ``serverapp``; the registry is opened by the first request."""
    settings = MlopsServer(parent=serverapp, root_dir=str(serverapp.root_dir))
    web_app = serverapp.web_app
    web_app.settings["mlops"] = settings
    settings.warm_up()
    base = url_path_join(web_app.settings["base_url"], "mlops", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in ROUTES])
    serverapp.log.info("mlops_jupyter: registry API at %s", base)
