"""The Store: every read and write of the registry database, and nothing else.

Each public method is one transaction. Writes take the write lock when they begin (see
``database.write_connection``) and add their audit row in the same transaction, so the
audit log can never disagree with what happened.
"""

import difflib
import json
import math
import os
import threading
import time
import uuid
from contextlib import contextmanager

import sqlalchemy as sa

from ..errors import AlreadyExists, InvalidInput, MlopsError, NotFound
from ..validation import numeric_or_none
from . import database, search
from .schema import (
    alias_transitions,
    aliases,
    api_tokens,
    artifacts,
    audit_log,
    code_snapshots,
    datasets,
    experiments,
    feature_expectations,
    feature_versions,
    features,
    latest_metrics,
    metrics,
    model_versions,
    online_features,
    params,
    prediction_labels,
    registered_models,
    registry_info,
    runs,
    served_requests,
    tags,
    training_set_features,
    training_sets,
)

RUNNING, FINISHED, FAILED, KILLED, CRASHED = "RUNNING", "FINISHED", "FAILED", "KILLED", "CRASHED"
RUN_STATUSES = (RUNNING, FINISHED, FAILED, KILLED, CRASHED)
_RUN_ID_PREFIX_MIN = 6


def _json(value):
    return json.dumps(value, sort_keys=True, default=str)


def _nan_from_null(value):
    return math.nan if value is None else value


def _audit_row(user, action, object_type, object_name, detail):
    return {
        "at": time.time(),
        "user": user,
        "action": action,
        "object_type": object_type,
        "object_name": object_name,
        "detail": None if detail is None else _json(detail),
    }


