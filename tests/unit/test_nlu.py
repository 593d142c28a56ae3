"""Training data loading, pattern entities, and a tiny model that parses its own examples."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from nlu.data import load_examples, parse_annotated
from nlu.errors import TrainingDataError
from nlu.patterns import merge, pattern_spans

pytestmark = pytest.mark.unit


def test_annotations_become_spans():
    text, entities = parse_annotated("where is [PL-204817](order_id) and [破壁机](product)?")
    assert text == "where is PL-204817 and 破壁机?"
    assert [(text[e.start:e.end], e.entity) for e in entities] == [("PL-204817", "order_id"),
                                                                     ("破壁机", "product")]


def test_synonym_and_json_annotations():
    text, entities = parse_annotated('[pl204817](order_id:PL-204817) [NY]{"entity": "city", '
                                     '"value": "New York"}')
    assert text == "pl204817 NY"
    assert [(e.entity, e.value) for e in entities] == [("order_id", "PL-204817"),
                                                        ("city", "New York")]


def test_malformed_yaml_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text('nlu:\n- intent: greet\n  examples: |\n    - hi\n  - : [\n')
    with pytest.raises(TrainingDataError, match=r"bad\.yml:\d+"):
        load_examples(bad)


def test_an_intent_without_examples_is_refused(tmp_path: Path):
    data = tmp_path / "nlu.yml"
    data.write_text('nlu:\n- intent: greet\n  examples: |\n    - hi\n'
                    '- intent: bye\n  examples: ""\n')
    with pytest.raises(TrainingDataError, match=r"nlu\.yml:5: intent 'bye' has no examples"):
        load_examples(data)


def test_csv_errors_name_the_line(tmp_path: Path):
    data = tmp_path / "train.csv"
    data.write_text("text,intent\nhello,greet\n,bye\n")
    with pytest.raises(TrainingDataError, match=r"train\.csv:3"):
        load_examples(data)


def test_csv_header_must_name_the_columns(tmp_path: Path):
    data = tmp_path / "train.csv"
    data.write_text("a,b\nhello,greet\n")
    with pytest.raises(TrainingDataError, match="header"):
        load_examples(data)


def test_order_ids_are_normalised_and_spans_never_overlap():
    spans = merge(pattern_spans("order pl 204817, mail me at a.b@example.com"))
    assert [(s.entity, s.value) for s in spans] == [("order_id", "PL-204817"),
                                                     ("email", "a.b@example.com")]
    for left, right in pairwise(spans):
        assert left.end <= right.start


def test_a_bare_number_is_only_an_order_id_candidate():
    (span,) = [s for s in pattern_spans("it is 12345") if s.entity == "order_id"]
    assert span.value == "12345" and span.confidence < 1


def test_tiny_model_parses_its_own_examples(tmp_path: Path):
    from nlu.service import NLUService
    from nlu.train import train

    data = tmp_path / "tiny.yml"
    data.write_text(
        "nlu:\n"
        "- intent: greet\n  examples: |\n    - hello there\n    - hi\n    - good morning\n"
        "    - 你好\n    - 早上好\n"
        "- intent: track\n  examples: |\n    - where is my [blender](product)\n"
        "    - track order [PL-123456](order_id)\n    - where is my parcel\n"
        "    - 我的快递到哪了\n    - 订单[PL-654321](order_id)到哪了\n")
    version = train(data, tmp_path / "models")
    service = NLUService(tmp_path / "models", fallback_threshold=0.0)
    service.warm_up()
    assert service.version == version
    for example in load_examples(data):
        parsed = service.parse(example.text)
        assert parsed["intent"]["name"] == example.intent, example.text
    parsed = service.parse("where is my blender, order PL-123456")
    assert {(e["entity"], e["value"]) for e in parsed["entities"]} == {
        ("product", "blender"), ("order_id", "PL-123456")}
    assert parsed["intent_ranking"][0]["name"] == parsed["intent"]["name"]


def test_training_on_identical_data_reuses_the_version_and_failure_keeps_the_active_one(
        tmp_path: Path):
    from nlu.registry import Registry
    from nlu.train import train

    data = tmp_path / "d.csv"
    data.write_text("text,intent\nhi,greet\nhello,greet\nbye,bye\nsee you,bye\n")
    first = train(data, tmp_path / "m")
    assert train(data, tmp_path / "m") == first
    broken = tmp_path / "broken.csv"
    broken.write_text("text,intent\nhi,\n")
    with pytest.raises(TrainingDataError):
        train(broken, tmp_path / "m")
    assert Registry(tmp_path / "m").active_version() == first
    assert Registry(tmp_path / "m").versions() == [first]
