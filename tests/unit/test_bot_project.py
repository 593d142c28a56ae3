"""The Rasa project, the NLU data and the actions agree with each other: Parley's built-in
core (bot/, data/nlu) on its own, and merged with the demo project's dialogue and NLU data
the way ``parley run`` assembles it."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from bot.project import CORE_DIR, dialogue_files, merged_domain
from core.config import DEMO_PROJECT, ROOT, Settings
from core.project import load_project
from nlu.data import data_files, load_examples
from nlu.train import CORE_DATA, training_data

pytestmark = pytest.mark.unit
DOMAIN = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text())
DEMO = load_project(DEMO_PROJECT)
MERGED = merged_domain(DEMO)
DEMO_DATA = training_data(Settings(project=DEMO_PROJECT))


def test_domain_intents_are_exactly_the_trained_intents():
    assert set(DOMAIN["intents"]) == {e.intent for e in load_examples(CORE_DATA)}


def test_demo_domain_intents_are_exactly_the_demo_trained_intents():
    assert set(MERGED["intents"]) == {e.intent for e in load_examples(DEMO_DATA)}


def test_demo_data_is_bilingual_with_at_least_15_intents():
    by_language: dict[str, set[str]] = defaultdict(set)
    for path in (f for p in DEMO_DATA for f in data_files(p)):
        by_language[path.stem] |= {e.intent for e in load_examples(path)}
    assert set(by_language) == set(DEMO.languages) == {"en", "zh"}
    assert by_language["en"] == by_language["zh"] and len(by_language["en"]) >= 15
    # The demo's own intents come on top of the core's, in both languages.
    assert by_language["en"] > {e.intent for e in load_examples(CORE_DATA / "en.yml")}


def test_annotated_entities_are_declared_in_the_domain():
    annotated = {ent.entity for e in load_examples(DEMO_DATA) for ent in e.entities}
    assert annotated >= {"order_id", "email", "product", "date"}
    # Rasa lists an entity by name, or as {name: options} (the core's ``language``).
    declared = {e if isinstance(e, str) else next(iter(e)) for e in MERGED["entities"]}
    assert annotated <= declared


@pytest.mark.parametrize("domain", [DOMAIN, MERGED], ids=["core", "demo"])
def test_every_response_has_a_chinese_variation_and_a_default(domain):
    for name, variations in domain["responses"].items():
        zh = [v for v in variations if v.get("condition") == [
            {"type": "slot", "name": "language", "value": "zh"}]]
        default = [v for v in variations if "condition" not in v]
        assert zh and default, name


@pytest.mark.parametrize("domain", [DOMAIN, MERGED], ids=["core", "demo"])
def test_every_custom_action_is_served_by_the_action_server(domain):
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("bot.actions")
    assert set(domain["actions"]) <= set(executor.actions)


@pytest.mark.parametrize(("domain", "project"), [(DOMAIN, None), (MERGED, DEMO)],
                         ids=["core", "demo"])
def test_rules_and_stories_only_use_known_intents_and_actions(domain, project):
    known_intents = set(domain["intents"]) | {"nlu_fallback"}
    known_actions = (set(domain["actions"]) | set(domain["responses"])
                     | set(domain.get("forms") or {}) | {"action_deactivate_loop", "action_listen"})
    paths = [*sorted((CORE_DIR / "data").glob("*.yml")),
             *(dialogue_files(project) if project else [])]
    blocks = 0
    for path in paths:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        for block in doc.get("rules", []) + doc.get("stories", []):
            blocks += 1
            for step in block["steps"]:
                if "intent" in step:
                    assert step["intent"] in known_intents, (path.name, step)
                if "action" in step:
                    assert step["action"] in known_actions, (path.name, step)
    assert blocks
    if project:
        assert {p.name for p in dialogue_files(project)} >= {"rules.yml", "stories.yml"}
