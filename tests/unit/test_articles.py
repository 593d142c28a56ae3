"""The knowledge-base editor: versions, conflicts, diff, restore, audit, admin only, safe
preview, search, publishing to the document index, asking the bot, the entity editor and
importing files.

Every change reaches the index and the graph through the workers: the app's own embedded
queue, whose worker runs in the test's app process as it does under ``parley run``. A test
that needs a change applied waits for its task, as the editor page does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from knowledge import factory
from knowledge.articles.render import render_markdown
from knowledge.products import Product, find_product
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


@pytest.fixture
def app(settings, dialogue):  # type: ignore[no-untyped-def]
    settings.cpu_llm = "never"  # deterministic answers: the extractive generator
    return create_app(settings, dialogue=dialogue)


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


def wait_for_task(client: TestClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(f"{KB}/tasks/{task_id}", headers=headers).json()
        if status["state"] in ("done", "skipped", "dead"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def applied(client: TestClient, headers: dict[str, str], response: Any) -> dict[str, Any]:
    """A change's response, once the workers have applied the change."""
    assert response.status_code == 200, response.text
    change = response.json()
    assert change["task"]["state"] == "queued"
    status = wait_for_task(client, headers, change["task"]["task_id"])
    assert (status["state"], status["error"]) == ("done", ""), status
    return change


def publish(client: TestClient, headers: dict[str, str], article: dict[str, Any]
            ) -> dict[str, Any]:
    """Publish the article and wait until the worker has indexed it."""
    return applied(client, headers, client.post(
        f"{KB}/articles/{article['id']}/publish", headers=headers,
        json={"version": article["version"]}))


def save_entity(client: TestClient, headers: dict[str, str], label: str, key: str,
                body: dict[str, Any]) -> dict[str, Any]:
    """Save an entity and wait until the worker has written it to the graph."""
    return applied(client, headers,
                   client.put(f"{KB}/entities/{label}/{key}", headers=headers, json=body))


def delete_entity(client: TestClient, headers: dict[str, str], label: str,
                  key: str) -> dict[str, Any]:
    return applied(client, headers,
                   client.delete(f"{KB}/entities/{label}/{key}", headers=headers))


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# ---------------------------------------------------------------- access

