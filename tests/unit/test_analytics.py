"""Analytics: outbox events from the real flows, the fold, the attribution rules, time zones,
idempotency, the API's contract and who may read it."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from analytics import fold as fold_module
from analytics.fold import fold_all
from analytics.models import AnswerFact, ConversationFact, HourlyRollup, ParseFact
from conversations.dialogue import BotReply, Turn
from core import db, outbox
from core.config import Settings, get_settings
from core.outbox import OutboxEvent
from staff.bootstrap import create_agent
from staff.schemas import AgentCreate
from tests.unit.conftest import ScriptedDialogue

pytestmark = pytest.mark.unit
PASSWORD = "correct horse battery"
T = TypeVar("T")
AUDIT = {"generator": "extractive", "latency_ms": 42.0, "stage_ms": {"retrieve": 30.0},
         "kept": ["kb-returns#1"], "dropped": [], "top_score": 0.81}


class AnalyticsDialogue(ScriptedDialogue):
    """Scripted turns for each path analytics follows: ``q:`` is answered from the knowledge
    base with a citation, ``x:`` abstains, ``bye`` closes the conversation, ``human`` asks for a
    person, ``??`` is not understood; Chinese text sets the language slot to zh."""

    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        self.calls.append((conversation_id, text, message_id))
        language = "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en"
        intent, confidence = "greet", 0.95
        replies = [BotReply(text=f"echo: {text}")]
        if text.startswith("q:"):
            intent, confidence = "return_policy", 0.9
            replies.append(BotReply(text=None, custom={
                "citations": [{"source_id": "kb-returns", "title": "Returns", "snippet": "14"}],
                "generator": "extractive", "audit": AUDIT}))
        elif text.startswith("x:"):
            intent, confidence = "product_info", 0.4
            replies.append(BotReply(text=None, custom={"abstained": True, "reason": "no_support"}))
        elif text == "bye":
            intent = "goodbye"
            replies.append(BotReply(text=None, custom={"resolve": True}))
        elif text == "human":
            intent = "request_human"
            replies.append(BotReply(text=None, custom={"handoff": {"reason": "customer_request"}}))
        elif text.startswith("??"):
            intent, confidence = "nlu_fallback", 0.3
        return Turn(replies=replies, slots={"language": language},
                    intent={"name": intent, "confidence": confidence, "model_version": "v7"})


@pytest.fixture
def dialogue() -> AnalyticsDialogue:
    return AnalyticsDialogue()


@pytest.fixture(autouse=True)
def _fold_by_hand(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's background folder stays idle: each test folds when its scenario is ready."""
    if "background" in request.node.name:
        return

    async def idle(*_: Any, **__: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(fold_module, "run_forever", idle)


def run_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()
    return asyncio.run(main())


def fold(settings: Settings, *, reopen_days: int = 7) -> int:
    async def main() -> int:
        engine = db.create_engine(settings.database_url)
        try:
            return await fold_all(db.sessionmaker(engine), reopen_days=reopen_days)
        finally:
            await engine.dispose()
    return asyncio.run(main())


def staff_member(settings: Settings, client: Any, email: str, role: str) -> dict[str, str]:
    create_agent(settings, AgentCreate(email=email, name=email.split("@")[0], password=PASSWORD,
                                       role=role))  # type: ignore[arg-type]
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def open_chat(client: Any, locale: str = "en") -> dict[str, Any]:
    body = client.post("/api/v1/conversations", json={"locale": locale}).json()
    body["headers"] = {"Authorization": f"Bearer {body['token']}"}
    return body


def say(client: Any, chat: dict[str, Any], *texts: str) -> str:
    state = ""
    for text in texts:
        chat["n"] = chat.get("n", 0) + 1
        response = client.post(f"/api/v1/conversations/{chat['id']}/messages",
                               headers=chat["headers"],
                               json={"text": text, "client_message_id": f"m{chat['n']}"})
        assert response.status_code == 200, response.text
        state = response.json()["state"]
    return state


def rate(client: Any, chat: dict[str, Any], score: int) -> None:
    response = client.post(f"/api/v1/conversations/{chat['id']}/csat", headers=chat["headers"],
                           json={"score": score})
    assert response.status_code == 204, response.text


def shift_events(settings: Settings, conversation_id: str, kinds: set[str],
                 days: int) -> None:
    """Move some of a conversation's recorded events later, as if they happened days on."""
    async def work(session: AsyncSession) -> None:
        for event in (await session.execute(select(OutboxEvent).where(
                OutboxEvent.conversation_id == conversation_id,
                OutboxEvent.kind.in_(kinds)))).scalars():
            event.at = event.at + timedelta(days=days)
    run_db(settings, work)


def day_window() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat(),
            "tz": "UTC"}


