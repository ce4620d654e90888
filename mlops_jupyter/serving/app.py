"""The ASGI app of `mlops serve`: online features and predictions for one env, behind bearer tokens.

Routes (JSON in and out; every answer to a feature or prediction request carries its request
id in the ``X-Request-Id`` header and the body's ``request_id``):

* ``GET /health`` — the process is up; ``GET /ready`` — the registry answered the last check,
  and which model versions are loaded; ``GET /metrics`` — Prometheus text (any token of the env).
* ``GET /features/{name}/{entity}`` and ``POST /features`` ``{"features": [...], "entities": [...]}``.
* ``POST /models/{name}/predict`` ``{"records": [{column: value}...]}`` (checked against the
  signature of the version holding the env's alias) or ``{"entities": [...]}`` (the model's
  input columns fetched as online features of those entities).
* ``POST /admin/reload`` (admin token) — re-read tokens and aliases now.

The models holding the env's alias and the token list are re-read once a second by a
background thread, so a promotion or a revocation takes effect within a second, without a
restart and without a registry query on the request path.
"""

import bisect
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from .. import api
from ..errors import InvalidInput, MlopsError, NotFound
from ..features.online import check_env
from .request_log import RequestLog
from .tokens import token_sha256

logger = logging.getLogger(__name__)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
REFRESH_SECONDS = 1.0
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HTTPError(Exception):
    def __init__(self, status, message, field=None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass
class ServedModel:
    name: str
    version: int
    model: object
    columns: list  # input column names in the signature's order; None when the model was fitted on arrays
    kinds: list  # the JSON kind each column accepts (see _value_kind)
    n_features: int
    takes_array: bool = False  # named columns, but an array in their order predicts the same, ~6x faster


def _value_kind(dtype):
    """What JSON value a column of ``dtype`` accepts: "number", "integer", "bool", "text" or "any"."""
    if dtype is None:
        return "any"
    dtype = str(dtype).lower()
    if dtype.startswith("float"):
        return "number"
    if dtype.startswith(("int", "uint")):
        return "integer"
    if dtype in ("bool", "boolean"):
        return "bool"
    if dtype in ("object", "string", "str", "category") or dtype.startswith("datetime"):
        return "text"
    return "any"


def _check_value(value, kind, field):
    value_type = type(value)
    if kind == "any":
        return
    if kind == "number" and (value is None or value_type in (int, float)):
        return
    if kind == "integer" and (value_type is int or (value_type is float and value.is_integer())):
        return
    if kind == "bool" and value_type is bool:
        return
    if kind == "text" and (value is None or value_type is str):
        return
    raise HTTPError(422, f"{field}: expected {'an' if kind == 'integer' else 'a'} {kind}, got {json.dumps(value)}",
                    field)


class Metrics:
    """Request counts by route and status and a latency histogram per route, as Prometheus text."""

    def __init__(self):
        self.counts = {}  # (route, status) -> n
        self.histograms = {}  # route -> [bucket counts..., +Inf count, sum]

    def observe(self, route, status, seconds):
        key = (route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.histograms.get(route)
        if histogram is None:
            histogram = self.histograms[route] = [0] * (len(_LATENCY_BUCKETS) + 1) + [0.0]
        histogram[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def render(self, env, models, request_log):
        lines = ["# TYPE mlops_requests_total counter"]
        for (route, status), count in sorted(self.counts.items()):
            lines.append(f'mlops_requests_total{{route="{route}",status="{status}"}} {count}')
        lines.append("# TYPE mlops_request_duration_seconds histogram")
        for route, histogram in sorted(self.histograms.items()):
            cumulative = 0
            for bound, count in zip((*_LATENCY_BUCKETS, "+Inf"), histogram[:-1]):
                cumulative += count
                lines.append(f'mlops_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {cumulative}')
            lines.append(f'mlops_request_duration_seconds_sum{{route="{route}"}} {histogram[-1]}')
            lines.append(f'mlops_request_duration_seconds_count{{route="{route}"}} {cumulative}')
        lines.append("# TYPE mlops_model_version gauge")
        for name, served in sorted(models.items()):
            lines.append(f'mlops_model_version{{model="{name}",env="{env}"}} {served.version}')
        lines += [
            "# TYPE mlops_request_log_rows_written_total counter",
            f"mlops_request_log_rows_written_total {request_log.rows_written}",
            "# TYPE mlops_request_log_pending gauge",
            f"mlops_request_log_pending {request_log.pending()}",
        ]
        return "\n".join(lines) + "\n"


def _json_response(body, status=200, request_id=None):
    headers = {"X-Request-Id": request_id} if request_id else None
    return Response(json.dumps(body, default=str), status_code=status, headers=headers,
                    media_type="application/json")


class ServingApp:
    """The state behind the routes: loaded models, known tokens, metrics and the request log."""

    def __init__(self, env, *, max_body_bytes=DEFAULT_MAX_BODY_BYTES, log_flush_seconds=0.05, log_batch_rows=500):
        self.env = check_env(env)
        self.max_body_bytes = max_body_bytes
        self.store = api.current_registry().store
        self.models = {}  # name -> ServedModel: replaced whole, never mutated, so readers need no lock
        self.tokens = {}  # token sha256 -> (id, env, role)
        self.metrics = Metrics()
        self.ready = False
        self._log_options = {"flush_seconds": log_flush_seconds, "batch_rows": log_batch_rows}
        self.request_log = None
        self._stop = threading.Event()
        self._refresher = None
        self._refresh_lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/health", self._instrumented("/health", self.health)),
                Route("/ready", self._instrumented("/ready", self.ready_check)),
                Route("/metrics", self._instrumented("/metrics", self.metrics_text)),
                Route("/features/{name}/{entity}", self._served("/features/{name}/{entity}", "features",
                                                                self.feature_one)),
                Route("/features", self._served("/features", "features", self.features_many), methods=["POST"]),
                Route("/models/{name}/predict", self._served("/models/{name}/predict", "predict", self.predict),
                      methods=["POST"]),
                Route("/admin/reload", self._instrumented("/admin/reload", self.reload), methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self):
        self.request_log = RequestLog(self.store, **self._log_options)
        self.refresh()
        self._stop.clear()
        self._refresher = threading.Thread(target=self._refresh_loop, name="mlops-serve-refresh", daemon=True)
        self._refresher.start()

    def stop(self):
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        if self.request_log is not None:
            self.request_log.close()

    @asynccontextmanager
    async def _lifespan(self, _app):
        self.start()
        try:
            yield
        finally:
            self.stop()

    def _refresh_loop(self):
        while not self._stop.wait(REFRESH_SECONDS):
            self.refresh()

    def refresh(self):
        """Re-read the tokens and the env's alias holders; load the versions that changed."""
        with self._refresh_lock:
            try:
                self.tokens = self.store.active_tokens()
                holders = self.store.alias_holders(self.env)
            except Exception as error:  # the registry is unreachable: keep serving what is loaded
                self.ready = False
                logger.warning("registry check failed: %s", str(error).splitlines()[0])
                return
            models = {}
            for name, version in holders.items():
                current = self.models.get(name)
                if current is not None and current.version == version:
                    models[name] = current
                    continue
                try:
                    models[name] = self._load(name, version)
                except MlopsError as error:  # e.g. a damaged artifact: serve the previous version
                    logger.error("cannot load model %s v%s: %s", name, version, error)
                    if current is not None:
                        models[name] = current
                    continue
                logger.info("serving model %s v%s in %s", name, version, self.env)
            self.models = models
            self.ready = True

    @staticmethod
    def _load(name, version):
        entry = api.get_model_version(f"{name}/{version}")
        inputs = entry["signature"].get("inputs") or []
        named = bool(inputs) and all(column["name"] for column in inputs)
        served = ServedModel(
            name=name,
            version=version,
            model=api.load_model(f"{name}/{version}"),
            columns=[column["name"] for column in inputs] if named else None,
            kinds=[_value_kind(column["dtype"]) for column in inputs],
            n_features=entry["signature"].get("n_features") or len(inputs),
        )
        served.takes_array = _array_predicts_the_same(served)
        return served

    # ---- plumbing -------------------------------------------------------------------------

    def _instrumented(self, route, handler):
        observe = self.metrics.observe

        async def endpoint(request):
            started = time.perf_counter()
            try:
                response = await handler(request)
            except HTTPError as error:
                response = _json_response(_error_body(error), error.status)
            observe(route, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    def _served(self, route, kind, handler):
        """A feature or prediction route: authorised, timed, and recorded in the request log."""
        observe, env = self.metrics.observe, self.env

        async def endpoint(request):
            started = time.perf_counter()
            request_id = uuid.uuid4().hex
            record = {"id": request_id, "at": time.time(), "env": env, "kind": kind,
                      "object_name": request.path_params.get("name", ""), "version": None, "token_id": None,
                      "rows": 0, "inputs": None, "outputs": None, "error": None}
            try:
                record["token_id"] = self._authorize(request, "serve")
                body = await handler(request, record)
                status = 200
                body["request_id"] = request_id
            except HTTPError as error:
                status, body = error.status, _error_body(error, request_id)
            except NotFound as error:
                status, body = 404, _error_body(HTTPError(404, str(error)), request_id)
            except InvalidInput as error:
                status, body = 422, _error_body(HTTPError(422, str(error)), request_id)
            except Exception as error:  # e.g. the model's own predict failing: answered, logged and recorded
                logger.exception("request %s failed", request_id)
                status, body = 500, _error_body(HTTPError(500, f"internal error: {type(error).__name__}"), request_id)
            elapsed = time.perf_counter() - started
            record["status"], record["latency_ms"] = status, elapsed * 1000.0
            if status != 200:
                record["error"], record["inputs"], record["outputs"] = body["error"], None, None
            self.request_log.record(record)
            observe(route, status, elapsed)
            return _json_response(body, status, request_id)

        return endpoint

    def _authorize(self, request, role):
        """The id of the request's token, if it may act in this env with ``role``; else 401/403."""
        header = request.headers.get("authorization")
        if not header:
            raise HTTPError(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                                 "(create one with `mlops token create`)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(401, "the Authorization header must be 'Bearer <token>'")
        digest = token_sha256(token.strip())
        entry = self.tokens.get(digest)
        if entry is None:
            # Created since the last refresh, or not a token: one indexed read, so a new token works at once.
            entry = self.store.active_token(digest)
        if entry is None:
            raise HTTPError(401, "unknown or revoked token")
        token_id, token_env, token_role = entry
        if token_env != self.env:
            raise HTTPError(403, f"token {token_id} is for env {token_env!r}; this server serves {self.env!r}")
        if role == "admin" and token_role != "admin":
            raise HTTPError(403, f"token {token_id} has role {token_role!r}; this needs an admin token")
        return token_id

    async def _json_body(self, request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HTTPError(413, f"request body of {declared} bytes is over the limit of {self.max_body_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HTTPError(413, f"request body is over the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except json.JSONDecodeError as error:
            raise HTTPError(422, f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}",
                            f"body at character {error.pos}") from None
        except UnicodeDecodeError:
            raise HTTPError(422, "the body is not UTF-8 JSON", "body") from None
        if not isinstance(body, dict):
            raise HTTPError(422, f"the body must be a JSON object, not {type(body).__name__}", "body")
        return body

    # ---- routes ---------------------------------------------------------------------------

    async def health(self, _request):
        return _json_response({"status": "ok"})

    async def ready_check(self, _request):
        models = {name: {"version": served.version, "alias": self.env} for name, served in self.models.items()}
        return _json_response({"ready": self.ready, "env": self.env, "models": models}, 200 if self.ready else 503)

    async def metrics_text(self, request):
        self._authorize(request, "serve")
        return Response(self.metrics.render(self.env, self.models, self.request_log),
                        media_type="text/plain; version=0.0.4")

    async def reload(self, request):
        self._authorize(request, "admin")
        self.refresh()
        return await self.ready_check(request)

    def _online(self, names, entities, record):
        values = api.get_online_features(names, entities, env=self.env, output="dict")
        for entity in entities:
            if all(value is None for value in values[entity].values()):
                raise HTTPError(404, f"entity {entity!r} has no online value for {', '.join(names)} in {self.env}",
                                "entities")
        record["inputs"], record["rows"] = entities, len(entities)
        return values

    async def feature_one(self, request, record):
        name, entity = request.path_params["name"], request.path_params["entity"]
        values = self._online([name], [entity], record)
        record["outputs"] = [values[entity]]
        return {"feature": name, "entity": entity, "value": values[entity][name]}

    async def features_many(self, request, record):
        body = await self._json_body(request)
        names = _list_field(body, "features", str)
        entities = _list_field(body, "entities", (int, str))
        record["object_name"] = ",".join(names)
        if len(set(entities)) != len(entities):
            raise HTTPError(422, "entities: an entity is listed twice", "entities")
        values = self._online(names, entities, record)
        record["outputs"] = [values[entity] for entity in entities]
        return {"entities": entities, "features": {name: [values[e][name] for e in entities] for name in names}}

    async def predict(self, request, record):
        name = request.path_params["name"]
        served = self.models.get(name)
        if served is None:
            raise HTTPError(404, f"no model {name!r} holds the alias {self.env!r} in this registry")
        record["version"] = served.version
        body = await self._json_body(request)
        if ("records" in body) == ("entities" in body):
            raise HTTPError(422, "give either 'records' (input rows) or 'entities' (ids to look up), not both",
                            "records")
        if "entities" in body:
            records = self._entity_records(served, _list_field(body, "entities", (int, str)), record)
        else:
            records = _list_field(body, "records", (dict, list))
            self._check_records(served, records)
        record["inputs"], record["rows"] = records, len(records)
        predictions = self._predict(served, records).tolist()
        record["outputs"] = predictions
        return {"model": name, "version": served.version, "predictions": predictions}

    def _entity_records(self, served, entities, record):
        if served.columns is None:
            raise HTTPError(422, f"model {served.name!r} was fitted without column names, so its inputs cannot be "
                                 "looked up by entity; send 'records'", "entities")
        values = self._online(served.columns, entities, record)
        return [values[entity] for entity in entities]

    @staticmethod
    def _check_records(served, records):
        for i, row in enumerate(records):
            if served.columns is None:
                if not isinstance(row, list) or len(row) != served.n_features:
                    raise HTTPError(422, f"records[{i}]: expected a list of {served.n_features} values "
                                         "(the model was fitted without column names)", f"records[{i}]")
                for j, (value, kind) in enumerate(zip(row, served.kinds)):
                    _check_value(value, kind, f"records[{i}][{j}]")
                continue
            if not isinstance(row, dict):
                raise HTTPError(422, f"records[{i}]: expected an object of column: value", f"records[{i}]")
            if len(row) != len(served.columns) or any(column not in row for column in served.columns):
                missing = [column for column in served.columns if column not in row]
                if missing:
                    raise HTTPError(422, f"records[{i}]: missing column {missing[0]!r} (the model takes "
                                         f"{', '.join(served.columns)})", f"records[{i}].{missing[0]}")
                unknown = sorted(set(row) - set(served.columns))[0]
                raise HTTPError(422, f"records[{i}]: unknown column {unknown!r} (the model takes "
                                     f"{', '.join(served.columns)})", f"records[{i}].{unknown}")
            for column, kind in zip(served.columns, served.kinds):
                _check_value(row[column], kind, f"records[{i}].{column}")

    @staticmethod
    def _predict(served, records):
        if served.columns is None:
            import numpy

            return served.model.predict(numpy.array(records, dtype=float))
        if served.takes_array:
            return _predict_on_array(served.model, [[row[column] for column in served.columns] for row in records])
        import pandas

        # Columns named as at fit time, in the signature's order: what a fitted sklearn model checks.
        return served.model.predict(
            pandas.DataFrame({column: [row[column] for row in records] for column in served.columns}))


def _predict_on_array(model, rows):
    """``model.predict`` on plain rows: sklearn's DataFrame checks cost ~2.5 ms of a ~3 ms prediction."""
    import warnings

    import numpy

    with warnings.catch_warnings():  # the model knows its columns' names; the array is in their order
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return model.predict(numpy.array(rows, dtype=float))


def _array_predicts_the_same(served):
    """Whether an array in the signature's column order is a safe stand-in for a DataFrame.

    Only numeric inputs qualify, and only if the model predicts the same on a probe row both ways:
    a pipeline that selects columns by name, for one, refuses an array (and keeps the DataFrame).
    """
    if served.columns is None or not all(kind in ("number", "integer", "bool") for kind in served.kinds):
        return False
    import pandas

    probe = [[float(i + 1) for i in range(len(served.columns))]]
    try:
        expected = served.model.predict(pandas.DataFrame(probe, columns=served.columns))
        return bool((_predict_on_array(served.model, probe) == expected).all())
    except Exception:  # any refusal of the array: the DataFrame path is the safe one
        return False


def _list_field(body, field, item_types):
    value = body.get(field)
    if not isinstance(value, list) or not value:
        raise HTTPError(422, f"{field}: expected a non-empty list", field)
    for i, item in enumerate(value):
        if not isinstance(item, item_types) or isinstance(item, bool):
            raise HTTPError(422, f"{field}[{i}]: unexpected value {json.dumps(item)}", f"{field}[{i}]")
    return value


def _error_body(error, request_id=None):
    body = {"error": error.message}
    if error.field is not None:
        body["field"] = error.field
    if request_id is not None:
        body["request_id"] = request_id
    return body
