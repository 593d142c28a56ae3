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
- ``Domain.states_for_tracker_history`` (what the policies featurize, several times a turn)
  replayed every event of the session into state dicts on each call, so a turn cost more the
  longer the conversation. Here each tracker keeps where it got to (the replayed tracker, the
  states so far and the loop's two variables) per set of arguments, and a call goes on from
  there while the applied events it consumed are still the tracker's first ones (same
  objects); the states are returned as copies, since the featurizers edit them. A revert or
  restart changes the applied events and starts it afresh. ``applied_events`` (the events
  left after reverts and restarts, asked for on every call) goes on the same way, from scratch
  when a new form name appears (Rasa's rule looks at every form of the tracker).
Together these were about half of Rasa's CPU per turn (docs/benchmarks.md, "Where a turn's
milliseconds go").
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
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
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    Restarted,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)
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


# ---------------------------------------------------------------- policy states

_ORIGINAL_APPLIED = DialogueStateTracker.applied_events


@dataclass
class _Applied:
    consumed: int
    first: Any
    last: Any
    applied: list[Any]
    loop_names: list[str]


def applied_events(self: DialogueStateTracker) -> list[Any]:
    """``DialogueStateTracker.applied_events``, going on from the last call on this tracker
    while its events then are still its first ones and no new form name appeared."""
    events = list(self.events)
    kept: _Applied | None = self.__dict__.get("_parley_applied")
    if kept is not None and (kept.consumed > len(events) or (kept.consumed and (
            events[0] is not kept.first or events[kept.consumed - 1] is not kept.last))):
        kept = None
    new = events[kept.consumed:] if kept is not None else events
    names = [e.name for e in new if isinstance(e, ActiveLoop) and e.name]
    if kept is None or not set(names) <= set(kept.loop_names):
        applied = _ORIGINAL_APPLIED(self)
        loop_names = [e.name for e in events if isinstance(e, ActiveLoop) and e.name]
        if events:
            self.__dict__["_parley_applied"] = _Applied(len(events), events[0], events[-1],
                                                        list(applied), loop_names)
        return applied
    applied = kept.applied
    for e in new:  # Rasa 3.6's loop body, over the new events only
        if isinstance(e, (Restarted, SessionStarted)):
            applied.clear()
        elif isinstance(e, ActionReverted):
            self._undo_till_previous(ActionExecuted, applied)
        elif isinstance(e, UserUtteranceReverted):
            self._undo_till_previous(UserUttered, applied)
            self._undo_till_previous(ActionExecuted, applied)
        elif (isinstance(e, ActionExecuted) and e.action_name in kept.loop_names
              and not self._first_loop_execution_or_unhappy_path(e.action_name, applied)):
            self._undo_till_previous_loop_execution(e.action_name, applied)
        else:
            applied.append(e)
    if new:
        kept.consumed, kept.last = len(events), events[-1]
    return list(applied)


DialogueStateTracker.applied_events = applied_events  # type: ignore[method-assign]

_ORIGINAL_STATES = Domain.states_for_tracker_history


@dataclass
class _History:
    """``states_for_tracker_history``'s loop, paused after ``consumed`` applied events."""

    replay: DialogueStateTracker
    consumed: int = 0
    first: Any = None
    last: Any = None
    states: list[dict[str, Any]] = field(default_factory=list)
    last_ml: Any = None
    hidden: bool = False


def _step(domain: Domain, history: _History, tracker: DialogueStateTracker,
          hide_rule_turn: bool, omit_unset_slots: bool, ignore_rule_only_turns: bool,
          rule_only_data: dict[str, Any] | None) -> None:
    """One pass of Rasa's loop body (rasa/shared/core/domain.py, 3.6) for the tracker before
    an action (or the current one, last)."""
    if ignore_rule_only_turns:
        if not history.hidden:
            history.last_ml = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and not (
                tracker.latest_action_name == tracker.active_loop_name):
            history.hidden = hide_rule_turn
        if history.hidden:
            return
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if history.states:
            domain._substitute_rule_only_user_input(state, history.states[-1])
        if history.last_ml:
            state[PREVIOUS_ACTION] = history.last_ml
    history.states.append(domain._clean_state(state))


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    return {key: dict(sub) if isinstance(sub, dict) else sub for key, sub in state.items()}


def states_for_tracker_history(self: Domain, tracker: DialogueStateTracker,
                               omit_unset_slots: bool = False,
                               ignore_rule_only_turns: bool = False,
                               rule_only_data: dict[str, Any] | None = None) -> list[Any]:
    key = (id(self), omit_unset_slots, ignore_rule_only_turns,
           json.dumps(rule_only_data, sort_keys=True, default=str))
    applied = tracker.applied_events()
    kept: dict[Any, _History] = tracker.__dict__.setdefault("_parley_histories", {})
    history = kept.get(key)
    if history is None or history.consumed > len(applied) or (history.consumed and (
            applied[0] is not history.first
            or applied[history.consumed - 1] is not history.last)):
        history = _History(tracker.init_copy())
    for applied_event in applied[history.consumed:]:
        if isinstance(applied_event, ActionExecuted):
            _step(self, history, history.replay, applied_event.hide_rule_turn, omit_unset_slots,
                  ignore_rule_only_turns, rule_only_data)
        history.replay.update(applied_event)
    if applied:
        history.consumed, history.first, history.last = len(applied), applied[0], applied[-1]
    kept[key] = history
    # The current tracker's own state comes last and is not kept: more events will follow.
    before = history.states[-1:]  # what the last step reads
    final = _History(history.replay, states=list(before), last_ml=history.last_ml,
                     hidden=history.hidden)
    _step(self, final, history.replay, False, omit_unset_slots, ignore_rule_only_turns,
          rule_only_data)
    return [_copied(s) for s in history.states + final.states[len(before):]]


Domain.states_for_tracker_history = states_for_tracker_history  # type: ignore[method-assign]
