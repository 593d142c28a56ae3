"""Rasa's tracker store and event broker as Parley runs them (``bot.components.rasa_speedups``):
the same events stored and published as Rasa 3.6's own ``SQLTrackerStore.save``, in the same
order, across turns and a new session; the tracker a process saved reused only while the stored
session is unchanged (another process's turn, a failed turn, a deletion); SQLite files in
write-ahead-log mode with pooled connections; and the channel's cheap check for an already
handled message id. Runs in the Rasa virtual environment, as the Rasa server does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = Path(os.environ.get("PARLEY_RASA_VENV", ROOT / ".venv-rasa")) / "bin" / "python"
pytestmark = pytest.mark.unit

SCRIPT = r"""
import asyncio, json, sqlite3, sys, time
from bot.components import rasa_speedups
from bot.components.parley_channel import _maybe_seen
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, BotUttered, SessionStarted, SlotSet,
                                     UserUttered)
from rasa.shared.core.trackers import DialogueStateTracker

folder = sys.argv[1]
domain = Domain.from_dict({"intents": ["greet", "ask"], "slots": {"language": {
    "type": "text", "mappings": [{"type": "custom"}]}}, "responses": {"utter_hi": [
    {"text": "hi"}]}})


def store(name, save):
    broker = SQLEventBroker(db=f"{folder}/{name}-events.db")
    tracker_store = SQLTrackerStore(domain, dialect="sqlite", db=f"{folder}/{name}-tracker.db",
                                    event_broker=broker)
    return tracker_store, save


def turn(n, message_id):
    return [UserUttered(f"text {n}", {"name": "ask", "confidence": 0.9},
                        metadata={"parley_message_id": message_id}, timestamp=100 + n),
            SlotSet("language", "en", timestamp=100 + n),
            ActionExecuted("utter_hi", timestamp=100 + n),
            BotUttered("hi", {"buttons": None}, timestamp=100 + n),
            ActionExecuted("action_listen", timestamp=100 + n)]


def session_start(t):
    return [ActionExecuted("action_session_start", timestamp=t), SessionStarted(timestamp=t),
            ActionExecuted("action_listen", timestamp=t)]


async def run(tracker_store, save):
    # Each save gets the tracker Rasa would hold: retrieved, then extended by a turn.
    batches = [session_start(1) + turn(1, "m_1"), turn(2, "m%2"), session_start(50),
               turn(3, "m_3") + turn(4, "m4")]
    for batch in batches:
        tracker = (await tracker_store.retrieve("c")
                   or DialogueStateTracker("c", domain.slots))
        for event in batch:
            tracker.update(event)
        await save(tracker_store, tracker)


def rows(path, query):
    with sqlite3.connect(path) as db:
        return [list(r) for r in db.execute(query)]


async def main():
    out = {}
    for name, save in (("rasa", rasa_speedups.ORIGINAL_SAVE), ("parley", SQLTrackerStore.save)):
        tracker_store, save = store(name, save)
        await run(tracker_store, save)
        tracker_store.event_broker.engine.dispose()
        out[name] = {
            "tracker": rows(f"{folder}/{name}-tracker.db", "SELECT sender_id, type_name, "
                            "timestamp, intent_name, action_name, data FROM events ORDER BY id"),
            "broker": rows(f"{folder}/{name}-events.db",
                           "SELECT sender_id, data FROM events ORDER BY id"),
            "journal": rows(f"{folder}/{name}-tracker.db", "PRAGMA journal_mode")[0][0],
            "seen": [await _maybe_seen(tracker_store, "c", m)
                     for m in ("m_1", "m%2", "m4", "m_", "m%", "m", "m_5", "x")],
            "seen_other_sender": await _maybe_seen(tracker_store, "d", "m_1"),
            "pool": type(tracker_store.engine.pool).__name__,
        }
    out["kept"] = await kept_trackers(tracker_store)
    print(json.dumps(out))


def dicts(tracker):
    return [e.as_dict() for e in tracker.events] if tracker is not None else None


async def kept_trackers(tracker_store):
    # The tracker this process saved is reused only while the stored session is unchanged.
    def loaded():
        return rasa_speedups.ORIGINAL_RETRIEVE(tracker_store, "c")
    out = {}
    first, second = await tracker_store.retrieve("c"), await tracker_store.retrieve("c")
    out["reused"] = first is second and dicts(first) == dicts(await loaded())
    # A turn that failed after changing the tracker in memory saved nothing.
    first.update(UserUttered("lost", {"name": "ask", "confidence": 1.0}))
    out["failed_turn_forgotten"] = dicts(await tracker_store.retrieve("c")) == dicts(
        await loaded())
    # Another Rasa process on the same database saves a turn.
    other = SQLTrackerStore(domain, dialect="sqlite", db=f"{folder}/parley-tracker.db")
    theirs = await other.retrieve("c")
    for event in turn(9, "m9"):
        theirs.update(event)
    await other.save(theirs)
    mine = await tracker_store.retrieve("c")
    out["sees_other_process"] = dicts(mine) == dicts(theirs) and mine is not theirs
    # Our next turn is kept again; then the conversation is deleted (retention).
    for event in turn(10, "m10"):
        mine.update(event)
    await tracker_store.save(mine)
    out["kept_after_save"] = await tracker_store.retrieve("c") is mine
    with sqlite3.connect(f"{folder}/parley-tracker.db") as db:
        db.execute("DELETE FROM events WHERE sender_id = 'c'")
    out["deleted"] = await tracker_store.retrieve("c") is None
    return out

