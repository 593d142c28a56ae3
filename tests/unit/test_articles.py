"""The knowledge-base editor: versions, conflicts, diff, restore, audit, admin only, safe
preview, search, publishing to the document index, asking the bot, the entity editor and
importing files.

Publishing goes through the workers' task queue; here the queue dependency is ``None`` (the
editor then indexes in process, as it does until ``workers.queue`` exists), except in the
tests that check what is handed to the queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from knowledge.articles.deps import get_task_queue
from knowledge.articles.render import render_markdown
from knowledge.articles.router import router as kb_router
from staff.schemas import AgentCreate
from web.app import create_app

pytestmark = pytest.mark.unit
PASSWORD = "correct horse battery"
KB = "/api/v1/kb"
RETURNS = """## The return window

You can return most items within 30 days of delivery, for any reason.

## How to send something back

1. Request a return in your account under **Orders**.
2. Attach the prepaid label and hand the parcel to the carrier.
"""


class RecordingQueue:
    """Stands in for ``workers.queue``: keeps what was enqueued, after a JSON round trip."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, dict[str, Any], str | None]] = []

    def enqueue(self, task: str, payload: dict[str, Any], *, key: str | None = None) -> str:
        self.tasks.append((task, json.loads(json.dumps(payload)), key))
        return f"task-{len(self.tasks)}"


@pytest.fixture
def app(settings, dialogue):  # type: ignore[no-untyped-def]
    settings.cpu_llm = "never"  # deterministic answers: the extractive generator
    application = create_app(settings, dialogue=dialogue)
    if not any(getattr(r, "path", "").startswith(KB) for r in application.routes):
        application.include_router(kb_router)  # until web/app.py mounts it
    application.dependency_overrides[get_task_queue] = lambda: None
    return application


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


def make_staff(settings, email: str, role: str) -> None:  # type: ignore[no-untyped-def]
    from staff.bootstrap import create_agent

    create_agent(settings, AgentCreate(email=email, name=email.split("@")[0].title(),
                                       password=PASSWORD, role=role))  # type: ignore[arg-type]