# ---------------------------------------------------------------- the seeded scenario

@pytest.fixture
def scenario(client: Any, settings: Settings) -> dict[str, Any]:
    """Eight conversations with known outcomes, driven through the public and console APIs."""
    admin = staff_member(settings, client, "root@example.com", "admin")
    assert client.put("/api/v1/agent/presence", headers=admin,
                      json={"presence": "online"}).status_code == 200
    chats = {name: open_chat(client) for name in ("answered", "agent", "abstained", "fallback",
                                                   "reopened", "reopened_late", "late_handoff",
                                                   "chinese")}
    # Answered from the knowledge base, closed by the bot, rated 5 (the bot's rating).
    say(client, chats["answered"], "q: can I return it?")
    assert say(client, chats["answered"], "bye") == "resolved"
    rate(client, chats["answered"], 5)
    # Asked for a person: claimed, answered, resolved and rated 3 by the customer (a human's).
    assert say(client, chats["agent"], "hello", "human") == "queued"
    cid = chats["agent"]["id"]
    assert client.post(f"/api/v1/agent/conversations/{cid}/claim",
                       headers=admin).status_code == 200
    assert client.post(f"/api/v1/agent/conversations/{cid}/messages", headers=admin,
                       json={"text": "Hi, I can help."}).status_code == 201
    assert client.post(f"/api/v1/agent/conversations/{cid}/resolve",
                       headers=admin).status_code == 200
    rate(client, chats["agent"], 3)
    # Two abstentions in a row, and two messages not understood: the triggers hand over.
    assert say(client, chats["abstained"], "x: a", "x: b") == "queued"
    assert say(client, chats["fallback"], "?? a", "?? b") == "queued"
    # Closed by the bot and reopened the same day: the resolution does not count.
    say(client, chats["reopened"], "bye", "one more thing")
    # Closed by the bot, reopened after the window: the resolution stands.
    say(client, chats["reopened_late"], "bye", "hello again")
    shift_events(settings, chats["reopened_late"]["id"], {"reopened"}, 8)
    # Closed by the bot, back after the window asking for a person: hand-off wins.
    say(client, chats["late_handoff"], "bye", "human")
    shift_events(settings, chats["late_handoff"]["id"], {"reopened", "handoff"}, 8)
    # An English page, a Chinese customer: counted in zh.
    assert say(client, chats["chinese"], "你好", "bye") == "resolved"
    return chats


