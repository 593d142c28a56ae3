"""The widget and the public pages follow the project: its name, colour, logo, greeting and
languages come from parley.yml, and only the one logo file is ever served from its folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conversations.widget import GREETINGS, LOGO_PATH
from core.config import DEMO_PROJECT, Settings
from web.app import create_app

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def project(root: Path, parley_yml: str, files: dict[str, bytes | str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "parley.yml").write_text(parley_yml, encoding="utf-8")
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def client(folder: Path, tmp_path: Path) -> TestClient:
    # No lifespan (no `with`): these routes need neither the database nor the dialogue.
    settings = Settings(project=folder, var_dir=tmp_path / "var", environment="test")
    return TestClient(create_app(settings))


ACME = "company: {name: Acme Bank}\nlanguages: [en]\n"


def test_an_english_project_gets_its_name_the_default_colour_and_the_built_in_greeting(
        tmp_path: Path) -> None:
    response = client(project(tmp_path / "acme", ACME), tmp_path).get("/api/v1/widget/config")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.json() == {
        "company": "Acme Bank", "title": {"en": "Acme Bank"}, "color": "#2563eb", "logo": None,
        "greeting": {"en": GREETINGS["en"].format(company="Acme Bank")},
        "languages": ["en"], "default_language": "en"}
    assert "Acme Bank" in response.json()["greeting"]["en"]


def test_a_chinese_only_project_speaks_only_chinese(tmp_path: Path) -> None:
    folder = project(tmp_path / "zh", "company: {name: 云杉银行}\nlanguages: [zh]\n"
                                      "widget: {title: 云杉银行客服, color: '#0F766E'}\n")
    body = client(folder, tmp_path).get("/api/v1/widget/config").json()
    assert body["languages"] == ["zh"] and body["default_language"] == "zh"
    assert body["title"] == {"zh": "云杉银行客服"}
    assert body["color"] == "#0f766e"
    assert set(body["greeting"]) == {"zh"} and "云杉银行" in body["greeting"]["zh"]
    page = client(folder, tmp_path).get("/").text
    assert '<html lang="zh-CN">' in page and '["zh"]' in page and "<title>云杉银行</title>" in page


def test_titles_and_greetings_from_parley_yml_in_each_language(tmp_path: Path) -> None:
    folder = project(tmp_path / "both", """\
company: {name: Acme Bank}
languages: [en, zh]
default_language: zh
widget:
  title: {en: Acme Help, zh: Acme 帮助}
  greeting: Welcome to Acme!
  logo: https://cdn.example.com/acme.svg
""")
    body = client(folder, tmp_path).get("/api/v1/widget/config").json()
    assert body["title"] == {"en": "Acme Help", "zh": "Acme 帮助"}
    assert body["greeting"] == {"en": "Welcome to Acme!", "zh": "Welcome to Acme!"}
    assert body["logo"] == "https://cdn.example.com/acme.svg"
    assert body["languages"] == ["en", "zh"] and body["default_language"] == "zh"


def test_the_demo_project_is_configured(tmp_path: Path) -> None:
    body = client(DEMO_PROJECT, tmp_path).get("/api/v1/widget/config").json()
    assert body["languages"] == ["en", "zh"]
    assert body["title"]["en"] == body["company"]


def test_a_logo_file_in_the_project_is_served_at_one_fixed_address(tmp_path: Path) -> None:
    folder = project(tmp_path / "logo", ACME + "widget: {logo: brand/logo.png}\n",
                     {"brand/logo.png": PNG, "secret.png": b"not for you"})
    api = client(folder, tmp_path)
    assert api.get("/api/v1/widget/config").json()["logo"] == LOGO_PATH
    response = api.get(LOGO_PATH)
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    # No request names a file: whatever follows the address, nothing else comes back.
    for path in (LOGO_PATH + "/../secret.png", LOGO_PATH + "/secret.png",
                 LOGO_PATH + "?path=secret.png", "/project/secret.png", "/project/parley.yml",
                 "/project/..%2Fparley.yml"):
        answer = api.get(path)
        assert b"not for you" not in answer.content and b"Acme" not in answer.content, path
        assert answer.status_code == 404 or answer.content == PNG, path


def test_no_logo_means_404(tmp_path: Path) -> None:
    assert client(project(tmp_path / "none", ACME), tmp_path).get(LOGO_PATH).status_code == 404
    remote = project(tmp_path / "remote", ACME + "widget: {logo: 'https://cdn.example.com/a.png'}\n")
    response = client(remote, tmp_path).get(LOGO_PATH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "logo_not_found"


@pytest.mark.parametrize("logo", ["parley.yml", "missing.png", ".parley/secret.png", "outside.png"])
def test_only_an_image_inside_the_project_and_outside_its_state_is_a_logo(
        tmp_path: Path, logo: str) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"outside the project")
    folder = project(tmp_path / "p", ACME + f"widget: {{logo: '{logo}'}}\n",
                     {".parley/secret.png": b"state"})
    (folder / "outside.png").symlink_to(secret)  # a link out of the project folder
    api = client(folder, tmp_path)
    assert api.get(LOGO_PATH).status_code == 404
    assert api.get("/api/v1/widget/config").json()["logo"] is None


def test_the_front_page_is_a_generic_page_naming_the_company(tmp_path: Path) -> None:
    page = client(project(tmp_path / "plain", ACME), tmp_path).get("/").text
    assert "<title>Acme Bank</title>" in page and "nimbus" not in page.lower()
    folder = project(tmp_path / "acme", 'company: {name: "Acme <Bank> & Co"}\nlanguages: [en]\n'
                                        "widget: {color: '#123abc'}\n")
    response = client(folder, tmp_path).get("/")  # the name is HTML-escaped
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<title>Acme &lt;Bank&gt; &amp; Co</title>" in page
    assert "<Bank>" not in page  # the name is escaped
    assert "nimbus" not in page.lower()
    assert '<script src="/static/widget.js" defer></script>' in page
    assert "--accent: #123abc" in page
    assert '["en"]' in page
    assert "{{" not in page


def test_a_project_with_its_own_site_serves_it(tmp_path: Path) -> None:
    site = "<!doctype html><title>Acme's own site</title>"
    folder = project(tmp_path / "site", ACME, {"site/index.html": site})
    response = client(folder, tmp_path).get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == site


def test_the_demo_serves_its_storefront(tmp_path: Path) -> None:
    page = client(DEMO_PROJECT, tmp_path).get("/").text
    assert page == (DEMO_PROJECT / "site" / "index.html").read_text(encoding="utf-8")


def test_nimbus_appears_only_in_the_demo_project() -> None:
    root = Path(__file__).resolve().parents[2]
    for folder in ("web/static", "web/templates"):
        for path in sorted(p for p in (root / folder).rglob("*") if p.is_file()):
            assert "nimbus" not in path.read_text(encoding="utf-8", errors="replace").lower(), path
    assert "nimbus" not in (root / "conversations" / "widget.py").read_text().lower()
