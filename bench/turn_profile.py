"""Where a turn's milliseconds go: per-stage p50/p95 for greeting and knowledge turns.

Starts the real stack (``tests.stack.running_stack``), sends ``--n`` greetings and ``--n``
knowledge questions one at a time (alternating, so both kinds see the same load), and after
each turn, outside the timed turn, measures what the stages took:

- **API total**: the client's time for ``POST /api/v1/conversations/{id}/messages``;
- **Rasa round trip**: the API's ``parley_turn_seconds`` histogram (``/metrics``, scraped after
  every turn, so the change of its sum is this turn's time), checked against the ``turn_ms`` the
  API stores in the turn's ``nlu.parse`` analytics event;
- **store and API**: API total − Rasa round trip (HTTP, auth, the database reads and writes
  around the turn, the analytics events);
- **NLU parse**: the same text sent again to the NLU service's ``/model/parse`` (client time),
  and the service's own figure (``/admin/stats``, model time);
- **action server**: the custom actions the turn ran, called again on the action server's
  ``/webhook`` with the turn's tracker (from Rasa's ``/conversations/{id}/tracker``):
  ``action_answer_from_knowledge`` on knowledge turns (a greeting calls none: the language
  slot comes from the NLU service's parse);
- **retrieval / generation / gate**: the answer's audit (``stage_ms``, ``latency_ms``), stored
  with the customer message (``messages.data.audit``; not in the public API), read from the
  database with the stack's settings;
- **Rasa itself**: Rasa round trip − NLU parse − action server (policies, tracker store,
  channel, HTTP between the processes); for scale, the time of one ``GET /tracker`` (a
  tracker-store retrieval, which Parley's channel does twice a turn besides Rasa's own).

The NLU and action figures are second calls with the same input right after the turn, not the
turn's own calls; the per-turn difference is therefore an estimate.

    .venv/bin/python bench/turn_profile.py [--n 40] [--state DIR] [--report r.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.turn_latency import Client, Conversation, Workload, load, percentile, stack_at
from conversations.models import Message
from core.db import sync_url
from core.outbox import OutboxEvent
from tests.stack import Stack

CUSTOM_ACTIONS = {"action_answer_from_knowledge", "action_handoff"}
STAGES = [  # (key, label)
    ("api_total", "API total (client)"),
    ("store", "  store and API (total − Rasa round trip)"),
    ("rasa_rt", "  Rasa round trip (API histogram)"),
    ("nlu_http", "    NLU parse (HTTP, direct call)"),
    ("nlu_model", "      of which model (NLU service stats)"),
    ("action", "    action server (/webhook, direct call)"),
    ("action_answer", "      action_answer_from_knowledge"),
    ("answer", "        answer (audit latency_ms)"),
    ("retrieval", "          retrieval (audit)"),
    ("generation", "          generation (audit)"),
    ("gate", "          gate (audit)"),
    ("rasa_own", "    Rasa itself (round trip − NLU − actions)"),
    ("tracker_fetch", "      for scale: GET /tracker (one retrieval)"),
]


class Probe:
    """The stack's internal endpoints, called outside the customer's turn."""

    def __init__(self, stack: Stack) -> None:
        settings = stack.settings
        self.token = settings.rasa_token.get_secret_value()
        self.api = httpx.AsyncClient(base_url=stack.api_url, timeout=60)
        self.rasa = httpx.AsyncClient(base_url=settings.rasa_url, timeout=60)
        self.nlu = httpx.AsyncClient(base_url=settings.nlu_url, timeout=60)
        self.actions = httpx.AsyncClient(timeout=60)
        self.action_url = settings.action_url
        self.domain: dict[str, Any] = {}
        self.rasa_version = ""

    async def start(self) -> None:
        domain = await self.rasa.get("/domain", params={"token": self.token},
                                     headers={"Accept": "application/json"})
        domain.raise_for_status()
        self.domain = domain.json()
        status = await self.rasa.get("/version")
        self.rasa_version = status.json().get("version", "3.6.0")

    async def turn_seconds(self) -> tuple[float, float]:
        """(sum, count) of the API's Rasa round-trip histogram."""
        text = (await self.api.get("/metrics")).raise_for_status().text
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("parley_turn_seconds_sum", "parley_turn_seconds_count"):
                values[name] = float(value)
        return values["parley_turn_seconds_sum"], values["parley_turn_seconds_count"]

    async def parse(self, text: str, lang: str, conversation_id: str) -> float:
        started = time.perf_counter()
        response = await self.nlu.post("/model/parse", json={
            "text": text, "locale": lang, "conversation_id": conversation_id})
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed * 1000

    async def tracker(self, conversation_id: str) -> dict[str, Any]:
        response = await self.rasa.get(f"/conversations/{conversation_id}/tracker",
                                       params={"token": self.token})
        return response.raise_for_status().json()

    async def action(self, name: str, tracker: dict[str, Any]) -> float:
        started = time.perf_counter()
        response = await self.actions.post(self.action_url, json={
            "next_action": name, "sender_id": tracker["sender_id"], "tracker": tracker,
            "domain": self.domain, "version": self.rasa_version})
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed * 1000

    async def aclose(self) -> None:
        for client in (self.api, self.rasa, self.nlu, self.actions):
            await client.aclose()


def actions_of_last_turn(tracker: dict[str, Any]) -> list[str]:
    """The custom actions Rasa ran after the tracker's last user message."""
    events = tracker.get("events") or []
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    return [e["name"] for e in events[last_user + 1:]
            if e.get("event") == "action" and e.get("name") in CUSTOM_ACTIONS]