def login(client: TestClient, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def admin(client, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    make_staff(settings, "root@example.com", "admin")
    return login(client, "root@example.com")


@pytest.fixture
def agent(client, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    make_staff(settings, "ana@example.com", "agent")
    return login(client, "ana@example.com")


def create(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"id": "returns", "title": "Returns at a glance", "tags": ["returns"],
            "body": RETURNS, "lang": "en", **fields}
    response = client.post(f"{KB}/articles", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def edit(client: TestClient, headers: dict[str, str], article: dict[str, Any],
         **changes: Any) -> Any:
    body = {"version": article["version"], "title": article["title"], "tags": article["tags"],
            "body": article["body"], **changes}
    return client.put(f"{KB}/articles/{article['id']}", headers=headers, json=body)


def publish(client: TestClient, headers: dict[str, str], article: dict[str, Any]
            ) -> dict[str, Any]:
    response = client.post(f"{KB}/articles/{article['id']}/publish", headers=headers,
                           json={"version": article["version"]})
    assert response.status_code == 200, response.text
    return response.json()


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# ---------------------------------------------------------------- access

ROUTES = [("get", f"{KB}/articles", None), ("post", f"{KB}/articles", {"id": "x"}),
          ("get", f"{KB}/articles/returns", None), ("get", f"{KB}/audit", None),
          ("post", f"{KB}/articles/returns/publish", {"version": 1}),
          ("delete", f"{KB}/articles/returns", None),
          ("post", f"{KB}/preview", {"body": "x"}), ("post", f"{KB}/ask", {"question": "x"}),
          ("get", f"{KB}/entities/Product", None),
          ("put", f"{KB}/entities/Policy/returns", {"props": {}}),
          ("delete", f"{KB}/entities/Policy/returns", None)]


def test_every_route_needs_an_admin(client, agent):
    for method, url, body in ROUTES:
        kwargs = {"json": body} if body is not None else {}
        assert error(client.request(method, url, **kwargs)) == (401, "missing_token"), url
        assert error(client.request(method, url, headers=agent, **kwargs)) == \
            (403, "admin_only"), url


# ---------------------------------------------------------------- versions

def test_every_save_is_a_version_and_the_history_is_kept(client, admin):
    article = create(client, admin, note="first draft")
    assert (article["version"], article["status"], article["published_version"]) == \
        (1, "draft", None)
    changed = edit(client, admin, article, body=RETURNS.replace("30 days", "45 days"),
                   note="longer window")
    assert changed.status_code == 200, changed.text
    latest = changed.json()
    assert latest["version"] == 2 and "45 days" in latest["body"]
    assert [(v["version"], v["note"]) for v in latest["versions"]] == \
        [(2, "longer window"), (1, "first draft")]
    first = client.get(f"{KB}/articles/returns/versions/1", headers=admin).json()
    assert "30 days" in first["body"] and first["author_id"] is not None
    assert error(client.get(f"{KB}/articles/returns/versions/9", headers=admin)) == \
        (404, "version_not_found")

    unchanged = edit(client, admin, latest)  # saving the same text is not a new version
    assert unchanged.json()["version"] == 2


def test_an_edit_of_a_stale_version_is_refused(client, admin):
    article = create(client, admin)
    assert edit(client, admin, article, title="Returns").status_code == 200
    stale = edit(client, admin, article, body="Someone else's edit of version 1.")
    assert error(stale) == (409, "version_conflict")
    assert stale.json()["error"]["details"] == {"your_version": 1, "latest_version": 2}
    assert client.get(f"{KB}/articles/returns", headers=admin).json()["title"] == "Returns"


def test_diff_between_two_versions(client, admin):
    article = create(client, admin)
    edit(client, admin, article, body=RETURNS.replace("30 days", "45 days"),
         tags=["returns", "policy"])
    lines = client.get(f"{KB}/articles/returns/diff", params={"from": 1, "to": 2},
                       headers=admin).json()["lines"]
    assert lines[:2] == ["--- v1", "+++ v2"]
    assert "-You can return most items within 30 days of delivery, for any reason." in lines
    assert "+You can return most items within 45 days of delivery, for any reason." in lines
    assert "-Tags: returns" in lines and "+Tags: returns, policy" in lines
    assert not any(line.startswith(("+", "-")) and "How to send" in line for line in lines)


def test_restoring_an_old_version_saves_it_as_the_newest(client, admin):
    article = create(client, admin)
    latest = edit(client, admin, article, body="Returns are no longer possible.").json()
    stale = client.post(f"{KB}/articles/returns/restore", headers=admin,
                        json={"version": 1, "base_version": 1})
    assert error(stale) == (409, "version_conflict")
    restored = client.post(f"{KB}/articles/returns/restore", headers=admin,
                           json={"version": 1, "base_version": latest["version"]}).json()
    assert restored["version"] == 3 and restored["body"] == article["body"]
    assert restored["versions"][0]["note"] == "Restored version 1"


def test_bad_input_gets_stable_codes(client, admin):
    assert error(client.post(f"{KB}/articles", headers=admin, json={
        "id": "Not A Slug!", "title": "t", "body": "b"})) == (422, "validation_error")
    assert error(client.post(f"{KB}/articles", headers=admin, json={
        "id": "ok", "title": "  ", "body": "b"})) == (422, "validation_error")
    assert error(client.post(f"{KB}/articles", headers=admin, json={
        "id": "ok", "title": "t", "body": "b", "lang": "fr"})) == (422, "validation_error")
    create(client, admin)
    assert error(client.post(f"{KB}/articles", headers=admin, json={
        "id": "returns", "title": "t", "body": "b"})) == (409, "article_exists")
    assert error(client.get(f"{KB}/articles/nope", headers=admin)) == \
        (404, "article_not_found")
    assert error(client.post(f"{KB}/articles/returns/publish", headers=admin,
                             json={"version": 7})) == (409, "version_conflict")
    headings_only = create(client, admin, id="empty", body="# Only a heading")
    assert error(client.post(f"{KB}/articles/empty/publish", headers=admin,
                             json={"version": headings_only["version"]})) == \
        (422, "nothing_to_index")


# ---------------------------------------------------------------- preview

def test_preview_renders_basic_markdown_and_escapes_everything_else(client, admin):
    source = ("# Title\n\n<script>alert(1)</script> **bold** and *it*\n\n"
              "- [docs](https://example.com/a?b=1&c=2)\n- [bad](javascript:alert)\n"
              '- [quote](https://x.example/"onmouseover="alert(1))\n\n'
              '<img src=x onerror="alert(1)"> <a href="javascript:alert(1)">x</a>')
    html = client.post(f"{KB}/preview", headers=admin, json={"body": source}).json()["html"]
    assert "<h1>Title</h1>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert ('<a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener noreferrer">'
            "docs</a>") in html
    assert "<li>bad</li>" in html and 'href="javascript' not in html
    assert "<img" not in html and "&lt;img" in html and "onmouseover=\"" not in html
    assert html.count("<a ") == 1


@pytest.mark.parametrize("source", ["<svg/onload=alert(1)>", "[x](data:text/html,<script>)",
                                    "[x](//evil.example)", "`<b>` <iframe>",
                                    "**[y](vbscript:msgbox)**", "\x00<script>"])
def test_preview_never_emits_markup_from_the_source(source):
    html = render_markdown(source)
    for tag in ("<svg", "<script", "<iframe", "<b>", "href="):
        assert tag not in html


# ---------------------------------------------------------------- search

def test_list_and_search_with_filters(client, admin):
    create(client, admin)
    create(client, admin, id="returns-zh", lang="zh", title="退货政策",
           body="大部分商品在签收后 30 天内可以无理由退货。")
    create(client, admin, id="faq-refund", kind="faq", title="How long does a refund take?",
           body="Refunds arrive within 5–7 business days.")

    def ids(**params: Any) -> list[str]:
        response = client.get(f"{KB}/articles", headers=admin, params=params)
        assert response.status_code == 200, response.text
        return sorted(item["id"] for item in response.json()["items"])

    assert ids() == ["faq-refund", "returns", "returns-zh"]
    assert ids(q="CARRIER") == ["returns"]  # body text, any case
    assert ids(q="refund business") == ["faq-refund"]  # every word must match
    assert ids(q="无理由") == ["returns-zh"]
    assert ids(lang="zh") == ["returns-zh"]
    assert ids(kind="faq") == ["faq-refund"]
    assert ids(q="100%_") == []  # LIKE wildcards are literal
    page = client.get(f"{KB}/articles", headers=admin, params={"limit": 2, "offset": 2}).json()
    assert (page["total"], len(page["items"])) == (3, 1)
    assert "body" not in page["items"][0]


# ---------------------------------------------------------------- publish, ask, delete

def search_index(client: TestClient, text: str) -> list[Any]:
    index = client.app.state.document_index  # type: ignore[attr-defined]
    return client.portal.call(lambda: index.search(text, k=5))  # type: ignore[union-attr]


def test_publish_makes_the_new_text_searchable(client, app, admin):
    article = create(client, admin)
    published = publish(client, admin, article)
    assert published["task"]["state"] == "done" and published["task"]["detail"]["added"] >= 1
    assert published["article"]["status"] == "published"
    assert published["article"]["published_version"] == 1
    latest = edit(client, admin, published["article"],
                  body=RETURNS.replace("30 days", "45 days")).json()
    assert (latest["status"], latest["version"], latest["published_version"]) == \
        ("published", 2, 1)
    publish(client, admin, latest)

    hits = search_index(client, "return most items within days")
    texts = [hit.chunk.text for hit in hits if hit.chunk.doc_id == "returns"]
    assert any("45 days" in text for text in texts)
    assert not any("30 days" in text for text in texts)  # the old version's chunk is gone
    assert hits[0].chunk.title == "Returns at a glance"


def test_ask_the_bot_answers_from_the_published_article_with_a_citation(client, admin):
    article = create(client, admin)
    asked = client.post(f"{KB}/ask", headers=admin,
                        json={"question": "how many days do I have to return something?"})
    assert asked.json()["abstained"] is True  # nothing published yet
    latest = edit(client, admin, article, body=RETURNS.replace("30 days", "45 days")).json()
    publish(client, admin, latest)
    answer = client.post(f"{KB}/ask", headers=admin, json={
        "question": "how many days do I have to return something?", "lang": "en"}).json()
    assert answer["abstained"] is False and answer["reason"] == "answered"
    assert "45 days" in answer["text"]
    assert [c["source_id"] for c in answer["citations"]] == ["returns"]
    assert answer["citations"][0]["title"] == "Returns at a glance"


def test_delete_takes_the_article_out_of_the_index_and_the_list(client, admin):
    article = create(client, admin)
    publish(client, admin, article)
    deleted = client.delete(f"{KB}/articles/returns", headers=admin).json()
    assert deleted["article"]["status"] == "deleted" and deleted["task"]["detail"]["removed"] >= 1
    assert not [h for h in search_index(client, "return items days")
                if h.chunk.doc_id == "returns"]
    listed = client.get(f"{KB}/articles", headers=admin).json()["items"]
    assert listed == []
    gone = client.get(f"{KB}/articles", headers=admin, params={"status": "deleted"}).json()
    assert [a["id"] for a in gone["items"]] == ["returns"]
    assert error(client.delete(f"{KB}/articles/returns", headers=admin)) == \
        (409, "article_deleted")


def test_publish_and_delete_hand_tasks_to_the_queue(client, app, admin):
    queue = RecordingQueue()
    app.dependency_overrides[get_task_queue] = lambda: queue
    article = create(client, admin, kind="faq", id="faq-window", tags=["returns"])
    published = publish(client, admin, article)
    assert published["task"] == {"task_id": "task-1", "state": "queued", "detail": {}}
    assert published["article"]["status"] == "published"
    ((task, payload, _),) = queue.tasks
    assert task == "index_document"
    assert payload == {"doc_id": "faq-window", "title": "Returns at a glance", "lang": "en",
                       "tags": ["returns", "faq"], "text": RETURNS.strip(),
                       "source": "editor", "version": 1}
    assert search_index(client, "return items") == []  # the worker indexes, not us

    deleted = client.delete(f"{KB}/articles/faq-window", headers=admin).json()
    assert deleted["task"]["task_id"] == "task-2"
    assert queue.tasks[1][:2] == ("delete_document", {"doc_id": "faq-window"})


@pytest.fixture
def worker(app, settings) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The real embedded queue of ``workers`` with its worker thread."""
    queue_module = pytest.importorskip("workers.queue")
    queue = queue_module.EmbeddedQueue(settings.var_dir / "kb-test-queue.db", settings=settings,
                                       poll_s=0.05)
    queue.start()
    app.dependency_overrides[get_task_queue] = lambda: queue
    try:
        yield queue
    finally:
        queue.stop()


def wait_for_task(client: TestClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(f"{KB}/tasks/{task_id}", headers=headers).json()
        if status["state"] in ("done", "skipped", "dead"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_the_workers_queue_indexes_what_is_published(client, worker, admin):
    article = create(client, admin, body=RETURNS.replace("30 days", "45 days"))
    published = publish(client, admin, article)
    assert published["task"]["state"] == "queued"
    status = wait_for_task(client, admin, published["task"]["task_id"])
    assert (status["task"], status["state"], status["error"]) == ("index_document", "done", "")
    assert any("45 days" in h.chunk.text for h in search_index(client, "return items days"))
    answer = client.post(f"{KB}/ask", headers=admin, json={
        "question": "how many days do I have to return something?"}).json()
    assert "45 days" in answer["text"] and answer["citations"][0]["source_id"] == "returns"

    # Deleted, then published again at the same version: indexed again, not skipped.
    deleted = client.delete(f"{KB}/articles/returns", headers=admin).json()
    assert wait_for_task(client, admin, deleted["task"]["task_id"])["state"] == "done"
    assert search_index(client, "return items days") == []
    again = publish(client, admin, deleted["article"])
    assert wait_for_task(client, admin, again["task"]["task_id"])["state"] == "done"
    assert search_index(client, "return items days")


def test_the_workers_queue_writes_entities(client, worker, admin):
    saved = client.put(f"{KB}/entities/Policy/returns", headers=admin,
                       json={"props": {"title": {"en": "Returns"}}}).json()
    assert wait_for_task(client, admin, saved["task"]["task_id"])["state"] == "done"
    saved = client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin, json={
        "props": {"name": {"en": "Kettle"}},
        "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns"}]}).json()
    assert wait_for_task(client, admin, saved["task"]["task_id"])["state"] == "done"
    kettle = client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()
    assert [(r["rel"], r["key"]) for r in kettle["relations"]] == [("COVERED_BY", "returns")]
    deleted = client.delete(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()
    assert wait_for_task(client, admin, deleted["task"]["task_id"])["state"] == "done"
    assert error(client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")


def test_an_unknown_task_is_404(client, admin):
    assert error(client.get(f"{KB}/tasks/nope", headers=admin)) == (404, "task_not_found")


# ---------------------------------------------------------------- audit

def test_the_audit_log_says_who_did_what_and_when(client, admin):
    article = create(client, admin)
    latest = edit(client, admin, article, body="Returns within 60 days.").json()
    publish(client, admin, latest)
    client.post(f"{KB}/articles/returns/restore", headers=admin, json={"version": 1})
    client.delete(f"{KB}/articles/returns", headers=admin)
    log = client.get(f"{KB}/audit", headers=admin).json()
    assert log["total"] == 5
    assert [(e["action"], e["target"]) for e in log["items"]] == [
        ("delete", "returns"), ("restore", "returns"), ("publish", "returns"),
        ("edit", "returns"), ("create", "returns")]
    assert {e["actor_name"] for e in log["items"]} == {"Root"}
    assert log["items"][1]["detail"] == {"version": 3, "restored": 1}
    assert log["items"][2]["detail"]["version"] == 2
    assert log["items"][0]["created_at"] >= log["items"][-1]["created_at"]
    only = client.get(f"{KB}/audit", headers=admin, params={"action": "publish"}).json()
    assert [e["action"] for e in only["items"]] == ["publish"]


# ---------------------------------------------------------------- entities

def test_the_entity_editor_saves_products_policies_and_relations(client, admin):
    policy = {"props": {"title": {"en": "Returns", "zh": "退货政策"},
                        "text": {"en": "Returns within 30 days."}}}
    saved = client.put(f"{KB}/entities/Policy/returns", headers=admin, json=policy)
    assert saved.status_code == 200, saved.text
    assert saved.json()["task"] == {"task_id": None, "state": "done", "detail": {}}
    product = {"props": {"name": {"en": "Aura Kettle"}, "price": 39.9, "returnable": True,
                         "aliases": ["kettle"]},
               "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns"}]}
    assert client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin,
                      json=product).status_code == 200

    kettle = client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()
    assert kettle["name"] == "Aura Kettle" and kettle["props"]["price"] == 39.9
    assert [(r["rel"], r["direction"], r["label"], r["key"], r["name"])
            for r in kettle["relations"]] == [("COVERED_BY", "out", "Policy", "returns",
                                               "Returns")]
    covered = client.get(f"{KB}/entities/Policy/returns", headers=admin).json()["relations"]
    assert [(r["direction"], r["key"]) for r in covered] == [("in", "NH-KT-170")]
    listed = client.get(f"{KB}/entities/Product", headers=admin, params={"q": "aura"}).json()
    assert listed == [{"label": "Product", "key": "NH-KT-170", "name": "Aura Kettle"}]

    # Saving without "edges" keeps the relations; an empty list removes them.
    client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin,
               json={"props": {"name": {"en": "Aura Kettle 2"}}})
    kettle = client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()
    assert kettle["name"] == "Aura Kettle 2" and len(kettle["relations"]) == 1
    client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin,
               json={"props": kettle["props"], "edges": []})
    assert client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()[
        "relations"] == []

    missing = client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin, json={
        "props": {}, "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "nope"}]})
    assert error(missing) == (409, "missing_endpoint")
    assert error(client.put(f"{KB}/entities/Product/x", headers=admin, json={
        "props": {"mixed": [1, "a"]}})) == (422, "invalid_graph_value")
    assert error(client.put(f"{KB}/entities/Product/x", headers=admin, json={
        "props": {"key": "reserved"}})) == (422, "invalid_graph_name")
    assert error(client.get(f"{KB}/entities/Customer/c1", headers=admin)) == \
        (422, "validation_error")

    assert client.delete(f"{KB}/entities/Product/NH-KT-170", headers=admin).status_code == 200
    assert error(client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")
    assert error(client.delete(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")
    actions = [(e["action"], e["target"]) for e in
               client.get(f"{KB}/audit", headers=admin).json()["items"]]
    assert actions[0] == ("entity_delete", "Product:NH-KT-170")
    assert actions.count(("entity_upsert", "Product:NH-KT-170")) == 3


def test_entity_changes_go_to_the_queue_when_there_is_one(client, app, admin):
    client.put(f"{KB}/entities/Policy/returns", headers=admin, json={"props": {"days": 30}})
    queue = RecordingQueue()
    app.dependency_overrides[get_task_queue] = lambda: queue
    body = {"props": {"name": "Kettle"}, "edges": [
        {"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns", "props": {"n": 1}}]}
    saved = client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin, json=body).json()
    assert saved["task"]["task_id"] == "task-1"
    assert queue.tasks[0][:2] == ("upsert_entity", {
        "label": "Product", "key": "NH-KT-170", "props": {"name": "Kettle"},
        "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns",
                   "props": {"n": 1}}], "replace_edges": True})
    client.delete(f"{KB}/entities/Policy/returns", headers=admin)
    assert queue.tasks[1][:2] == ("delete_entity", {"label": "Policy", "key": "returns"})
    # The worker writes the graph, not the request.
    assert error(client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")


# ---------------------------------------------------------------- ask: input

def test_ask_refuses_an_empty_or_huge_question(client, admin):
    for question in ("", "x" * 501):
        assert error(client.post(f"{KB}/ask", headers=admin, json={"question": question})) == \
            (422, "validation_error")


# ---------------------------------------------------------------- import from files

def test_import_files_creates_updates_and_publishes_changed_ones(client, settings, tmp_path):
    from core import db
    from knowledge.articles import flows

    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "returns.md").write_text(
        "---\nid: returns-overview\ntitle: Returns at a glance\ntags: [returns]\nlang: en\n"
        "---\n\n" + RETURNS, encoding="utf-8")
    (folder / "faq.csv").write_text(
        "question,answer\nHow long do I have to return something?,"
        "Most items can be returned within 30 days of delivery.\n", encoding="utf-8")
    (folder / "broken.md").write_text("---\nid: [unclosed\n---\ntext", encoding="utf-8")
    (folder / "page.html").write_text("<p>not an article</p>", encoding="utf-8")

    async def run() -> flows.FilesImported:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                return await flows.import_files(session, folder, settings=settings, queue=None)
        finally:
            await engine.dispose()

    first = asyncio.run(run())
    assert sorted(first.created) == ["faq:1", "returns-overview"]
    assert sorted(first.published) == ["faq:1", "returns-overview"]
    assert [Path(name).name for name, _ in first.failed] == ["broken.md"]
    assert [Path(name).name for name in first.skipped] == ["page.html"]
    assert sorted(asyncio.run(run()).unchanged) == ["faq:1", "returns-overview"]

    (folder / "returns.md").write_text((folder / "returns.md").read_text(encoding="utf-8")
                                       .replace("30 days", "45 days"), encoding="utf-8")
    third = asyncio.run(run())
    assert (third.updated, third.published, third.unchanged) == \
        (["returns-overview"], ["returns-overview"], ["faq:1"])

    hits = search_index(client, "return most items within days")
    assert any("45 days" in h.chunk.text for h in hits if h.chunk.doc_id == "returns-overview")
    (faq_chunk,) = [h.chunk for h in hits if h.chunk.doc_id == "faq:1"]
    assert (faq_chunk.tags, faq_chunk.lang, faq_chunk.source) == (("faq",), "en", "editor")
    make_staff(settings, "root@example.com", "admin")
    admin = login(client, "root@example.com")
    faq = client.get(f"{KB}/articles/faq:1", headers=admin).json()
    assert (faq["kind"], faq["title"], faq["status"]) == \
        ("faq", "How long do I have to return something?", "published")
    history = client.get(f"{KB}/articles/returns-overview", headers=admin).json()["versions"]
    assert [v["version"] for v in history] == [2, 1]
    assert history[0]["author_id"] is None and history[0]["note"] == "Imported from returns.md"
