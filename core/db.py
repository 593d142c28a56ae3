"""Database engine and sessions (SQLAlchemy 2, async). SQLite file by default, PostgreSQL by URL.
Migrations are the ``migrations`` package's Alembic scripts, in a checkout or installed.

Column types every domain uses: ``UTCDateTime`` (timezone-aware UTC on every backend) and
``JSONModel`` (a pydantic model stored as a JSON object).
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, Dialect, TypeDecorator, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


ModelT = TypeVar("ModelT", bound=BaseModel)


class JSONModel(TypeDecorator[ModelT]):
    """A pydantic model stored as a JSON object.

    Reading validates the stored object, so a row written before a key existed reads with that
    key's default (and NULL reads as the model's defaults); writing stores only the values that
    differ from their defaults, plus any extra keys the model keeps. Assign a new model to
    change a column: SQLAlchemy does not see changes made inside the one it holds.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[ModelT]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: ModelT | None, dialect: Dialect) -> dict[str, Any]:
        if value is None:
            value = self.model()
        return value.model_dump(mode="json", exclude_defaults=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> ModelT:
        return self.model.model_validate(value or {})


def sync_url(url: str) -> str:
    """The URL Alembic and other synchronous tools use."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url.replace("sqlite+aiosqlite://", "sqlite://")


def async_url(url: str) -> str:
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url(url), connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy control transactions so they can start as BEGIN IMMEDIATE: a
            # read-then-write transaction (claiming a chat) then never hits a lock-upgrade
            # deadlock; writers queue on the busy timeout instead.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(async_url(url), pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def migrations_dir() -> Path:
    """Alembic's script folder: the ``migrations`` package, in a checkout or installed.

    Found, not imported: its ``env.py`` imports every domain's models, which ``core`` must not.
    """
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The 'migrations' package is not installed; reinstall Parley "
                           "(pip install -e .).")
    return Path(next(iter(spec.submodule_search_locations)))


def upgrade_database(url: str) -> None:
    """Apply Alembic migrations up to head (idempotent)."""
    from alembic import command
    from alembic.config import Config

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", sync_url(url))
    command.upgrade(cfg, "head")
