"""Faster equivalents of Rasa 3.6 internals that cost every turn, installed when Rasa loads
Parley's channel (``bot.components.parley_channel`` imports this module).

- ``RemoteAction._validate_action_result`` calls ``jsonschema.validate`` on each action-server
  response, which checks the (constant) schema itself again every time: 42% of Rasa's request
  CPU in a profile, ~60 ms a call on a busy 2-core machine (docs/benchmarks.md, "Where a turn's
  milliseconds go"). Here the schema is checked once and its validator reused: the response is
  validated against the same schema, with the same error type and message.
- ``SQLTrackerStore.save`` streamed new events to the event broker by loading the whole stored
  tracker again only to count its events (``TrackerEventDiffEngine``), and Rasa's
  ``SQLEventBroker`` committed each event in its own transaction. Here the count is one
  ``COUNT`` query (the same query the store's own save already makes), and an SQL broker gets
  the turn's events in one transaction; other brokers are called per event as before. The
  events published and stored are the same, in the same order: broker first, then the store.
- Rasa's SQLite files (the tracker store and the event broker, the embedded defaults) use the
  write-ahead log with ``synchronous=NORMAL``, as Parley's own database does: a commit no longer
  waits for two fsyncs. A process crash loses nothing committed; an operating-system crash may
  lose the last commits, which PostgreSQL (the production store) does not. Their connections are
  pooled: SQLAlchemy's default for an SQLite file opens and closes one per session, and closing
  the last connection to a write-ahead-logged database checkpoints it.
- ``SQLTrackerStore.retrieve`` rebuilt the tracker from every event of the current session on
  each turn, so a turn cost more the longer the conversation. The trackers this process saved
  last are kept (``TRACKERS``, least recently used out first) with the stored session's event
  count and last event id, and one query compares them: while they are the same, the kept
  tracker is returned as it is, else it is loaded as before. Another process's turn, a new
  session and a deletion change them; a turn that failed after changing the tracker in memory
  left it longer than its count.
Together these were about half of Rasa's CPU per turn (docs/benchmarks.md, "Where a turn's
milliseconds go").
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core import tracker_store
from rasa.core.actions.action import RemoteAction
from rasa.core.brokers.broker import EventBroker
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import create_engine, event, func
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool


@lru_cache(maxsize=1)
def action_response_validator() -> Validator:
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    try:
        error = best_match(action_response_validator().iter_errors(result))  # as validate()
        if error is not None:
            raise error
        return True
    except ValidationError as e:
        e.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise e


RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


# ---------------------------------------------------------------- tracker store and broker

@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _sqlite_file(url: Any) -> bool:
    parsed = make_url(str(url))
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


_POOLED = {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10,
           "connect_args": {"check_same_thread": False}}
_engine_kwargs = tracker_store.create_engine_kwargs


def create_engine_kwargs(url: Any) -> dict[str, Any]:
    """Rasa's engine settings for its SQL tracker store, pooled for an SQLite file."""
    return dict(_POOLED) if _sqlite_file(url) else _engine_kwargs(url)


tracker_store.create_engine_kwargs = create_engine_kwargs
_broker_init = SQLEventBroker.__init__


def _pooled_broker_init(self: SQLEventBroker, *args: Any, **kwargs: Any) -> None:
    _broker_init(self, *args, **kwargs)
    if _sqlite_file(self.engine.url):
        url = self.engine.url
        self.engine.dispose()
        self.engine = create_engine(url, **_POOLED)
        self.sessionmaker = sessionmaker(bind=self.engine)


SQLEventBroker.__init__ = _pooled_broker_init  # type: ignore[method-assign]


def publish_all(broker: EventBroker | None, sender_id: str,
                events: Iterable[dict[str, Any]]) -> None:
    """Publish a turn's new events (``Event.as_dict()``) as ``TrackerStore._stream_new_events``
    does, an SQL broker's in one transaction."""
    bodies = [{"sender_id": sender_id, **data} for data in events]
    if broker is None or not bodies:
        return
    if isinstance(broker, SQLEventBroker):
        with broker.session_scope() as session:
            session.execute(broker.SQLBrokerEvent.__table__.insert(),
                            [{"sender_id": sender_id, "data": json.dumps(b)} for b in bodies])
            session.commit()
        return
    for body in bodies:
        broker.publish(body)


ORIGINAL_SAVE = SQLTrackerStore.save  # Rasa's own, which the tests compare with
ORIGINAL_RETRIEVE = SQLTrackerStore.retrieve
TRACKERS = 500  # kept per process
_kept: OrderedDict[tuple[int, str], tuple[DialogueStateTracker, tuple[int, int]]] = OrderedDict()


def _stored_count(store: SQLTrackerStore, session: Any, sender_id: str) -> int:
    return int(store._event_query(session, sender_id,
                                  fetch_events_from_all_sessions=False).count())


def _stored_mark(store: SQLTrackerStore, session: Any, sender_id: str) -> tuple[int, int]:
    """How many events the stored current session has, and the id of its last: ids only grow,
    so equal marks mean nothing was added, removed or restarted in between."""
    count, last = (store._event_query(session, sender_id, fetch_events_from_all_sessions=False)
                   .order_by(None)
                   .with_entities(func.count(store.SQLEvent.id), func.max(store.SQLEvent.id))
                   .one())
    return int(count), int(last or 0)


async def _retrieve(self: SQLTrackerStore, sender_id: str) -> DialogueStateTracker | None:
    """``SQLTrackerStore.retrieve``, answered by the tracker this process saved last while the
    stored session is still exactly that one."""
    key = (id(self), sender_id)
    kept = _kept.pop(key, None)
    if kept is not None:
        tracker, mark = kept
        # Events are only ever appended to a tracker: a turn that failed after changing it in
        # memory (and saved nothing) left it longer than what is stored.
        with self.session_scope() as session:
            if len(tracker.events) == mark[0] and _stored_mark(self, session,
                                                               sender_id) == mark:
                _kept[key] = kept
                return tracker
    return await ORIGINAL_RETRIEVE(self, sender_id)


async def _save(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
    """``SQLTrackerStore.save`` without loading the stored tracker to diff it: the events not
    yet stored are those past the stored count of the current session (Rasa's own rule)."""
    with self.session_scope() as session:
        stored = _stored_count(self, session, tracker.sender_id)
        new = list(itertools.islice(tracker.events, stored, len(tracker.events)))
        datas = [e.as_dict() for e in new]
        publish_all(self.event_broker, tracker.sender_id, datas)
        if new:
            session.execute(self.SQLEvent.__table__.insert(), [
                {"sender_id": tracker.sender_id, "type_name": e.type_name,
                 "timestamp": data.get("timestamp"),
                 "intent_name": (data.get("parse_data") or {}).get("intent", {}).get("name"),
                 "action_name": data.get("name"), "data": json.dumps(data)}
                for e, data in zip(new, datas, strict=True)])
        mark = _stored_mark(self, session, tracker.sender_id)
        session.commit()
    key = (id(self), tracker.sender_id)
    _kept.pop(key, None)
    if mark[0] == len(tracker.events):  # what retrieve would load: exactly this tracker
        _kept[key] = (tracker, mark)
        while len(_kept) > TRACKERS:
            _kept.popitem(last=False)


SQLTrackerStore.save = _save  # type: ignore[method-assign]
SQLTrackerStore.retrieve = _retrieve  # type: ignore[method-assign]