def test_the_seeded_scenario_gives_exact_figures(client, settings, scenario):
    assert fold(settings) > 0
    response = client.post("/api/v1/auth/login",
                           json={"email": "root@example.com", "password": PASSWORD})
    admin = {"Authorization": f"Bearer {response.json()['token']}"}
    today = datetime.now(UTC).date()
    window = {"from": today.isoformat(), "to": (today + timedelta(days=9)).isoformat()}
    body = client.get("/api/v1/admin/analytics/summary", headers=admin,
                      params={**window, "tz": "UTC"}).json()
    assert set(body) == {"from", "to", "tz", "lang", "counts", "rates", "handoff_reasons", "csat",
                         "first_response_s", "resolution_s", "turn_latency_ms", "intents", "nlu",
                         "by_language", "previous", "today"}
    assert body["counts"] == {"conversations": 8, "bot_resolved": 3, "handed_off": 4,
                              "answers": 3, "abstained": 2}
    assert body["rates"] == {"containment_rate": 0.375, "handoff_rate": 0.5,
                             "abstention_rate": 0.6667}
    assert body["handoff_reasons"] == {"customer_request": 2, "knowledge_abstained": 1,
                                       "low_confidence": 1}
    assert body["csat"] == {"bot": {"avg": 5.0, "n": 1}, "human": {"avg": 3.0, "n": 1}}
    assert body["first_response_s"]["p50"] is not None and body["first_response_s"]["p50"] >= 0
    assert body["resolution_s"]["p50"] is not None
    assert body["turn_latency_ms"]["p50"] is not None
    assert body["by_language"]["zh"]["counts"] == {"conversations": 1, "bot_resolved": 1,
                                                   "handed_off": 0, "answers": 0, "abstained": 0}
    assert body["by_language"]["en"]["counts"]["conversations"] == 7
    assert body["previous"]["counts"]["conversations"] == 0
    assert body["today"]["counts"]["conversations"] == 8
    intents = {i["intent"]: i["count"] for i in body["intents"]}
    assert intents["goodbye"] == 5 and intents["nlu_fallback"] == 2
    (nlu,) = body["nlu"]
    assert (nlu["version"], nlu["canary"]) == ("v7", False)
    assert (nlu["parses"], nlu["fallback_rate"]) == (16, 0.125)

    zh = client.get("/api/v1/admin/analytics/summary", headers=admin,
                    params={**window, "lang": "zh"}).json()
    assert zh["counts"]["conversations"] == 1 and zh["rates"]["containment_rate"] == 1.0

    facts = run_db(settings, lambda s: _facts(s))
    reopened = facts[scenario["reopened"]["id"]]
    assert reopened.reopened and reopened.resolved_at is None and not reopened.bot_resolved
    late = facts[scenario["reopened_late"]["id"]]
    assert not late.reopened and late.bot_resolved
    handed = facts[scenario["late_handoff"]["id"]]
    assert handed.handed_off and not handed.bot_resolved and handed.resolved_by == "bot"
    agent = facts[scenario["agent"]["id"]]
    assert (agent.csat, agent.csat_by, agent.agent_id is not None) == (3, "human", True)
    assert agent.first_response_s is not None and agent.first_response_s >= 0
    answers = run_db(settings, lambda s: _all(s, AnswerFact))
    cited = next(a for a in answers if not a.abstained)
    assert (cited.sources, cited.question, cited.intent) == (["kb-returns"],
                                                              "q: can I return it?",
                                                              "return_policy")
    assert (cited.generator, cited.latency_ms, cited.top_score) == ("extractive", 42.0, 0.81)
    assert sorted(a.abstain_reason for a in answers if a.abstained) == ["no_support"] * 2

    series = client.get("/api/v1/admin/analytics/timeseries", headers=admin,
                        params={**day_window(), "metric": "bot_resolved"}).json()
    assert series["points"] == [{"t": f"{today.isoformat()}T00:00:00+00:00", "value": 3}]
    csat = client.get("/api/v1/admin/analytics/timeseries", headers=admin,
                      params={**day_window(), "metric": "csat"}).json()
    assert csat["points"][0]["value"] == 4.0


async def _facts(session: AsyncSession) -> dict[str, ConversationFact]:
    return {f.conversation_id: f for f in (await session.execute(
        select(ConversationFact))).scalars()}


async def _all(session: AsyncSession, model: Any) -> list[Any]:
    return list((await session.execute(select(model))).scalars())


async def _rollups(session: AsyncSession) -> list[tuple[Any, ...]]:
    return sorted((r.hour.isoformat(), r.language, r.metric, r.dimension, r.count, r.sum)
                  for r in (await session.execute(select(HourlyRollup))).scalars())


def test_rollups_agree_with_the_facts(client, settings, scenario):
    fold(settings)

    async def check(session: AsyncSession) -> None:
        facts = (await session.execute(select(ConversationFact))).scalars().all()
        expected: dict[tuple[Any, ...], list[float]] = {}
        for fact in facts:
            for key, (count, total) in fold_module.contributions(fact).items():
                cell = expected.setdefault(key, [0, 0.0])
                cell[0] += count
                cell[1] += total
        rows = (await session.execute(select(HourlyRollup))).scalars().all()
        actual = {(r.hour, r.language, r.metric, r.dimension): [r.count, r.sum]
                  for r in rows if r.count or r.sum}
        assert actual == expected

    run_db(settings, check)


# ---------------------------------------------------------------- idempotency

