"""Project folders: what ``parley init`` writes, what ``parley check`` refuses (with file:line),
and how Parley's core is rendered for a project."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.checks import check_project
from bot.project import assemble, merged_domain
from bot.scaffold import scaffold
from core.config import DEMO_PROJECT, Settings
from core.project import ProjectError, load_project
from handoff.triggers import Triggers
from nlu.data import load_examples
from nlu.train import training_data
from web.cli import app

pytestmark = pytest.mark.unit


def settings_for(project: Path, tmp_path: Path) -> Settings:
    return Settings(project=project, var_dir=tmp_path / "state", secret_key="s" * 32,
                    rasa_token="t" * 32)


@pytest.fixture
def acme(tmp_path: Path) -> Path:
    scaffold(tmp_path / "acme", name="Acme Bank", languages=["en", "zh"])
    return tmp_path / "acme"


def problems(project: Path, tmp_path: Path) -> list[str]:
    try:
        _, found = check_project(settings_for(project, tmp_path))
    except ProjectError as exc:
        found = [exc]
    return [p.message for p in found]


def test_a_new_project_is_valid_and_speaks_for_its_company(acme: Path, tmp_path: Path) -> None:
    assert problems(acme, tmp_path) == []
    domain = merged_domain(load_project(acme))
    greet = domain["responses"]["utter_greet"]
    assert "Acme Bank" in greet[-1]["text"] and "condition" not in greet[-1]  # en: the default
    assert "Acme Bank" in greet[0]["text"] and greet[0]["condition"][0]["value"] == "zh"
    assert "nimbus" not in yaml.safe_dump(domain, allow_unicode=True).lower()
    assert {"greet", "request_human", "ask_question", "contact"} <= set(domain["intents"])


def test_a_project_keeps_only_its_own_languages(tmp_path: Path) -> None:
    scaffold(tmp_path / "shop", name="海港书店", languages=["zh"])
    settings = settings_for(tmp_path / "shop", tmp_path)
    domain = merged_domain(load_project(tmp_path / "shop"))
    assert domain["slots"]["language"]["values"] == ["zh"]
    for variants in domain["responses"].values():
        assert len(variants) == 1 and "condition" not in variants[0]
    assert "海港书店" in domain["responses"]["utter_greet"][0]["text"]
    texts = [e.text for e in load_examples(training_data(settings))]
    assert texts and not any(t.isascii() and " " in t for t in texts)  # no English examples


def test_an_intent_no_rule_mentions_is_answered_from_knowledge(acme: Path,
                                                               tmp_path: Path) -> None:
    (acme / "nlu" / "cards.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: card_arrival\n  examples: |\n'
        "    - when will my card arrive\n    - my card has not come\n", encoding="utf-8")
    assert problems(acme, tmp_path) == []
    built = assemble(settings_for(acme, tmp_path))
    domain = yaml.safe_load((built / "domain.yml").read_text(encoding="utf-8"))
    rules = yaml.safe_load((built / "data" / "implicit-rules.yml").read_text(encoding="utf-8"))
    assert "card_arrival" in domain["intents"]
    assert rules["rules"] == [{"rule": "card_arrival is answered from knowledge", "steps": [
        {"intent": "card_arrival"}, {"action": "action_answer_from_knowledge"}]}]


@pytest.mark.parametrize(("edit", "where", "says"), [
    (lambda p: (p / "parley.yml").unlink(), "parley.yml", "missing"),
    (lambda p: (p / "parley.yml").write_text("company:\n  name: [\n"), "parley.yml:3",
     "invalid YAML"),
    (lambda p: (p / "parley.yml").write_text("company:\n  name: A\nlanguages: [en, fr]\n"),
     "parley.yml:3", "languages"),
    (lambda p: (p / "parley.yml").write_text("company:\n  name: A\ncolour: red\n"),
     "parley.yml:3", "colour"),
    (lambda p: (p / "parley.yml").write_text(
        "company:\n  name: A\nlanguages: [en, zh]\nwidget:\n  greeting:\n    en: Hi\n"),
     "parley.yml:5", "no text for language 'zh'"),
    (lambda p: (p / "parley.yml").write_text(
        "company:\n  name: A\nhandoff:\n  hours:\n    weekdays: 09:00-17:00\n"),
     "parley.yml:4", "days are mon..sun"),
    (lambda p: (p / "dialogue" / "more.yml").write_text(
        'version: "3.1"\nrules:\n  - rule: r\n    steps:\n      - intent: ghost\n'
        "      - action: utter_contact\n"), "more.yml:5", "intent 'ghost' has no NLU examples"),
    (lambda p: (p / "dialogue" / "more.yml").write_text(
        'version: "3.1"\nrules:\n  - rule: r\n    steps:\n      - intent: contact\n'
        "      - action: utter_nothing\n"), "more.yml:6", "action 'utter_nothing'"),
    (lambda p: (p / "dialogue" / "more.yml").write_text(
        'version: "3.1"\nresponses:\n  utter_hours:\n    - text: 9 to 5\n'),
     "more.yml:3", "response 'utter_hours' has no text for zh"),
    (lambda p: (p / "nlu" / "more.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: empty\n  examples: |\n'), "more.yml:3",
     "has no examples"),
    (lambda p: (p / "dialogue" / "more.yml").write_text("stories: [\n"), "more.yml:2",
     "invalid YAML"),
])
def test_each_broken_project_names_its_file_and_line(acme: Path, tmp_path: Path, edit: object,
                                                      where: str, says: str) -> None:
    edit(acme)  # type: ignore[operator]
    found = problems(acme, tmp_path)
    assert any(where in p and says in p for p in found), found


def test_check_and_run_refuse_a_broken_project_and_start_nothing(acme: Path,
                                                                 tmp_path: Path) -> None:
    (acme / "dialogue" / "more.yml").write_text(
        'version: "3.1"\nresponses:\n  utter_hours:\n    - text: 9 to 5\n', encoding="utf-8")
    runner = CliRunner()
    for command in ("check", "run", "train"):
        result = runner.invoke(app, [command, "--project", str(acme)])
        assert result.exit_code == 2, (command, result.output)
        assert "more.yml:3" in result.output
    assert not (acme / ".parley" / "logs").exists()  # no service was started
    result = runner.invoke(app, ["check", "--project", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such project folder" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_init_refuses_a_folder_in_use_and_an_unknown_language(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert runner.invoke(app, ["init", str(tmp_path / "used")]).exit_code == 2
    result = runner.invoke(app, ["init", str(tmp_path / "new"), "--languages", "en,fr"])
    assert result.exit_code == 2 and "fr" in result.output
    assert not (tmp_path / "new" / "parley.yml").exists()


def test_state_lives_in_the_project_and_follows_it(tmp_path: Path, acme: Path) -> None:
    settings = Settings(project=acme, secret_key="s" * 32, rasa_token="t" * 32)
    assert settings.var_dir == acme / ".parley"
    assert settings.database_url == f"sqlite:///{acme / '.parley' / 'parley.db'}"
    assert settings.nlu_model_dir.is_relative_to(acme / ".parley")
    assert settings.rasa_model_dir.is_relative_to(acme / ".parley")
    assert (settings.kb_dir, settings.nlu_data_dir) == (acme / "kb", acme / "nlu")
    with pytest.raises(ValueError, match="not a project folder"):
        Settings(project=tmp_path / "nowhere")


def test_the_demo_is_a_valid_project(tmp_path: Path) -> None:
    assert problems(DEMO_PROJECT, tmp_path) == []


@pytest.mark.parametrize(("when", "open_"), [
    (datetime(2026, 12, 7, 8, 30, tzinfo=UTC), True),   # Monday 09:30 in Berlin
    (datetime(2026, 12, 7, 17, 30, tzinfo=UTC), False),  # Monday 18:30 in Berlin
    (datetime(2026, 12, 5, 10, 0, tzinfo=UTC), True),   # Saturday 11:00
    (datetime(2026, 12, 6, 10, 0, tzinfo=UTC), False),  # Sunday: closed
])
def test_outside_handoff_hours_the_customer_is_told(tmp_path: Path, when: datetime,
                                                    open_: bool) -> None:
    (tmp_path / "parley.yml").write_text(
        "company: {name: A}\nlanguages: [en, zh]\nhandoff:\n  timezone: Europe/Berlin\n"
        '  hours: {mon-fri: "09:00-18:00", sat: "10:00-14:00", sun: closed}\n'
        "  outside_hours: {en: Back at nine., zh: 九点上班。}\n", encoding="utf-8")
    triggers = Triggers(tmp_path, clock=lambda: when)
    assert triggers.closed_notice("en") == (None if open_ else "Back at nine.")
    assert triggers.closed_notice("zh") == (None if open_ else "九点上班。")
    assert Triggers(DEMO_PROJECT, clock=lambda: when).closed_notice("en") is None  # always open