ROUTES = [("get", f"{KB}/articles", None), ("post", f"{KB}/articles", {"id": "x"}),
          ("get", f"{KB}/articles/returns", None), ("get", f"{KB}/audit", None),
          ("post", f"{KB}/articles/returns/publish", {"version": 1}),
          ("post", f"{KB}/articles/returns/check", {"version": 1}),
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


def test_publish_makes_the_new_text_searchable(client, admin):
    article = create(client, admin)
    published = publish(client, admin, article)
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


def test_the_request_hands_over_and_the_worker_indexes(client, app, admin):
    queue = app.state.task_queue
    queue.stop()  # the worker is paused: what the request did is all there is
    article = create(client, admin, kind="faq", id="faq-window", tags=["returns"])
    published = client.post(f"{KB}/articles/faq-window/publish", headers=admin,
                            json={"version": article["version"]}).json()
    assert published["article"]["status"] == "published"
    assert published["task"]["state"] == "queued"
    status = client.get(f"{KB}/tasks/{published['task']['task_id']}", headers=admin).json()
    assert (status["task"], status["state"]) == ("index_document", "queued")
    assert search_index(client, "return items") == []  # the worker indexes, not the request
    logged = client.get(f"{KB}/audit", headers=admin, params={"action": "publish"}).json()
    assert logged["items"][0]["detail"] == {"version": 1, **published["task"]}

    queue.start()
    assert wait_for_task(client, admin, published["task"]["task_id"])["state"] == "done"
    chunk = search_index(client, "return most items within days")[0].chunk
    assert (chunk.doc_id, chunk.tags, chunk.lang, chunk.source) == \
        ("faq-window", ("returns", "faq"), "en", "editor")


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
    deleted = applied(client, admin, client.delete(f"{KB}/articles/returns", headers=admin))
    assert deleted["article"]["status"] == "deleted"
    status = wait_for_task(client, admin, deleted["task"]["task_id"])
    assert status["task"] == "delete_document"
    assert not [h for h in search_index(client, "return items days")
                if h.chunk.doc_id == "returns"]
    listed = client.get(f"{KB}/articles", headers=admin).json()["items"]
    assert listed == []
    gone = client.get(f"{KB}/articles", headers=admin, params={"status": "deleted"}).json()
    assert [a["id"] for a in gone["items"]] == ["returns"]
    assert error(client.delete(f"{KB}/articles/returns", headers=admin)) == \
        (409, "article_deleted")


def test_publishing_again_after_a_delete_indexes_again(client, admin):
    article = create(client, admin, body=RETURNS.replace("30 days", "45 days"))
    publish(client, admin, article)
    deleted = applied(client, admin, client.delete(f"{KB}/articles/returns", headers=admin))
    assert search_index(client, "return items days") == []
    publish(client, admin, deleted["article"])  # the same version: indexed, not skipped
    assert any("45 days" in h.chunk.text for h in search_index(client, "return items days"))


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
    assert log["items"][2]["detail"]["state"] == "queued"
    assert log["items"][0]["created_at"] >= log["items"][-1]["created_at"]
    only = client.get(f"{KB}/audit", headers=admin, params={"action": "publish"}).json()
    assert [e["action"] for e in only["items"]] == ["publish"]


# ---------------------------------------------------------------- entities

def test_the_entity_editor_saves_products_policies_and_relations(client, admin):
    policy = {"props": {"title": {"en": "Returns", "zh": "退货政策"},
                        "text": {"en": "Returns within 30 days."}}}
    saved = save_entity(client, admin, "Policy", "returns", policy)
    assert saved["task"]["state"] == "queued"
    product = {"props": {"name": {"en": "Aura Kettle"}, "price": 39.9, "returnable": True,
                         "aliases": ["kettle"]},
               "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns"}]}
    save_entity(client, admin, "Product", "NH-KT-170", product)

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
    save_entity(client, admin, "Product", "NH-KT-170",
                {"props": {"name": {"en": "Aura Kettle 2"}}})
    kettle = client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()
    assert kettle["name"] == "Aura Kettle 2" and len(kettle["relations"]) == 1
    save_entity(client, admin, "Product", "NH-KT-170", {"props": kettle["props"], "edges": []})
    assert client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()[
        "relations"] == []

    # Refused at once, before anything is handed to the workers:
    missing = client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin, json={
        "props": {}, "edges": [{"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "nope"}]})
    assert error(missing) == (409, "missing_endpoint")
    assert error(client.put(f"{KB}/entities/Product/x", headers=admin, json={
        "props": {"mixed": [1, "a"]}})) == (422, "invalid_graph_value")
    assert error(client.put(f"{KB}/entities/Product/x", headers=admin, json={
        "props": {"key": "reserved"}})) == (422, "invalid_graph_name")
    assert error(client.get(f"{KB}/entities/Customer/c1", headers=admin)) == \
        (422, "validation_error")

    delete_entity(client, admin, "Product", "NH-KT-170")
    assert error(client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")
    assert error(client.delete(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")
    actions = [(e["action"], e["target"]) for e in
               client.get(f"{KB}/audit", headers=admin).json()["items"]]
    assert actions[0] == ("entity_delete", "Product:NH-KT-170")
    assert actions.count(("entity_upsert", "Product:NH-KT-170")) == 3


def test_the_worker_writes_the_graph_not_the_request(client, app, admin):
    save_entity(client, admin, "Policy", "returns", {"props": {"days": 30}})
    queue = app.state.task_queue
    queue.stop()
    body = {"props": {"name": "Kettle"}, "edges": [
        {"rel": "COVERED_BY", "dst_label": "Policy", "dst_key": "returns", "props": {"n": 1}}]}
    saved = client.put(f"{KB}/entities/Product/NH-KT-170", headers=admin, json=body).json()
    status = client.get(f"{KB}/tasks/{saved['task']['task_id']}", headers=admin).json()
    assert (status["task"], status["state"]) == ("upsert_entity", "queued")
    assert error(client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin)) == \
        (404, "entity_not_found")

    queue.start()
    assert wait_for_task(client, admin, saved["task"]["task_id"])["state"] == "done"
    kettle = client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()
    assert [(r["rel"], r["key"], r["props"]) for r in kettle["relations"]] == \
        [("COVERED_BY", "returns", {"n": 1})]
    delete_entity(client, admin, "Policy", "returns")
    assert client.get(f"{KB}/entities/Product/NH-KT-170", headers=admin).json()[
        "relations"] == []


def test_a_product_saved_in_the_editor_is_the_one_the_chat_finds(client, settings, admin):
    """The chat's ``find_product`` reads the graph the entity editor writes."""

    def chat_finds(name: str) -> Product | None:
        async def lookup() -> Product | None:
            graph = factory.graph_store(settings)  # what the action server opens
            try:
                return await find_product(graph, name)
            finally:
                await graph.close()

        return asyncio.run(lookup())

    assert chat_finds("ice maker") is None
    save_entity(client, admin, "Product", "NH-IM-900", {"props": {
        "name": {"en": "Nimbus Frost Ice Maker", "zh": "Nimbus 制冰机"}, "price": 129.0,
        "aliases": ["ice maker", "制冰机"]}})
    for name in ("Ice Maker", " nimbus frost ice maker ", "制冰机", "Nimbus 制冰机"):
        found = chat_finds(name)
        assert found is not None and (found.sku, found.price) == ("NH-IM-900", 129.0), name

    save_entity(client, admin, "Product", "NH-IM-900",
                {"props": {"name": {"en": "Nimbus Frost Ice Maker"}, "aliases": ["icemaker"]}})
    assert chat_finds("ice maker") is None  # an alias taken away in the editor is gone
    assert chat_finds("icemaker") is not None
    delete_entity(client, admin, "Product", "NH-IM-900")
    assert chat_finds("icemaker") is None


# ---------------------------------------------------------------- ask: input

def test_ask_refuses_an_empty_or_huge_question(client, admin):
    for question in ("", "x" * 501):
        assert error(client.post(f"{KB}/ask", headers=admin, json={"question": question})) == \
            (422, "validation_error")


# ---------------------------------------------------------------- import from files

def test_import_files_creates_updates_and_publishes_changed_ones(client, app, settings,
                                                                 tmp_path):
    from core import db
    from knowledge.articles.imports import FilesImported, import_files

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

    async def run() -> FilesImported:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                return await import_files(session, folder, settings=settings,
                                          queue=app.state.task_queue, wait=True)
        finally:
            await engine.dispose()

    first = asyncio.run(run())
    assert sorted(first.created) == ["faq:1", "returns-overview"]
    assert sorted(first.published) == ["faq:1", "returns-overview"]
    assert len(first.tasks) == 2
    assert [Path(name).name for name, _ in first.failed] == ["broken.md"]
    assert [Path(name).name for name in first.skipped] == ["page.html"]
    again = asyncio.run(run())
    assert sorted(again.unchanged) == ["faq:1", "returns-overview"] and again.tasks == []

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


def test_import_files_holds_no_write_lock_while_it_waits(client, app, settings, tmp_path):
    """SQLite: every transaction holds the write lock, so one left open by the import (an
    unchanged article read last) would lock the API out while the workers index."""
    import sqlite3

    from core import db
    from knowledge.articles.imports import import_files

    folder = tmp_path / "kb"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.md").write_text(f"---\nid: {name}\ntitle: Article {name}\n---\n\n"
                                           f"{RETURNS}", encoding="utf-8")
    path = settings.database_url.split("///", 1)[-1]
    writes: list[str] = []

    class ProbingQueue:
        """The app's queue; each status poll of the wait first tries to take the write lock."""

        def __getattr__(self, name: str) -> Any:
            return getattr(app.state.task_queue, name)

        def status(self, task_id: str) -> dict[str, Any] | None:
            other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                writes.append("ok")
            except sqlite3.OperationalError as exc:
                writes.append(str(exc))
            finally:
                other.close()
            return app.state.task_queue.status(task_id)  # type: ignore[no-any-return]

    async def run() -> bool:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.sessionmaker(engine)() as session:
                await import_files(session, folder, settings=settings, queue=ProbingQueue(),
                                   wait=True)
                return session.in_transaction()
        finally:
            await engine.dispose()

    assert asyncio.run(run()) is False
    (folder / "a.md").write_text((folder / "a.md").read_text(encoding="utf-8")
                                 .replace("30 days", "45 days"), encoding="utf-8")
    assert asyncio.run(run()) is False  # a: published, then b: unchanged, then the wait
    assert writes and set(writes) == {"ok"}