asyncio.run(main())
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa virtual environment is absent")
def test_tracker_store_and_broker_match_rasa_and_the_channel_finds_handled_messages(
        tmp_path: Path) -> None:
    result = subprocess.run([str(RASA_PYTHON), "-c", SCRIPT, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    rasa, parley = out["rasa"], out["parley"]
    # 4 saves: 8 + 5 + 3 + 10 events; the broker gets every one, in the tracker's order.
    assert len(rasa["tracker"]) == len(rasa["broker"]) == 26
    assert parley["tracker"] == rasa["tracker"]
    assert parley["broker"] == rasa["broker"]
    assert [json.loads(data)["event"] for _, data in parley["broker"][:3]] == [
        "action", "session_started", "action"]
    # The channel: only a message id the tracker holds (LIKE wildcards are literal).
    assert parley["seen"] == [True, True, True, False, False, False, False, False]
    assert parley["seen_other_sender"] is False
    assert parley["journal"] == "wal" and parley["pool"] == "QueuePool"
    assert out["kept"] == {"reused": True, "failed_turn_forgotten": True,
                           "sees_other_process": True, "kept_after_save": True,
                           "deleted": True}


STATES = r"""
import json, random, sys
from bot.components import rasa_speedups
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, ActionReverted, ActiveLoop, BotUttered,
                                     FollowupAction, Restarted, SessionStarted, SlotSet,
                                     UserUttered, UserUtteranceReverted)
from rasa.shared.core.trackers import DialogueStateTracker

domain = Domain.from_dict({
    "intents": ["greet", "ask", "order_status", "deny"],
    "entities": ["order_id"],
    "slots": {
        "language": {"type": "categorical", "values": ["en", "zh"], "mappings": [
            {"type": "custom"}]},
        "order_id": {"type": "text", "mappings": [{"type": "from_entity",
                                                   "entity": "order_id"}]},
        "verified": {"type": "bool", "influence_conversation": True,
                     "mappings": [{"type": "custom"}]}},
    "forms": {"order_form": {"required_slots": ["order_id"]}},
    "responses": {"utter_hi": [{"text": "hi"}], "utter_ask_order_id": [{"text": "id?"}]},
    "actions": ["action_answer", "action_detect_language"]})
rule_only = {"slots": ["verified"], "active_loops": ["order_form"]}
ARGS = [(omit, ignore, data) for omit in (False, True) for ignore in (False, True)
        for data in (None, rule_only)]


def random_events(rng, n):
    events = [ActionExecuted("action_session_start"), SessionStarted(),
              ActionExecuted("action_listen")]
    for _ in range(n):
        kind = rng.random()
        intent = rng.choice(["greet", "ask", "order_status", "deny"])
        entities = ([{"entity": "order_id", "value": "PL-1", "start": 0, "end": 4}]
                    if rng.random() < 0.3 else [])
        events.append(UserUttered(f"t{rng.random()}", {"name": intent, "confidence": 1.0},
                                  entities))
        if rng.random() < 0.5:
            events.append(ActionExecuted("action_detect_language",
                                         hide_rule_turn=rng.random() < 0.5))
            events.append(SlotSet("language", rng.choice(["en", "zh"])))
        if kind < 0.2:
            form = rng.choice(["order_form", "order_form", "other_form"])
            events += [ActionExecuted(form), ActiveLoop(form),
                       SlotSet("requested_slot", "order_id"),
                       BotUttered("id?"), ActionExecuted("action_listen")]
        elif kind < 0.3:
            events += [ActionExecuted("order_form"), SlotSet("order_id", "PL-1"),
                       ActiveLoop(None), SlotSet("verified", rng.random() < 0.5),
                       ActionExecuted("utter_hi", hide_rule_turn=True),
                       ActionExecuted("action_listen", hide_rule_turn=True)]
        elif kind < 0.36:
            events += [UserUtteranceReverted()]
        elif kind < 0.40:
            events += [ActionExecuted("action_answer"), ActionReverted(),
                       ActionExecuted("action_listen")]
        elif kind < 0.43:
            events += [Restarted(), ActionExecuted("action_session_start"), SessionStarted(),
                       ActionExecuted("action_listen")]
        elif kind < 0.47:
            events += [FollowupAction("utter_hi"), ActionExecuted("utter_hi"),
                       ActionExecuted("action_listen")]
        else:
            events += [ActionExecuted("action_answer", hide_rule_turn=rng.random() < 0.3),
                       BotUttered("answer"), ActionExecuted("action_listen")]
    return events


compared = mismatches = 0
for seed in range(int(sys.argv[1])):
    rng = random.Random(seed)
    tracker = DialogueStateTracker("c", domain.slots)
    for event in random_events(rng, 12):
        tracker.update(event)
        for omit, ignore, data in ARGS:
            expected = rasa_speedups._ORIGINAL_STATES(domain, tracker, omit, ignore, data)
            got = domain.states_for_tracker_history(tracker, omit, ignore, data)
            compared += 1
            mismatches += got != expected
            mismatches += tracker.applied_events() != rasa_speedups._ORIGINAL_APPLIED(tracker)
            for state in got:  # as the featurizers do: the next call must not see it
                state.pop("user", None)
                state["prev_action"] = {"action_name": "edited"}
print(json.dumps({"compared": compared, "mismatches": mismatches}))
"""


@pytest.mark.skipif(not RASA_PYTHON.exists(), reason="the Rasa virtual environment is absent")
def test_policy_states_continue_from_where_they_were_and_equal_rasa_s() -> None:
    """Random conversations (forms, rule-only turns, reverts, restarts, follow-ups), checked
    after every event under every argument the policies use, while the caller edits what it
    got back as the featurizers do."""
    result = subprocess.run([str(RASA_PYTHON), "-c", STATES, "40"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["compared"] > 10_000 and out["mismatches"] == 0, out