async def profile(stack: Stack, n: int, per_conversation: int) -> list[dict[str, Any]]:
    workload = Workload()
    client = Client(stack.api_url, per_conversation=per_conversation)
    probe = Probe(stack)
    rows: list[dict[str, Any]] = []
    try:
        await probe.start()
        conversation: Conversation | None = None
        for i in range(2 * n + 6):  # the first 6 turns warm the processes up
            conversation = await client.fresh(conversation)
            kind, text, lang = workload.next()
            before = await probe.turn_seconds()
            sample = await client.turn(conversation, kind, text)
            after = await probe.turn_seconds()
            if not sample.ok or i < 6:
                continue
            row: dict[str, Any] = {
                "kind": kind, "message_id": sample.message_id, "text": text,
                "api_total": sample.seconds * 1000,
                "rasa_rt": (after[0] - before[0]) * 1000 if after[1] == before[1] + 1 else None,
                "nlu_http": await probe.parse(text, lang, conversation.id)}
            started = time.perf_counter()
            tracker = await probe.tracker(conversation.id)
            row["tracker_fetch"] = (time.perf_counter() - started) * 1000
            row["actions"] = actions_of_last_turn(tracker)
            row["action"] = 0.0
            for name in row["actions"]:
                elapsed = await probe.action(name, tracker)
                row["action"] += elapsed
                if name == "action_answer_from_knowledge":
                    row["action_answer"] = elapsed
            rows.append(row)
    finally:
        await probe.aclose()
        await client.aclose()
    add_stored(stack, rows)
    for row in rows:
        if row["rasa_rt"] is not None:
            row["store"] = row["api_total"] - row["rasa_rt"]
            row["rasa_own"] = row["rasa_rt"] - row["nlu_http"] - row["action"]
    return rows


def add_stored(stack: Stack, rows: list[dict[str, Any]]) -> None:
    """The answer audit (``messages.data.audit``), the NLU intent and the API's own ``turn_ms``
    (``nlu.parse`` event) of each turn, from the stack's database."""
    engine = create_engine(sync_url(stack.settings.database_url))
    with Session(engine) as session:
        for row in rows:
            message = session.execute(
                select(Message).where(Message.id == row["message_id"])).scalar_one()
            row["intent"] = message.data.intent
            audit = message.data.audit
            if audit is not None:
                row["answer"] = audit.latency_ms
                for stage in ("retrieval", "generation", "gate"):
                    row[stage] = audit.stage_ms.get(stage)
            event = session.execute(select(OutboxEvent).where(
                OutboxEvent.key == f"nlu.parse:{row['message_id']}")).scalar_one_or_none()
            row["turn_ms_event"] = event.payload.get("turn_ms") if event else None
    engine.dispose()


def table(rows: list[dict[str, Any]], nlu_model: dict[str, float | None]) -> tuple[str, dict]:
    figures: dict[str, dict[str, dict[str, float | None]]] = {}
    lines = [f"{'stage':<46} {'greeting p50':>12} {'p95':>8} {'knowledge p50':>14} {'p95':>8}",
             "-" * 92]
    for key, label in STAGES:
        cells = []
        for kind in ("greeting", "knowledge"):
            values = [r[key] for r in rows if r["kind"] == kind and r.get(key) is not None]
            if key == "nlu_model":
                p50, p95 = nlu_model.get("p50"), nlu_model.get("p95")
            else:
                p50 = round(percentile(values, .5), 1) if values else None
                p95 = round(percentile(values, .95), 1) if values else None
            figures.setdefault(key, {})[kind] = {"p50": p50, "p95": p95}
            cells.append((p50, p95))
        text = [f"{v:.1f}" if v is not None else "–" for pair in cells for v in pair]
        lines.append(f"{label:<46} {text[0]:>12} {text[1]:>8} {text[2]:>14} {text[3]:>8}")
    return "\n".join(lines), figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="turns of each kind")
    parser.add_argument("--per-conversation", type=int, default=10)
    parser.add_argument("--state", type=Path, default=None,
                        help="keep the stack's state (models, knowledge base) here")
    parser.add_argument("--report", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    with stack_at(args.state) as stack:
        before = load()
        print(f"stack ready; {before}", flush=True)
        rows = asyncio.run(profile(stack, args.n, args.per_conversation))
        stats = asyncio.run(_stats(stack))
    after = load()
    live: dict[str, Any] = next(iter(stats.get("live", {}).values()), {})
    nlu_model = {"p50": live.get("latency_p50_ms"), "p95": live.get("latency_p95_ms")}
    text, figures = table(rows, nlu_model)
    print(text)
    intents: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = intents.setdefault(row["kind"], {})
        counts[str(row.get("intent"))] = counts.get(str(row.get("intent")), 0) + 1
    checked = [(r["rasa_rt"], r["turn_ms_event"]) for r in rows
               if r["rasa_rt"] is not None and r["turn_ms_event"] is not None]
    drift = max((abs(a - b) for a, b in checked), default=None)
    print(f"intents: {intents}")
    print("NLU model time is the service's own p50/p95 over every parse it served "
          "(both kinds, the turns' and the direct calls)")
    if drift is not None:
        print(f"histogram vs stored turn_ms: largest difference {drift:.1f} ms "
              f"over {len(checked)} turns")
    print(f"before: {before}; after: {after}")
    if args.report:
        args.report.write_text(json.dumps({
            "command": " ".join(["bench/turn_profile.py", *sys.argv[1:]]),
            "load_before": before, "load_after": after, "intents": intents,
            "stages": figures, "rows": rows}, indent=2, ensure_ascii=False) + "\n")


async def _stats(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.settings.nlu_url, timeout=30) as nlu:
        return (await nlu.get("/admin/stats")).raise_for_status().json()


if __name__ == "__main__":
    main()
