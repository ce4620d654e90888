"""Opening a registry database: engine settings per dialect and self-applying migrations.

Migrations run forward only, on open, inside one transaction that holds a lock
(SQLite's write lock, PostgreSQL's advisory lock), so two kernels opening a new
registry at the same moment cannot race each other into a half-made schema.
"""

from pathlib import Path

import sqlalchemy as sa

from ..errors import MlopsError

# The newest migration; a test checks it against the migrations folder.
HEAD_REVISION = "0005"
MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Any fixed number: PostgreSQL advisory locks are keyed by integers.
_POSTGRES_MIGRATION_LOCK = 7_152_000_001
# Set in a connection's info by a writer so SQLite takes the write lock at BEGIN, waiting on
# the busy timeout, instead of failing with "database is locked" when a read lock upgrades.
BEGIN_MODE = "mlops_begin_immediate"


def create_engine(url):
    # Unbounded overflow: the Store holds one connection per thread (see Store._connection).
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, pool_size=4, max_overflow=-1)
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    else:
        engine = sa.create_engine(url, pool_size=4, max_overflow=-1, pool_recycle=1800)
    return engine


def _configure_sqlite_connection(dbapi_connection, _record):
    # Let the begin event (below) emit BEGIN itself, as SQLAlchemy's docs recommend for pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # Durable across a crashed process; only a power loss can lose the last commits.
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    # LIKE is case-sensitive on PostgreSQL; make it so here too (ILIKE is the insensitive one).
    cursor.execute("PRAGMA case_sensitive_like = ON")
    cursor.close()


def _begin_sqlite_transaction(connection):
    immediate = connection.info.get(BEGIN_MODE, False)
    # Straight to the driver: this runs once per transaction and is on the logging hot path.
    connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def begin(connection, write):
    """Begin a transaction; a ``write`` one holds SQLite's write lock from its first statement."""
    connection.info[BEGIN_MODE] = write
    return connection.begin()


def current_revision(engine):
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        return None


def ensure_schema(engine):
    """Bring the database to HEAD_REVISION, creating it when empty."""
    if current_revision(engine) == HEAD_REVISION:
        return
    with engine.connect() as connection, begin(connection, write=True):
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
        revision = _revision_in_transaction(connection)
        if revision == HEAD_REVISION:
            return
        if revision is not None and not any((MIGRATIONS / "versions").glob(f"{revision}_*.py")):
            raise MlopsError(
                f"this registry is at schema revision {revision}, newer than this mlops-jupyter knows; "
                "upgrade the package"
            )
        upgrade(connection, HEAD_REVISION)


def _revision_in_transaction(connection):
    inspector = sa.inspect(connection)
    if not inspector.has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(connection, revision):
    """Run the Alembic migrations up to ``revision`` on ``connection`` (inside its transaction)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