def test_a_duplicate_event_and_a_second_fold_change_nothing(client, settings, scenario):
    fold(settings)
    before = (run_db(settings, _facts), run_db(settings, _rollups))
    cid = scenario["answered"]["id"]

    async def again(session: AsyncSession) -> int:
        for _ in range(2):  # the same key twice: once more in this transaction, once again
            await outbox.record(session, kind="conversation.opened", key=f"opened:{cid}",
                                conversation_id=cid, language="en")
            await outbox.record(session, kind="csat", key=f"csat:{cid}", conversation_id=cid,
                                payload={"score": 1})
        return (await session.execute(select(func.count()).select_from(OutboxEvent))).scalar_one()

    events = run_db(settings, again)
    assert run_db(settings, again) == events
    assert fold(settings) == 0 and fold(settings) == 0
    after = (run_db(settings, _facts), run_db(settings, _rollups))
    assert {k: (f.csat, f.messages) for k, f in after[0].items()} == \
        {k: (f.csat, f.messages) for k, f in before[0].items()}
    assert after[1] == before[1]


def test_a_retried_message_records_nothing_new(client, settings):
    chat = open_chat(client)
    say(client, chat, "q: hello")
    count = run_db(settings, lambda s: _count(s, OutboxEvent))
    chat["n"] = 0  # the same client_message_id again
    say(client, chat, "q: hello")
    assert run_db(settings, lambda s: _count(s, OutboxEvent)) == count
    fold(settings)
    assert run_db(settings, lambda s: _count(s, ParseFact)) == 1
    assert run_db(settings, lambda s: _count(s, AnswerFact)) == 1


def test_answer_facts_keep_the_question_with_personal_data_masked(client, settings):
    chat = open_chat(client)
    say(client, chat, "q: refund to card 4111 1111 1111 1111 or mail anna@example.org?")
    fold(settings)
    (answer,) = run_db(settings, lambda s: _all(s, AnswerFact))
    assert answer.question == "q: refund to card [card] or mail [email]?"


async def _count(session: AsyncSession, model: Any) -> int:
    return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# ---------------------------------------------------------------- time zones

def test_a_conversation_at_2330_utc_is_the_next_day_in_shanghai(client, settings):
    admin = staff_member(settings, client, "root@example.com", "admin")
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)

    async def seed(session: AsyncSession) -> None:
        await outbox.record(session, kind="conversation.opened", key="opened:late",
                            conversation_id="late", at=late, language="en")
        await outbox.record(session, kind="handoff", key="handoff:late", conversation_id="late",
                            at=late + timedelta(minutes=5), payload={"reason": "customer_request"})
    run_db(settings, seed)
    fold(settings)

    def points(tz: str, interval: str = "day", **extra: str) -> list[dict[str, Any]]:
        response = client.get("/api/v1/admin/analytics/timeseries", headers=admin, params={
            "metric": "conversations", "interval": interval, "from": "2026-03-01",
            "to": "2026-03-03", "tz": tz, **extra})
        assert response.status_code == 200, response.text
        return response.json()["points"]

    assert points("UTC") == [{"t": "2026-03-01T00:00:00+00:00", "value": 1},
                             {"t": "2026-03-02T00:00:00+00:00", "value": 0}]
    assert points("Asia/Shanghai") == [{"t": "2026-03-01T00:00:00+08:00", "value": 0},
                                       {"t": "2026-03-02T00:00:00+08:00", "value": 1}]
    # A half-hour zone is counted from the facts: 05:00 in Kolkata on the 2nd.
    assert [p["value"] for p in points("Asia/Kolkata")] == [0, 1]
    hours = points("Asia/Kolkata", "hour")
    assert [p["t"] for p in hours if p["value"]] == ["2026-03-02T05:00:00+05:30"]
    assert len(points("Europe/Berlin", "hour")) == 48

    def conversations(day: str, tz: str) -> int:
        body = client.get("/api/v1/admin/analytics/summary", headers=admin, params={
            "from": day, "to": f"{day}T23:59:59.999999", "tz": tz}).json()
        return int(body["counts"]["conversations"])

    assert (conversations("2026-03-01", "UTC"), conversations("2026-03-02", "UTC")) == (1, 0)
    assert (conversations("2026-03-01", "Asia/Shanghai"),
            conversations("2026-03-02", "Asia/Shanghai")) == (0, 1)
    handed = client.get("/api/v1/admin/analytics/timeseries", headers=admin, params={
        "metric": "handed_off", "from": "2026-03-01", "to": "2026-03-03",
        "tz": "Asia/Shanghai"}).json()["points"]
    assert [p["value"] for p in handed] == [0, 1]


# ---------------------------------------------------------------- the API