def did_you_mean(name, choices):
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Store:
    def __init__(self, url):
        self.url = url
        self.engine = database.create_engine(url)
        database.ensure_schema(self.engine)
        # Each dialect's module is imported only when used: PostgreSQL's pulls in asyncio (~0.1 s).
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self._insert = insert
        self._integrity_errors = (sa.exc.IntegrityError, self.engine.dialect.loaded_dbapi.IntegrityError)
        self._held = threading.local()
        self._prepared = {}
        self._experiment_ids = {}
        self._feature_keys = {}  # name -> (id, entity column); features are never deleted

    def close(self):
        self.engine.dispose()

    def _connection(self):
        """This thread's connection, kept open: a checkout per call would double logging's cost."""
        held = self._held
        connection = getattr(held, "connection", None)
        if connection is None or held.pid != os.getpid() or connection.invalidated or connection.closed:
            connection = self.engine.connect()
            held.connection, held.pid = connection, os.getpid()
        return connection

    @contextmanager
    def _transaction(self, write):
        connection = self._connection()
        try:
            with database.begin(connection, write):
                yield connection
        except sa.exc.DBAPIError as error:
            if error.connection_invalidated:  # e.g. a server restart dropped the held connection
                self._held.connection = None
            raise

    def _write(self):
        return self._transaction(write=True)

    def _read(self):
        return self._transaction(write=False)

    @contextmanager
    def _driver_write(self):
        """A write transaction run straight on the driver, for the paths a training loop hits.

        SQLAlchemy's per-statement work costs several times SQLite's own insert and commit;
        here each statement is compiled by SQLAlchemy once (``_execute_prepared``) and reused.
        """
        driver = self._connection().connection.driver_connection
        cursor = driver.cursor()
        try:
            if self.engine.dialect.name == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            driver.commit()
        except BaseException:
            driver.rollback()
            raise
        finally:
            cursor.close()

    def _execute_prepared(self, cursor, name, build, rows):
        """Run ``build()`` (compiled once per name and row keys) for ``rows``; return the rowcount.

        Inserts name their columns by the row keys; other statements use ``bindparam``s
        named like the row keys.
        """
        cache_key = (name, tuple(rows[0]))
        if cache_key not in self._prepared:
            statement = build()
            column_keys = list(rows[0]) if isinstance(statement, sa.Insert) else None
            compiled = statement.compile(dialect=self.engine.dialect, column_keys=column_keys)
            self._prepared[cache_key] = (str(compiled), compiled.positiontup if compiled.positional else None)
        sql, order = self._prepared[cache_key]
        values = [tuple(row[key] for key in order) for row in rows] if order else rows
        if len(values) == 1:
            cursor.execute(sql, values[0])
        else:
            cursor.executemany(sql, values)
        return cursor.rowcount

    def _audit_prepared(self, cursor, user, action, object_type, object_name, detail=None):
        row = _audit_row(user, action, object_type, object_name, detail)
        self._execute_prepared(cursor, "audit", lambda: sa.insert(audit_log), [row])

    def _upsert_statement(self, table, keys, update):
        statement = self._insert(table)
        return statement.on_conflict_do_update(
            index_elements=keys, set_={column: statement.excluded[column] for column in update}
        )

    def _upsert(self, connection, table, rows, keys, update):
        connection.execute(self._upsert_statement(table, keys, update), rows)

    def _lock_model(self, connection, model_id):
        """Serialise writers of one model's versions and aliases (SQLite's write lock already does)."""
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.select(registered_models.c.id).where(registered_models.c.id == model_id).with_for_update()
            )

    @staticmethod
    def _audit(connection, user, action, object_type, object_name, detail=None):
        connection.execute(sa.insert(audit_log), _audit_row(user, action, object_type, object_name, detail))

    # ---- registry facts -------------------------------------------------------------------

    def get_info(self, key):
        with self._read() as connection:
            return connection.execute(
                sa.select(registry_info.c.value).where(registry_info.c.key == key)
            ).scalar()

    def set_info_if_missing(self, key, value):
        """Record a fact once; return the value that is recorded (first writer wins)."""
        with self._write() as connection:
            connection.execute(
                self._insert(registry_info).on_conflict_do_nothing(index_elements=["key"]),
                {"key": key, "value": value},
            )
            return connection.execute(
                sa.select(registry_info.c.value).where(registry_info.c.key == key)
            ).scalar_one()

    # ---- experiments ----------------------------------------------------------------------

    def get_or_create_experiment(self, name, user):
        # Experiments are never deleted, so an id once seen can be remembered.
        if name not in self._experiment_ids:
            self._experiment_ids[name] = self._get_or_create_experiment(name, user)
        return self._experiment_ids[name]

    def _get_or_create_experiment(self, name, user):
        lookup = sa.select(experiments.c.id).where(experiments.c.name == name)
        with self._read() as connection:
            found = connection.execute(lookup).scalar()
        if found is not None:
            return found
        with self._write() as connection:
            # Two kernels may create the same experiment at once: the second insert does nothing.
            created = connection.execute(
                self._insert(experiments)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(experiments.c.id),
                {"name": name, "created_at": time.time(), "created_by": user},
            ).scalar()
            if created is None:
                return connection.execute(lookup).scalar_one()
            self._audit(connection, user, "create", "experiment", name)
            return created

    def experiment_ids(self, names):
        with self._read() as connection:
            rows = connection.execute(
                sa.select(experiments.c.name, experiments.c.id).where(experiments.c.name.in_(names))
            ).all()
        found = dict(rows)
        missing = [name for name in names if name not in found]
        if missing:
            known = [row["name"] for row in self.list_experiments()]
            raise NotFound(f"no experiment named {missing[0]!r}" + did_you_mean(missing[0], known))
        return [found[name] for name in names]

    def list_experiments(self):
        run_count = (
            sa.select(sa.func.count())
            .where(runs.c.experiment_id == experiments.c.id)
            .scalar_subquery()
            .label("runs")
        )
        with self._read() as connection:
            rows = connection.execute(
                sa.select(experiments.c.name, experiments.c.created_at, experiments.c.created_by, run_count)
                .order_by(experiments.c.name)
            ).mappings().all()
        return [dict(row) for row in rows]

    # ---- runs -----------------------------------------------------------------------------

    def create_run(self, experiment_id, name, user, *, parent_run_id=None, capture=None, owner=None, code=None):
        """Insert a RUNNING run; ``code`` is stored once per distinct text under ``capture["code_hash"]``."""
        run_id = uuid.uuid4().hex
        row = {
            "id": run_id,
            "experiment_id": experiment_id,
            "name": name or run_id[:8],
            "status": RUNNING,
            "user": user,
            "start_time": time.time(),
            "parent_run_id": parent_run_id,
            **(capture or {}),
            **(owner or {}),
        }
        try:
            with self._driver_write() as cursor:
                if code is not None:
                    self._execute_prepared(
                        cursor,
                        "code_snapshot",
                        lambda: self._insert(code_snapshots).on_conflict_do_nothing(index_elements=["sha256"]),
                        [{"sha256": row["code_hash"], "code": code}],
                    )
                self._execute_prepared(cursor, "create_run", lambda: sa.insert(runs), [row])
                self._audit_prepared(cursor, user, "start", "run", run_id, {"name": row["name"]})
        except self._integrity_errors:
            raise NotFound(f"no parent run with id {parent_run_id!r} (or no experiment {experiment_id})") from None
        return run_id

    def end_run(self, run_id, status, user):
        if status not in RUN_STATUSES or status == RUNNING:
            raise InvalidInput(
                f"status {status!r} is not one of {', '.join(s for s in RUN_STATUSES if s != RUNNING)}"
            )
        row = {"run_id": run_id, "new_status": status, "now": time.time()}
        with self._driver_write() as cursor:
            changed = self._execute_prepared(
                cursor,
                "end_run",
                lambda: sa.update(runs)
                .where(runs.c.id == sa.bindparam("run_id"))
                .values(status=sa.bindparam("new_status"), end_time=sa.bindparam("now"), owner_pid=sa.null()),
                [row],
            )
            if not changed:
                raise NotFound(f"no run with id {run_id!r}")
            self._audit_prepared(cursor, user, "end", "run", run_id, {"status": status})

    def _require_run(self, connection, run_id):
        if connection.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).scalar() is None:
            raise NotFound(f"no run with id {run_id!r}")

    def resolve_run_id(self, reference):
        """A run's id from its id, a unique id prefix (6+ characters) or a unique run name."""
        with self._read() as connection:
            if connection.execute(sa.select(runs.c.id).where(runs.c.id == reference)).scalar():
                return reference
            candidates = []
            if len(reference) >= _RUN_ID_PREFIX_MIN and all(c in "0123456789abcdef" for c in reference):
                candidates = connection.execute(
                    sa.select(runs.c.id).where(runs.c.id.startswith(reference, autoescape=True)).limit(5)
                ).scalars().all()
            if not candidates:
                candidates = connection.execute(
                    sa.select(runs.c.id).where(runs.c.name == reference).limit(5)
                ).scalars().all()
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFound(f"no run with id, id prefix or name {reference!r}")
        raise InvalidInput(
            f"{reference!r} matches several runs ({', '.join(c[:8] for c in candidates)}…); give more of the id"
        )

    def get_run(self, run_id):
        """Everything recorded about one run."""
        with self._read() as connection:
            row = connection.execute(
                sa.select(runs, experiments.c.name.label("experiment"))
                .join(experiments, experiments.c.id == runs.c.experiment_id)
                .where(runs.c.id == run_id)
            ).mappings().first()
            if row is None:
                raise NotFound(f"no run with id {run_id!r}")
            run = dict(row)
            run["packages"] = json.loads(run["packages"]) if run["packages"] else {}
            run["code"] = connection.execute(
                sa.select(code_snapshots.c.code).where(code_snapshots.c.sha256 == run["code_hash"])
            ).scalar()
            (extras,) = self._run_extras(connection, [run_id]).values()
            run.update(extras)
            run["artifacts"] = [
                dict(r)
                for r in connection.execute(
                    sa.select(artifacts.c.path, artifacts.c.sha256, artifacts.c.size)
                    .where(artifacts.c.run_id == run_id)
                    .order_by(artifacts.c.path)
                ).mappings()
            ]
            run["datasets"] = [
                {**dict(r), "schema": json.loads(r["schema"])}
                for r in connection.execute(
                    sa.select(
                        datasets.c.name, datasets.c.context, datasets.c.digest, datasets.c.rows, datasets.c.schema
                    )
                    .where(datasets.c.run_id == run_id)
                    .order_by(datasets.c.id)
                ).mappings()
            ]
        return run

    def _run_extras(self, connection, run_ids):
        """Latest metrics, params and tags of many runs in one query, whatever their number."""
        extras = {run_id: {"metrics": {}, "params": {}, "tags": {}} for run_id in run_ids}
        if not run_ids:
            return extras
        no_number, no_text = sa.null().cast(sa.Double), sa.null().cast(sa.Text)
        query = sa.union_all(
            *(
                sa.select(sa.literal(kind).label("kind"), table.c.run_id, table.c.key, number, text).where(
                    table.c.run_id.in_(run_ids)
                )
                for kind, table, number, text in (
                    ("metrics", latest_metrics, latest_metrics.c.value, no_text),
                    ("params", params, no_number, params.c.value),
                    ("tags", tags, no_number, tags.c.value),
                )
            )
        )
        for kind, run_id, key, number, text in connection.execute(query):
            extras[run_id][kind][key] = _nan_from_null(number) if kind == "metrics" else text
        return extras

    def search_runs(self, filter=None, order_by=None, experiment_ids=None, limit=100, offset=0):
        query = search.build_run_query(filter, order_by, experiment_ids, limit, offset)
        with self._read() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
            extras = self._run_extras(connection, [row["id"] for row in rows])
        for row in rows:
            row.update(extras[row["id"]])
        return rows

    def running_runs_on(self, host):
        with self._read() as connection:
            return connection.execute(
                sa.select(runs.c.id, runs.c.owner_pid, runs.c.owner_started).where(
                    runs.c.status == RUNNING, runs.c.owner_host == host
                )
            ).all()

    def mark_crashed(self, run_ids, user):
        """Close runs whose owning process is gone; only those still RUNNING change."""
        with self._write() as connection:
            for run_id in run_ids:
                changed = connection.execute(
                    sa.update(runs)
                    .where(runs.c.id == run_id, runs.c.status == RUNNING)
                    .values(status=CRASHED, end_time=time.time(), owner_pid=None)
                ).rowcount
                if changed:
                    self._audit(connection, user, "crashed", "run", run_id, {"reason": "owner process is gone"})

    # ---- metrics, params, tags, datasets, artifacts --------------------------------------

    def log_metrics(self, run_id, points):
        """Insert metric points ``[(key, value, step, timestamp)]``; one statement, one commit."""
        rows = [
            {
                "run_id": run_id,
                "key": key,
                "value": None if math.isnan(value) else value,
                "step": step,
                "timestamp": timestamp,
            }
            for key, value, step, timestamp in points
        ]
        try:
            with self._driver_write() as cursor:
                self._execute_prepared(cursor, "log_metrics", lambda: sa.insert(metrics), rows)
        except self._integrity_errors:
            raise NotFound(f"no run with id {run_id!r}") from None

    def metric_history(self, run_id, key):
        with self._read() as connection:
            rows = connection.execute(
                sa.select(metrics.c.step, metrics.c.value, metrics.c.timestamp)
                .where(metrics.c.run_id == run_id, metrics.c.key == key)
                .order_by(metrics.c.step, metrics.c.timestamp, metrics.c.id)
            ).all()
        return [(step, _nan_from_null(value), timestamp) for step, value, timestamp in rows]

    def log_params(self, run_id, values, user):
        """Params are fixed once logged: the same value again is fine, a different one is refused."""
        rows = [
            {"run_id": run_id, "key": key, "value": value, "value_number": numeric_or_none(value)}
            for key, value in values.items()
        ]
        if not rows:
            return
        try:
            with self._driver_write() as cursor:
                self._execute_prepared(cursor, "log_params", lambda: sa.insert(params), rows)
                self._audit_prepared(cursor, user, "log_params", "run", run_id, {"keys": sorted(values)})
        except self._integrity_errors:
            # Some key is already logged (or the run is unknown): sort it out the careful way.
            self._log_params_checked(run_id, rows, user)

    def _log_params_checked(self, run_id, rows, user):
        with self._write() as connection:
            self._require_run(connection, run_id)
            existing = dict(
                connection.execute(
                    sa.select(params.c.key, params.c.value).where(
                        params.c.run_id == run_id, params.c.key.in_([row["key"] for row in rows])
                    )
                ).all()
            )
            for row in rows:
                key, value = row["key"], row["value"]
                if key in existing and existing[key] != value:
                    raise InvalidInput(
                        f"param {key!r} is already {existing[key]!r} in this run and cannot become {value!r}; "
                        "params are fixed once logged: start a new run to change it"
                    )
            new = [row for row in rows if row["key"] not in existing]
            if new:
                connection.execute(sa.insert(params), new)
                self._audit(connection, user, "log_params", "run", run_id, {"keys": sorted(r["key"] for r in new)})

    def set_tags(self, run_id, values, user):
        rows = [{"run_id": run_id, "key": key, "value": value} for key, value in values.items()]
        if not rows:
            return
        try:
            with self._driver_write() as cursor:
                self._execute_prepared(cursor, "set_tags", lambda: self._upsert_statement(tags, ["run_id", "key"], ["value"]), rows)
                self._audit_prepared(cursor, user, "set_tags", "run", run_id, {"keys": sorted(values)})
        except self._integrity_errors:
            raise NotFound(f"no run with id {run_id!r}") from None

    def log_dataset(self, run_id, name, context, digest, rows, schema, user):
        row = {
            "run_id": run_id,
            "name": name,
            "context": context,
            "digest": digest,
            "rows": rows,
            "schema": _json(schema),
            "logged_at": time.time(),
        }
        try:
            with self._driver_write() as cursor:
                self._execute_prepared(cursor, "log_dataset", lambda: sa.insert(datasets), [row])
                self._audit_prepared(cursor, user, "log_dataset", "run", run_id, {"name": name, "digest": digest})
        except self._integrity_errors:
            raise NotFound(f"no run with id {run_id!r}") from None

    def record_artifact(self, run_id, path, sha256, size, user):
        with self._write() as connection:
            self._require_run(connection, run_id)
            row = {"run_id": run_id, "path": path, "sha256": sha256, "size": size, "created_at": time.time()}
            self._upsert(connection, artifacts, [row], ["run_id", "path"], ["sha256", "size", "created_at"])
            self._audit(connection, user, "log_artifact", "run", run_id, {"path": path, "sha256": sha256})

    def get_artifact(self, run_id, path):
        with self._read() as connection:
            row = connection.execute(
                sa.select(artifacts.c.sha256, artifacts.c.size).where(
                    artifacts.c.run_id == run_id, artifacts.c.path == path
                )
            ).mappings().first()
        if row is None:
            raise NotFound(f"run {run_id[:8]} has no artifact {path!r}")
        return dict(row)

    # ---- models ---------------------------------------------------------------------------

    def _model_row(self, connection, name):
        row = connection.execute(
            sa.select(registered_models).where(registered_models.c.name == name)
        ).mappings().first()
        if row is None:
            known = connection.execute(sa.select(registered_models.c.name)).scalars().all()
            raise NotFound(f"no registered model {name!r}" + did_you_mean(name, known))
        return row

    def create_model_version(self, name, user, version_row, *, primary_metric=None, higher_is_better=None):
        """Add the next version of ``name`` (creating the model); refuse bytes it already holds."""
        now = time.time()
        with self._write() as connection:
            model_id = connection.execute(
                self._insert(registered_models)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(registered_models.c.id),
                {"name": name, "created_at": now, "created_by": user},
            ).scalar()
            if model_id is None:  # it exists (perhaps made a moment ago by a colleague)
                model_id = connection.execute(
                    sa.select(registered_models.c.id).where(registered_models.c.name == name)
                ).scalar_one()
            else:
                self._audit(connection, user, "create", "model", name)
            self._lock_model(connection, model_id)
            if primary_metric is not None or higher_is_better is not None:
                connection.execute(
                    sa.update(registered_models)
                    .where(registered_models.c.id == model_id)
                    .values(
                        **({"primary_metric": primary_metric} if primary_metric is not None else {}),
                        **({"higher_is_better": higher_is_better} if higher_is_better is not None else {}),
                    )
                )
            duplicate = connection.execute(
                sa.select(model_versions.c.version).where(
                    model_versions.c.model_id == model_id,
                    model_versions.c.fingerprint == version_row["fingerprint"],
                )
            ).scalar()
            if duplicate is not None:
                raise AlreadyExists(
                    f"model {name!r} version {duplicate} already holds this exact model; nothing registered",
                    version=duplicate,
                )
            version = (
                connection.execute(
                    sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model_id == model_id)
                ).scalar()
                or 0
            ) + 1
            connection.execute(
                sa.insert(model_versions),
                {**version_row, "model_id": model_id, "version": version, "created_at": now, "created_by": user},
            )
            self._audit(
                connection, user, "register", "model", name, {"version": version, "run_id": version_row["run_id"]}
            )
        return version

    def get_model(self, name):
        with self._read() as connection:
            return dict(self._model_row(connection, name))

    def get_model_version(self, name, version=None, alias=None):
        """One version by number, by alias, or by ``alias='latest'``: the highest number."""
        with self._read() as connection:
            model = self._model_row(connection, name)
            if alias == "latest":
                version = connection.execute(
                    sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.model_id == model["id"])
                ).scalar()
            elif alias is not None:
                version = connection.execute(
                    sa.select(aliases.c.version).where(aliases.c.model_id == model["id"], aliases.c.alias == alias)
                ).scalar()
                if version is None:
                    held = self._aliases_of(connection, model["id"])
                    raise NotFound(
                        f"model {name!r} has no version with alias {alias!r}"
                        + (f"; its aliases: {', '.join(sorted(set().union(*held.values())))}" if held else "")
                    )
            rows = self._versions(connection, model, version)
        if not rows:
            raise NotFound(f"model {name!r} has no version {version}")
        return rows[0]

    def list_versions(self, name):
        with self._read() as connection:
            return self._versions(connection, self._model_row(connection, name))

    def _aliases_of(self, connection, model_id):
        held = {}
        for alias, version in connection.execute(
            sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id)
        ):
            held.setdefault(version, []).append(alias)
        return held

    def _versions(self, connection, model, version=None):
        query = sa.select(model_versions).where(model_versions.c.model_id == model["id"])
        if version is not None:
            query = query.where(model_versions.c.version == version)
        held = self._aliases_of(connection, model["id"])
        result = []
        for row in connection.execute(query.order_by(model_versions.c.version.desc())).mappings():
            item = dict(row)
            item.pop("model_id")
            item["name"] = model["name"]
            item["aliases"] = sorted(held.get(item["version"], []))
            for field in ("signature", "metrics", "trusted_types"):
                item[field] = json.loads(item[field])
            result.append(item)
        return result

    def list_models(self):
        with self._read() as connection:
            models = connection.execute(
                sa.select(
                    registered_models.c.id,
                    registered_models.c.name,
                    registered_models.c.description,
                    registered_models.c.created_at,
                    registered_models.c.created_by,
                    sa.select(sa.func.max(model_versions.c.version))
                    .where(model_versions.c.model_id == registered_models.c.id)
                    .scalar_subquery()
                    .label("latest_version"),
                ).order_by(registered_models.c.name)
            ).mappings().all()
            alias_rows = connection.execute(sa.select(aliases.c.model_id, aliases.c.alias, aliases.c.version)).all()
        by_model = {}
        for model_id, alias, version in alias_rows:
            by_model.setdefault(model_id, {})[alias] = version
        return [{**{k: v for k, v in m.items() if k != "id"}, "aliases": by_model.get(m["id"], {})} for m in models]

    def move_alias(self, name, alias, version, user, *, expected_from, reason=None, forced=False, verdicts=()):
        """Point ``alias`` at ``version`` (None removes it), if it still points at ``expected_from``.

        The check makes promotion safe against a colleague moving the alias between the
        moment the gates read the current holder and this write.
        """
        now = time.time()
        with self._write() as connection:
            model = self._model_row(connection, name)
            self._lock_model(connection, model["id"])
            current = connection.execute(
                sa.select(aliases.c.version).where(aliases.c.model_id == model["id"], aliases.c.alias == alias)
            ).scalar()
            if current != expected_from:
                raise MlopsError(
                    f"{alias!r} of model {name!r} moved to version {current} while this promotion was checked; "
                    "run it again"
                )
            if version is None:
                connection.execute(
                    sa.delete(aliases).where(aliases.c.model_id == model["id"], aliases.c.alias == alias)
                )
            else:
                self._upsert(
                    connection,
                    aliases,
                    [{"model_id": model["id"], "alias": alias, "version": version, "updated_at": now}],
                    ["model_id", "alias"],
                    ["version", "updated_at"],
                )
            connection.execute(
                sa.insert(alias_transitions),
                {
                    "model_id": model["id"],
                    "alias": alias,
                    "from_version": current,
                    "to_version": version,
                    "user": user,
                    "at": now,
                    "reason": reason,
                    "forced": forced,
                    "verdicts": _json(list(verdicts)),
                },
            )
            self._audit(
                connection,
                user,
                "promote" if version is not None else "demote",
                "model",
                name,
                {"alias": alias, "from": current, "to": version, "forced": forced, "reason": reason},
            )

    def alias_history(self, name):
        with self._read() as connection:
            model = self._model_row(connection, name)
            rows = connection.execute(
                sa.select(alias_transitions)
                .where(alias_transitions.c.model_id == model["id"])
                .order_by(alias_transitions.c.at, alias_transitions.c.id)
            ).mappings().all()
        return [
            {**{k: v for k, v in row.items() if k not in ("model_id", "id")}, "verdicts": json.loads(row["verdicts"])}
            for row in rows
        ]

    # ---- features -------------------------------------------------------------------------

    def _feature_row(self, connection, name):
        row = connection.execute(sa.select(features).where(features.c.name == name)).mappings().first()
        if row is None:
            known = connection.execute(sa.select(features.c.name)).scalars().all()
            raise NotFound(f"no feature {name!r}" + did_you_mean(name, known))
        return row

    def register_feature_version(self, name, entity, timestamp, description, user, version_row, code=None):
        """Add a version of feature ``name`` unless one with the same fingerprint exists.

        Returns ``(version, created)``. A feature keeps its entity and timestamp columns.
        """
        now = time.time()
        with self._write() as connection:
            created_feature = connection.execute(
                self._insert(features)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(features.c.id),
                {"name": name, "entity": entity, "timestamp": timestamp, "description": description,
                 "created_at": now, "created_by": user},
            ).scalar()
            feature = self._feature_row(connection, name)
            if created_feature is not None:
                self._audit(connection, user, "create", "feature", name)
            elif (feature["entity"], feature["timestamp"]) != (entity, timestamp):
                raise InvalidInput(
                    f"feature {name!r} is keyed by ({feature['entity']}, {feature['timestamp']}), "
                    f"not ({entity}, {timestamp}); use another name for a differently keyed feature"
                )
            existing = connection.execute(
                sa.select(feature_versions.c.version).where(
                    feature_versions.c.feature_id == feature["id"],
                    feature_versions.c.fingerprint == version_row["fingerprint"],
                )
            ).scalar()
            if existing is not None:
                return existing, False
            if code is not None:
                connection.execute(
                    self._insert(code_snapshots).on_conflict_do_nothing(index_elements=["sha256"]),
                    {"sha256": version_row["code_hash"], "code": code},
                )
            version = (
                connection.execute(
                    sa.select(sa.func.max(feature_versions.c.version)).where(
                        feature_versions.c.feature_id == feature["id"]
                    )
                ).scalar()
                or 0
            ) + 1
            connection.execute(
                sa.insert(feature_versions),
                {**version_row, "feature_id": feature["id"], "version": version, "created_at": now,
                 "created_by": user},
            )
            self._audit(connection, user, "register", "feature", name, {"version": version})
        return version, True

    def get_feature_version(self, name, version=None):
        """A feature's version (the latest when ``version`` is None), with its feature's columns."""
        with self._read() as connection:
            feature = self._feature_row(connection, name)
            query = sa.select(feature_versions).where(feature_versions.c.feature_id == feature["id"])
            if version is None:
                query = query.order_by(feature_versions.c.version.desc()).limit(1)
            else:
                query = query.where(feature_versions.c.version == version)
            row = connection.execute(query).mappings().first()
            if row is None:
                raise NotFound(f"feature {name!r} has no version {version}" if version else
                               f"feature {name!r} has no versions yet")
            code = connection.execute(
                sa.select(code_snapshots.c.code).where(code_snapshots.c.sha256 == row["code_hash"])
            ).scalar()
        item = {k: v for k, v in row.items() if k != "feature_id"}
        for field in ("sources", "statistics", "checks", "tags"):
            item[field] = json.loads(item[field])
        return {**item, "name": name, "entity": feature["entity"], "timestamp": feature["timestamp"],
                "description": feature["description"], "owner": feature["created_by"], "code": code}

    def list_features(self, search=None):
        latest = (
            sa.select(sa.func.max(feature_versions.c.version))
            .where(feature_versions.c.feature_id == features.c.id)
            .scalar_subquery()
        )
        query = sa.select(
            features.c.name, features.c.entity, features.c.timestamp, features.c.description,
            features.c.created_by.label("owner"), features.c.created_at, latest.label("latest_version"),
        ).order_by(features.c.name)
        if search:
            pattern = f"%{search.lower()}%"
            query = query.where(
                sa.or_(sa.func.lower(features.c.name).like(pattern), sa.func.lower(features.c.description).like(pattern))
            )
        with self._read() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def set_expectations(self, name, rules, user):
        """Replace the feature's expectations with ``rules`` (JSON-ready dicts), in order."""
        now = time.time()
        with self._write() as connection:
            feature = self._feature_row(connection, name)
            connection.execute(sa.delete(feature_expectations).where(feature_expectations.c.feature_id == feature["id"]))
            if rules:
                connection.execute(
                    sa.insert(feature_expectations),
                    [{"feature_id": feature["id"], "position": i, "rule": _json(rule), "created_at": now,
                      "created_by": user} for i, rule in enumerate(rules)],
                )
            self._audit(connection, user, "expect", "feature", name, {"rules": len(rules)})

    def get_expectations(self, name):
        with self._read() as connection:
            feature = self._feature_row(connection, name)
            rows = connection.execute(
                sa.select(feature_expectations.c.rule)
                .where(feature_expectations.c.feature_id == feature["id"])
                .order_by(feature_expectations.c.position)
            ).scalars().all()
        return [json.loads(rule) for rule in rows]

    def record_training_set(self, row, used, user):
        """Record a built training set and the feature versions ``used`` (``[(name, version)]``)."""
        with self._write() as connection:
            ids = {name: self._feature_row(connection, name)["id"] for name, _ in used}
            training_set_id = connection.execute(
                sa.insert(training_sets).returning(training_sets.c.id),
                {**row, "created_at": time.time(), "created_by": user},
            ).scalar_one()
            connection.execute(
                sa.insert(training_set_features),
                [{"training_set_id": training_set_id, "feature_id": ids[name], "version": version}
                 for name, version in used],
            )
            self._audit(connection, user, "build", "training_set", row["name"], {"digest": row["digest"]})
        return training_set_id

    def training_sets_using(self, name):
        """Training sets built from any version of feature ``name``, newest first, each with the
        model versions registered from the run that built it (``"models"``: ``["churn v2", …]``)."""
        with self._read() as connection:
            feature = self._feature_row(connection, name)
            rows = connection.execute(
                sa.select(training_sets.c.name, training_sets.c.digest, training_sets.c.run_id,
                          training_sets.c.created_at, training_set_features.c.version)
                .join(training_set_features, training_set_features.c.training_set_id == training_sets.c.id)
                .where(training_set_features.c.feature_id == feature["id"])
                .order_by(training_sets.c.created_at.desc())
            ).mappings().all()
            run_ids = sorted({row["run_id"] for row in rows if row["run_id"]})
            models = {}
            if run_ids:
                for run_id, model, version in connection.execute(
                    sa.select(model_versions.c.run_id, registered_models.c.name, model_versions.c.version)
                    .join(registered_models, registered_models.c.id == model_versions.c.model_id)
                    .where(model_versions.c.run_id.in_(run_ids))
                    .order_by(registered_models.c.name, model_versions.c.version)
                ):
                    models.setdefault(run_id, []).append(f"{model} v{version}")
        return [{**row, "models": models.get(row["run_id"], [])} for row in rows]

    def list_feature_versions(self, name):
        """A feature's versions, newest first (without their code and statistics)."""
        with self._read() as connection:
            feature = self._feature_row(connection, name)
            rows = connection.execute(
                sa.select(feature_versions.c.version, feature_versions.c.fingerprint, feature_versions.c.dtype,
                          feature_versions.c.rows, feature_versions.c.run_id, feature_versions.c.created_at,
                          feature_versions.c.created_by)
                .where(feature_versions.c.feature_id == feature["id"])
                .order_by(feature_versions.c.version.desc())
            ).mappings().all()
        return [dict(row) for row in rows]

    # ---- online features ------------------------------------------------------------------

    def feature_key(self, name):
        """``(id, entity column)`` of feature ``name``."""
        found = self._feature_keys.get(name)
        if found is None:
            with self._read() as connection:
                row = self._feature_row(connection, name)
            found = self._feature_keys[name] = (row["id"], row["entity"])
        return found

    def materialize_online(self, env, items, user, store="registry"):
        """Replace the online values of each ``(name, version, rows)`` in ``env``, in one transaction.

        ``rows`` are ``(entity_key, value_json, event_time)``; entities the version does not
        have are removed, so the env holds exactly that version's latest values.
        """
        ids = {name: self.feature_key(name)[0] for name, _, _ in items}
        now = time.time()
        with self._driver_write() as cursor:
            for name, version, rows in items:
                if rows:
                    self._execute_prepared(
                        cursor,
                        "online_upsert",
                        lambda: self._upsert_statement(
                            online_features, ["env", "feature_id", "entity_key"],
                            ["value", "event_time", "version", "updated_at"],
                        ),
                        [{"env": env, "feature_id": ids[name], "entity_key": key, "value": value,
                          "event_time": at, "version": version, "updated_at": now} for key, value, at in rows],
                    )
                self._execute_prepared(
                    cursor,
                    "online_prune",
                    lambda: sa.delete(online_features).where(
                        online_features.c.env == sa.bindparam("the_env"),
                        online_features.c.feature_id == sa.bindparam("the_feature"),
                        online_features.c.version != sa.bindparam("the_version"),
                    ),
                    [{"the_env": env, "the_feature": ids[name], "the_version": version}],
                )
                self._audit_prepared(cursor, user, "materialize", "feature", name,
                                     {"env": env, "version": version, "rows": len(rows), "store": store})

    def record_materializations(self, env, items, user, store):
        """Audit rows for values materialised outside the registry (Redis): ``(name, version, rows)``."""
        with self._driver_write() as cursor:
            for name, version, rows in items:
                self._audit_prepared(cursor, user, "materialize", "feature", name,
                                     {"env": env, "version": version, "rows": rows, "store": store})

    def online_version(self, env, feature_id):
        """The version materialised for a feature in ``env``, or None if it never was."""
        with self._read() as connection:
            return connection.execute(
                sa.select(online_features.c.version)
                .where(online_features.c.env == env, online_features.c.feature_id == feature_id)
                .limit(1)
            ).scalar()

    def online_lookup(self, env, feature_ids, entity_keys):
        """``(feature_id, entity_key, value_json)`` rows of these features and entities in ``env``.

        The read path of serving: one statement, compiled once per shape and run straight on
        the driver connection (SQLAlchemy's per-execution work would be most of the cost).
        """
        shape = ("online_lookup", len(feature_ids), len(entity_keys))
        prepared = self._prepared.get(shape)
        if prepared is None:
            statement = sa.select(
                online_features.c.feature_id, online_features.c.entity_key, online_features.c.value
            ).where(
                online_features.c.env == sa.bindparam("env"),
                online_features.c.feature_id.in_([sa.bindparam(f"f{i}") for i in range(len(feature_ids))]),
                online_features.c.entity_key.in_([sa.bindparam(f"e{i}") for i in range(len(entity_keys))]),
            )
            compiled = statement.compile(dialect=self.engine.dialect)
            order = compiled.positiontup if compiled.positional else None
            if len(self._prepared) > 1024:  # a bound on the shapes remembered
                self._prepared.clear()
            prepared = self._prepared[shape] = (str(compiled), order)
        sql, order = prepared
        if order is not None and order[0] == "env" and len(order) == 1 + len(feature_ids) + len(entity_keys):
            parameters = (env, *feature_ids, *entity_keys)
        else:
            named = {"env": env, **{f"f{i}": v for i, v in enumerate(feature_ids)},
                     **{f"e{i}": v for i, v in enumerate(entity_keys)}}
            parameters = tuple(named[key] for key in order) if order is not None else named
        driver = self._connection().connection.driver_connection
        cursor = driver.cursor()
        try:
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
        finally:
            cursor.close()
            if self.engine.dialect.name != "sqlite":
                driver.rollback()  # end the read's implicit transaction
        return rows

    # ---- serving --------------------------------------------------------------------------

    def create_token(self, row, user):
        """Insert a token row (its hash, never the token) with its audit row."""
        with self._write() as connection:
            connection.execute(sa.insert(api_tokens), {**row, "created_at": time.time(), "created_by": user})
            self._audit(connection, user, "create", "token", row["id"], {"env": row["env"], "role": row["role"]})

    def list_tokens(self):
        """Every token, newest first, without its hash."""
        columns = [column for column in api_tokens.c if column.name != "token_sha256"]
        with self._read() as connection:
            rows = connection.execute(
                sa.select(*columns).order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
            ).mappings().all()
        return [dict(row) for row in rows]

    def revoke_token(self, token_id, user):
        with self._write() as connection:
            revoked_at = connection.execute(
                sa.select(api_tokens.c.revoked_at).where(api_tokens.c.id == token_id)
            ).first()
            if revoked_at is None:
                raise NotFound(f"no token with id {token_id!r} (see `mlops token list`)")
            if revoked_at[0] is not None:
                raise InvalidInput(f"token {token_id!r} is already revoked")
            connection.execute(
                sa.update(api_tokens).where(api_tokens.c.id == token_id)
                .values(revoked_at=time.time(), revoked_by=user)
            )
            self._audit(connection, user, "revoke", "token", token_id)

    def active_tokens(self):
        """``{token_sha256: (id, env, role)}`` of every token not revoked: what the server checks."""
        with self._read() as connection:
            rows = connection.execute(
                sa.select(api_tokens.c.token_sha256, api_tokens.c.id, api_tokens.c.env, api_tokens.c.role)
                .where(api_tokens.c.revoked_at.is_(None))
            ).all()
        return {sha256: (token_id, env, role) for sha256, token_id, env, role in rows}

    def active_token(self, token_sha256):
        """``(id, env, role)`` of the unrevoked token with this hash, or None."""
        with self._read() as connection:
            row = connection.execute(
                sa.select(api_tokens.c.id, api_tokens.c.env, api_tokens.c.role)
                .where(api_tokens.c.token_sha256 == token_sha256, api_tokens.c.revoked_at.is_(None))
            ).first()
        return None if row is None else tuple(row)

    def alias_holders(self, alias):
        """``{model name: version}`` of every model whose ``alias`` is set, in one query."""
        with self._read() as connection:
            return dict(connection.execute(
                sa.select(registered_models.c.name, aliases.c.version)
                .join(aliases, aliases.c.model_id == registered_models.c.id)
                .where(aliases.c.alias == alias)
            ).all())

    def record_served_requests(self, rows):
        """Insert a batch of served_requests rows in one transaction (the request log's writer)."""
        with self._driver_write() as cursor:
            self._execute_prepared(cursor, "served_requests", lambda: sa.insert(served_requests), rows)

    def served_requests(self, object_name=None, env=None, kind=None, since=None, until=None, limit=None):
        """Served requests, oldest first, ``inputs``/``outputs`` decoded from JSON."""
        query = sa.select(served_requests).order_by(served_requests.c.at, served_requests.c.id)
        if object_name is not None:
            query = query.where(served_requests.c.object_name == object_name)
        if env is not None:
            query = query.where(served_requests.c.env == env)
        if kind is not None:
            query = query.where(served_requests.c.kind == kind)
        if since is not None:
            query = query.where(served_requests.c.at >= since)
        if until is not None:
            query = query.where(served_requests.c.at < until)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as connection:
            rows = connection.execute(query).mappings().all()
        loads = json.loads
        return [{**row, "inputs": None if row["inputs"] is None else loads(row["inputs"]),
                 "outputs": None if row["outputs"] is None else loads(row["outputs"])} for row in rows]

    # ---- audit ----------------------------------------------------------------------------

    def audit_entries(self, object_name=None, user=None, since=None, limit=1000):
        query = sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        if object_name is not None:
            query = query.where(audit_log.c.object_name == object_name)
        if user is not None:
            query = query.where(audit_log.c.user == user)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        with self._read() as connection:
            rows = connection.execute(query).mappings().all()
        return [{**row, "detail": json.loads(row["detail"]) if row["detail"] else None} for row in rows]

    def counts(self):
        """Row counts of every table: what tests and `mlops status` use to see nothing changed."""
        with self._read() as connection:
            return {
                table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                for table in (experiments, runs, params, metrics, tags, artifacts, datasets,
                              registered_models, model_versions, aliases, alias_transitions, audit_log)
            }


    # ---- pipelines ------------------------------------------------------------------------

    def finished_runs_tagged(self, key, values):
        """FINISHED runs tagged ``key`` with one of ``values``, newest first, in one query:
        ``[(tag value, run id, {artifact path: (sha256, size)})]``."""
        if not values:
            return []
        with self._read() as connection:
            rows = connection.execute(
                sa.select(tags.c.value, runs.c.id, artifacts.c.path, artifacts.c.sha256, artifacts.c.size)
                .join(runs, runs.c.id == tags.c.run_id)
                .outerjoin(artifacts, artifacts.c.run_id == runs.c.id)
                .where(tags.c.key == key, tags.c.value.in_(sorted(set(values))), runs.c.status == FINISHED)
                .order_by(runs.c.start_time.desc(), runs.c.id)
            ).all()
        found = {}
        for value, run_id, path, sha256, size in rows:
            entry = found.setdefault(run_id, (value, run_id, {}))
            if path is not None:
                entry[2][path] = (sha256, size)
        return list(found.values())

    def record_artifacts(self, run_id, entries, user):
        """Record ``{path: (sha256, size)}`` of blobs already in the artifact store, in one transaction."""
        if not entries:
            return
        now = time.time()
        rows = [{"run_id": run_id, "path": path, "sha256": sha256, "size": size, "created_at": now}
                for path, (sha256, size) in entries.items()]
        try:
            with self._driver_write() as cursor:
                self._execute_prepared(
                    cursor, "record_artifacts",
                    lambda: self._upsert_statement(artifacts, ["run_id", "path"], ["sha256", "size", "created_at"]),
                    rows,
                )
                self._audit_prepared(cursor, user, "log_artifacts", "run", run_id, {"paths": sorted(entries)})
        except self._integrity_errors:
            raise NotFound(f"no run with id {run_id!r}") from None

    # ---- for the Jupyter server -----------------------------------------------------------

    def count_runs(self, filter=None, experiment_ids=None):
        """How many runs match ``filter``: the total a paginated listing shows beside its page."""
        matching = search.build_run_query(filter, None, experiment_ids, 1, 0).limit(None).offset(None).order_by(None)
        with self._read() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(matching.subquery())).scalar()

    def feature_summaries(self, search=None):
        """Each feature's latest version with its expectation rules (``"rules"``), in two queries."""
        latest = (
            sa.select(feature_versions.c.feature_id, sa.func.max(feature_versions.c.version).label("version"))
            .group_by(feature_versions.c.feature_id)
            .subquery()
        )
        query = (
            sa.select(features.c.id, features.c.name, feature_versions.c.version, feature_versions.c.dtype,
                      feature_versions.c.rows, feature_versions.c.created_at, feature_versions.c.created_by,
                      features.c.description, feature_versions.c.values_sha256)
            .join(latest, latest.c.feature_id == features.c.id)
            .join(feature_versions, sa.and_(feature_versions.c.feature_id == features.c.id,
                                            feature_versions.c.version == latest.c.version))
            .order_by(features.c.name)
        )
        if search:
            pattern = f"%{search.lower()}%"
            query = query.where(
                sa.or_(sa.func.lower(features.c.name).like(pattern), sa.func.lower(features.c.description).like(pattern))
            )
        with self._read() as connection:
            rows = connection.execute(query).mappings().all()
            rules = {}
            for feature_id, rule in connection.execute(
                sa.select(feature_expectations.c.feature_id, feature_expectations.c.rule)
                .where(feature_expectations.c.feature_id.in_([row["id"] for row in rows]))
                .order_by(feature_expectations.c.feature_id, feature_expectations.c.position)
            ):
                rules.setdefault(feature_id, []).append(json.loads(rule))
        return [{**{k: v for k, v in row.items() if k != "id"}, "rules": rules.get(row["id"], [])} for row in rows]

    def overview_counts(self):
        """How many features, experiments, runs, models and model versions the registry holds."""
        tables = {"features": features, "experiments": experiments, "runs": runs, "models": registered_models,
                  "model_versions": model_versions}
        query = sa.select(*(sa.select(sa.func.count()).select_from(t).scalar_subquery().label(k)
                            for k, t in tables.items()))
        with self._read() as connection:
            return dict(connection.execute(query).mappings().one())

    # ---- lineage ----------------------------------------------------------------------------

    def lineage_records(self, run_id):
        """What a model's run came from: ``{"runs", "training_sets"}`` in one read.

        ``runs``: the run and its ancestors (a pipeline step's run, then the pipeline run), each
        with its tags. ``training_sets``: those built in one of these runs, else anywhere under
        the outermost one (a pipeline builds its training set in one step and fits in another),
        each with the feature versions it joined (code hash, sources with their digests).
        """
        run_columns = (runs.c.id, runs.c.name, experiments.c.name.label("experiment"), runs.c.status, runs.c.user,
                       runs.c.start_time, runs.c.end_time, runs.c.parent_run_id, runs.c.notebook_path,
                       runs.c.source_path, runs.c.code_hash, runs.c.git_commit)
        with self._read() as connection:
            chain, next_id = [], run_id
            while next_id is not None and len(chain) < 100:  # a bound, should a cycle ever exist
                row = connection.execute(
                    sa.select(*run_columns).join(experiments, experiments.c.id == runs.c.experiment_id)
                    .where(runs.c.id == next_id)
                ).mappings().first()
                if row is None:
                    break
                chain.append(dict(row))
                next_id = row["parent_run_id"]
            extras = self._run_extras(connection, [run["id"] for run in chain])
            for run in chain:
                run["tags"] = extras[run["id"]]["tags"]
            built = self._training_sets_built_in(connection, [run["id"] for run in chain])
            if not built and chain:
                built = self._training_sets_built_in(connection, self._descendant_run_ids(connection, chain[-1]["id"]))
        return {"runs": chain, "training_sets": built}

    def _descendant_run_ids(self, connection, root_id):
        found, frontier = [], [root_id]
        while frontier and len(found) < 10_000:
            frontier = connection.execute(sa.select(runs.c.id).where(runs.c.parent_run_id.in_(frontier))).scalars().all()
            found.extend(frontier)
        return found

    def _training_sets_built_in(self, connection, run_ids):
        if not run_ids:
            return []
        rows = connection.execute(
            sa.select(training_sets).where(training_sets.c.run_id.in_(run_ids))
            .order_by(training_sets.c.created_at, training_sets.c.id)
        ).mappings().all()
        used = {}
        for row in connection.execute(
            sa.select(training_set_features.c.training_set_id, features.c.name, features.c.entity,
                      features.c.timestamp, feature_versions.c.version, feature_versions.c.fingerprint,
                      feature_versions.c.code_hash, feature_versions.c.sources, feature_versions.c.values_sha256,
                      feature_versions.c.dtype, feature_versions.c.rows, feature_versions.c.run_id,
                      feature_versions.c.created_at, feature_versions.c.created_by)
            .join(features, features.c.id == training_set_features.c.feature_id)
            .join(feature_versions, sa.and_(feature_versions.c.feature_id == training_set_features.c.feature_id,
                                            feature_versions.c.version == training_set_features.c.version))
            .where(training_set_features.c.training_set_id.in_([row["id"] for row in rows]))
            .order_by(features.c.name)
        ).mappings():
            item = dict(row)
            used.setdefault(item.pop("training_set_id"), []).append({**item, "sources": json.loads(item["sources"])})
        return [{**dict(row), "checks": json.loads(row["checks"]), "features": used.get(row["id"], [])} for row in rows]

    # ---- monitoring and audit ---------------------------------------------------------------

    def record_labels(self, rows, user):
        """Upsert ground truth ``{"request_id", "row", "label"}`` rows (label as JSON) for served
        predictions, in one transaction with an audit row per model. Unknown request ids or rows
        past a request's end raise before anything is written."""
        ids = sorted({row["request_id"] for row in rows})
        now = time.time()
        with self._write() as connection:
            served = {}
            for start in range(0, len(ids), 500):  # within every database's bound on parameters
                served.update({request_id: (name, env, count) for request_id, name, env, count in connection.execute(
                    sa.select(served_requests.c.id, served_requests.c.object_name, served_requests.c.env,
                              served_requests.c.rows)
                    .where(served_requests.c.id.in_(ids[start:start + 500]), served_requests.c.kind == "predict")
                )})
            unknown = [request_id for request_id in ids if request_id not in served]
            if unknown:
                shown = ", ".join(repr(request_id) for request_id in unknown[:3])
                more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
                raise NotFound(f"no served prediction with request id {shown}{more}; no labels were written")
            beyond = next((row for row in rows if not 0 <= row["row"] < served[row["request_id"]][2]), None)
            if beyond is not None:
                raise InvalidInput(f"request {beyond['request_id']!r} has {served[beyond['request_id']][2]} rows; "
                                   f"row {beyond['row']} is not one of them; no labels were written")
            self._upsert(connection, prediction_labels,
                         [{**row, "logged_at": now, "logged_by": user} for row in rows],
                         ["request_id", "row"], ["label", "logged_at", "logged_by"])
            per_model = {}
            for row in rows:
                name, env, _ = served[row["request_id"]]
                per_model[(name, env)] = per_model.get((name, env), 0) + 1
            for (name, env), count in sorted(per_model.items()):
                self._audit(connection, user, "log_labels", "model", name, {"env": env, "labels": count})

    def served_labels(self, object_name, env, since=None):
        """``{(request_id, row): label JSON}`` of the labelled predictions of a model in ``env``."""
        query = (
            sa.select(prediction_labels.c.request_id, prediction_labels.c.row, prediction_labels.c.label)
            .join(served_requests, served_requests.c.id == prediction_labels.c.request_id)
            .where(served_requests.c.object_name == object_name, served_requests.c.env == env)
        )
        if since is not None:
            query = query.where(served_requests.c.at >= since)
        with self._read() as connection:
            return {(request_id, row): label for request_id, row, label in connection.execute(query)}

    def record_read(self, object_type, name, detail, user):
        """Who read which object when (a model loaded, say): one audit row, on the fast write path."""
        with self._driver_write() as cursor:
            self._audit_prepared(cursor, user, "read", object_type, name, detail)

    def record_monitoring(self, name, detail, user):
        """A monitoring verdict, kept as an audit row: what `%mlops status` reads back cheaply."""
        with self._write() as connection:
            self._audit(connection, user, "monitor", "model", name, detail)

    def latest_monitoring(self):
        """The newest monitoring verdict per (model, env): ``[{"model", "at", "user", **detail}]``."""
        with self._read() as connection:
            rows = connection.execute(
                sa.select(audit_log.c.object_name, audit_log.c.at, audit_log.c.user, audit_log.c.detail)
                .where(audit_log.c.action == "monitor")
                .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            ).all()
        latest = {}
        for name, at, user, detail in rows:
            detail = json.loads(detail)
            latest.setdefault((name, detail.get("env")), {"model": name, "at": at, "user": user, **detail})
        return list(latest.values())

    def served_counts(self, object_name=None, user=None, since=None):
        """Served requests counted per UTC day, object, env, kind and token, newest day first:
        ``[{"day" (epoch of the day's start), "object_name", "env", "kind", "token_id", "user" (who
        created the token), "requests", "errors", "rows"}]``. ``object_name`` also matches a
        feature served among others (their names are joined by ",")."""
        days = served_requests.c.at / 86400
        # CAST truncates on SQLite but rounds on PostgreSQL, which has floor().
        day = sa.func.floor(days) if self.engine.dialect.name == "postgresql" else sa.cast(days, sa.Integer)
        day = day.label("day")
        query = (
            sa.select(day, served_requests.c.object_name, served_requests.c.env, served_requests.c.kind,
                      served_requests.c.token_id, api_tokens.c.created_by.label("user"),
                      sa.func.count().label("requests"),
                      sa.func.sum(sa.case((served_requests.c.status >= 400, 1), else_=0)).label("errors"),
                      sa.func.sum(served_requests.c.rows).label("rows"))
            .outerjoin(api_tokens, api_tokens.c.id == served_requests.c.token_id)
            .group_by(day, served_requests.c.object_name, served_requests.c.env, served_requests.c.kind,
                      served_requests.c.token_id, api_tokens.c.created_by)
            .order_by(day.desc(), served_requests.c.object_name, served_requests.c.env)
        )
        if object_name is not None:
            column = served_requests.c.object_name
            query = query.where(sa.or_(column == object_name, column.startswith(f"{object_name},", autoescape=True),
                                       column.endswith(f",{object_name}", autoescape=True),
                                       column.contains(f",{object_name},", autoescape=True)))
        if user is not None:
            query = query.where(api_tokens.c.created_by == user)
        if since is not None:
            query = query.where(served_requests.c.at >= since)
        with self._read() as connection:
            rows = connection.execute(query).mappings().all()
        return [{**row, "day": float(row["day"]) * 86400, "errors": int(row["errors"] or 0),
                 "rows": int(row["rows"] or 0)} for row in rows]
