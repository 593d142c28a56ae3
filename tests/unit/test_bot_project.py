"""The Rasa project, the NLU data and the actions agree with each other."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.config import ROOT
from nlu.data import load_examples

pytestmark = pytest.mark.unit
DOMAIN = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text())


def test_domain_intents_are_exactly_the_trained_intents():
    assert set(DOMAIN["intents"]) == {e.intent for e in load_examples(ROOT / "data" / "nlu")}


def test_demo_data_is_bilingual_with_at_least_15_intents():
    en = {e.intent for e in load_examples(ROOT / "data" / "nlu" / "en.yml")}
    zh = {e.intent for e in load_examples(ROOT / "data" / "nlu" / "zh.yml")}
    assert en == zh and len(en) >= 15


def test_annotated_entities_are_declared_in_the_domain():
    annotated = {ent.entity for e in load_examples(ROOT / "data" / "nlu") for ent in e.entities}
    assert annotated >= {"order_id", "email", "product", "date"}
    assert annotated <= set(DOMAIN["entities"])


def test_every_response_has_a_chinese_variation_and_a_default():
    for name, variations in DOMAIN["responses"].items():
        zh = [v for v in variations if v.get("condition") == [
            {"type": "slot", "name": "language", "value": "zh"}]]
        default = [v for v in variations if "condition" not in v]
        assert zh and default, name


def test_every_custom_action_is_served_by_the_action_server():
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("bot.actions")
    assert set(DOMAIN["actions"]) <= set(executor.actions)


def test_rules_and_stories_only_use_known_intents_and_actions():
    known_intents = set(DOMAIN["intents"]) | {"nlu_fallback"}
    known_actions = (set(DOMAIN["actions"]) | set(DOMAIN["responses"]) | set(DOMAIN["forms"])
                     | {"action_deactivate_loop", "action_listen"})
    for path in (ROOT / "bot" / "data").glob("*.yml"):
        doc = yaml.safe_load(Path(path).read_text())
        for block in doc.get("rules", []) + doc.get("stories", []):
            for step in block["steps"]:
                if "intent" in step:
                    assert step["intent"] in known_intents, (path.name, step)
                if "action" in step:
                    assert step["action"] in known_actions, (path.name, step)