def test_only_admins_and_analysts_read_analytics(client, settings):
    agent = staff_member(settings, client, "ana@example.com", "agent")
    analyst = staff_member(settings, client, "ann@example.com", "analyst")
    admin = staff_member(settings, client, "root@example.com", "admin")
    urls = ["/api/v1/admin/analytics/summary", "/api/v1/admin/analytics/timeseries",
            "/api/v1/admin/analytics/export.csv"]
    for url in urls:
        denied = client.get(url, headers=agent)
        assert (denied.status_code, denied.json()["error"]["code"]) == (403, "analytics_only")
        assert client.get(url).status_code == 401
        assert client.get(url, headers=analyst).status_code == 200, url
        assert client.get(url, headers=admin).status_code == 200, url
    # An analyst logs in and reads analytics only: not the console, not administration.
    assert client.get("/api/v1/auth/me", headers=analyst).json()["role"] == "analyst"
    for method, url in (("get", "/api/v1/agent/queue"), ("post", "/api/v1/agent/queue/next"),
                        ("get", "/api/v1/agents"), ("get", "/api/v1/admin/agents"),
                        ("get", "/api/v1/kb/articles")):
        response = getattr(client, method)(url, headers=analyst)
        assert response.status_code == 403, (url, response.text)
    with client.websocket_connect(
            f"/api/v1/agent/stream?token={analyst['Authorization'][7:]}") as socket:
        with pytest.raises(Exception) as closed:
            socket.receive_json()
        assert getattr(closed.value, "code", None) == 4403
    assert client.post("/api/v1/auth/logout", headers=analyst).status_code == 204


@pytest.mark.parametrize(("params", "code"), [
    ({"from": "yesterday"}, "invalid_date"),
    ({"from": "2026-01-01", "to": "2026-13-01"}, "invalid_date"),
    ({"tz": "Mars/Olympus"}, "unknown_timezone"),
    ({"tz": "../../etc/passwd"}, "unknown_timezone"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "invalid_range"),
    ({"from": "2026-01-01", "to": "2026-01-01"}, "invalid_range"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "range_too_long"),
    ({"metric": "happiness"}, "unknown_metric"),
    ({"interval": "week"}, "unknown_interval"),
])
def test_bad_input_is_a_4xx_with_a_stable_code(client, settings, params, code):
    admin = staff_member(settings, client, "root@example.com", "admin")
    url = "/api/v1/admin/analytics/" + ("timeseries" if {"metric", "interval"} & set(params)
                                        else "summary")
    response = client.get(url, headers=admin, params=params)
    assert (response.status_code, response.json()["error"]["code"]) == (422, code)


def test_export_has_one_redacted_row_per_conversation(client, settings):
    admin = staff_member(settings, client, "root@example.com", "admin")
    chat = open_chat(client)
    say(client, chat, "I am jo@example.com, order PL-123456, call +44 20 7946 0958", "bye")
    say(client, open_chat(client), "=HYPERLINK(\"http://evil\")")
    fold(settings)
    response = client.get("/api/v1/admin/analytics/export.csv", headers=admin,
                          params=day_window())
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 2
    mine = next(r for r in rows if r["id"] == chat["id"])
    assert mine["first_message"] == "I am [email], order [order], call [phone]"
    assert (mine["outcome"], mine["language"], mine["messages"]) == ("bot_resolved", "en", "4")
    other = next(r for r in rows if r["id"] != chat["id"])
    assert other["first_message"].startswith("'=")


def test_the_api_folds_in_the_background(settings, dialogue):
    from fastapi.testclient import TestClient

    from web.app import create_app

    with TestClient(create_app(settings, dialogue=dialogue)) as client:
        admin = staff_member(settings, client, "root@example.com", "admin")
        say(client, open_chat(client), "bye")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            body = client.get("/api/v1/admin/analytics/summary", headers=admin,
                              params=day_window()).json()
            if body["counts"]["bot_resolved"] == 1:
                break
            time.sleep(0.2)
        assert body["counts"] == {"conversations": 1, "bot_resolved": 1, "handed_off": 0,
                                  "answers": 0, "abstained": 0}


def test_parley_agents_create_makes_an_analyst(tmp_path, monkeypatch):
    from web.cli import app

    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARLEY_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("PARLEY_NEW_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["agents", "create", "--email", "an@example.com",
                                          "--name", "An", "--role", "analyst"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "created analyst an@example.com" in result.output
