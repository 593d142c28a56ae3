"""Training data, pattern entities, BIO tags, and a tiny fine-tuned model: it parses its own
examples, is evaluated, and is swapped, rolled back and canaried while requests run."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from core.order_ids import OrderIds
from nlu.data import Entity, load_examples, parse_annotated
from nlu.errors import NLUInvalid, TrainingDataError
from nlu.patterns import merge, pattern_spans, written_language
from tests.stack import free_port

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


def test_data_hash_is_the_one_earlier_versions_computed(tmp_path: Path):
    """The digest checkpoints were trained under: adding fields to ``Entity`` (who found it,
    how sure) must not change it, or every install retrains once."""
    from dataclasses import replace

    from nlu.data import data_hash

    (tmp_path / "a.yml").write_text(
        'nlu:\n- intent: track\n  examples: |\n    - where is [PL-204817](order_id)\n'
        '    - my [pl204817](order_id:PL-204817) and the [破壁机](product)\n'
        '    - [NY]{"entity": "city", "value": "New York"} please\n'
        '- intent: greet\n  examples: |\n    - hello\n', encoding="utf-8")
    (tmp_path / "b.csv").write_text("text,intent\nbye now,goodbye\n", encoding="utf-8")
    examples = load_examples(tmp_path)
    assert data_hash(examples) == "200de8076010247c"  # what the code of f430223 computes
    relabelled = [replace(x, entities=tuple(replace(e, extractor="ParleyPatterns",
                                                    confidence=0.5) for e in x.entities))
                  for x in examples]
    assert data_hash(relabelled) == "200de8076010247c"


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
    spans = merge(pattern_spans("order pl 204817, mail me at a.b@example.com", OrderIds("PL")))
    assert [(s.entity, s.value) for s in spans] == [("order_id", "PL-204817"),
                                                     ("email", "a.b@example.com")]
    for left, right in pairwise(spans):
        assert left.end <= right.start


@pytest.mark.parametrize(("text", "languages", "expected"), [
    ("你好", (), "zh"), ("hello there", (), "en"), ("我的订单 PL-204817", (), "zh"),
    ("PL-204817", (), None),  # an id alone says nothing: the conversation keeps its language
    ("12345", (), None), ("blender", (), None), ("你好", ("en",), "en")])
def test_the_language_is_what_the_words_are_written_in(text, languages, expected):
    spans = merge([*pattern_spans(text, OrderIds("PL")),
                   *[Entity(0, 7, "product", "blender", "test")
                     for _ in range(text == "blender")]])
    assert written_language(text, spans, languages, default="en") == expected


def test_a_bare_number_is_only_an_order_id_candidate():
    (span,) = [s for s in pattern_spans("it is 12345") if s.entity == "order_id"]
    assert span.value == "12345" and span.confidence < 1


TINY = (
    "nlu:\n"
    "- intent: greet\n  examples: |\n    - hello there\n    - hi\n    - good morning\n"
    "    - 你好\n    - 早上好\n"
    "- intent: track\n  examples: |\n    - where is my [blender](product)\n"
    "    - track order [PL-123456](order_id)\n    - where is my parcel\n"
    "    - 我的快递到哪了\n    - 订单[PL-654321](order_id)到哪了\n"
    "- intent: out_of_scope\n  examples: |\n    - what is the capital of peru\n"
    "    - sing me a song\n    - 今天股市怎么样\n")


def tiny_config(**overrides):  # type: ignore[no-untyped-def]
    """The CI configuration, smaller still: two encoder layers."""
    from nlu.train import resolve_config

    return resolve_config("fast", **{"layers": 2, "min_steps": 60, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, base_encoders: Path):  # type: ignore[no-untyped-def]
    """A registry holding one trained version (``v1``) of the tiny data."""
    from nlu.train import train

    root = tmp_path_factory.mktemp("nlu")
    data = root / "tiny.yml"
    data.write_text(TINY, encoding="utf-8")
    models = root / "models" / "nlu"  # where Settings(var_dir=root) looks
    version = train(data, models, config=tiny_config(), base_cache=base_encoders)
    return data, models, version


def copy_version(registry_root: Path, version: str) -> str:
    """A second version with the same weights (enough to tell which one answered)."""
    import shutil

    from nlu.registry import Registry

    registry = Registry(registry_root)
    staging = registry.staging_dir()
    for item in (registry_root / version).iterdir():
        shutil.copy2(item, staging / item.name)
    meta = registry.metadata(version)
    meta.pop("version")
    return registry.publish(staging, meta)


def test_tiny_model_parses_its_own_examples(trained) -> None:  # type: ignore[no-untyped-def]
    from nlu.service import NLUService

    data, models, version = trained
    service = NLUService(models, order_ids=OrderIds("PL"))  # the demo's order ids
    service.warm_up()
    assert service.version == version
    for example in load_examples(data):
        parsed = service.parse(example.text)
        assert parsed["intent"]["name"] == example.intent, example.text
    parsed = service.parse("where is my blender, order PL-123456")
    assert {(e["entity"], e["value"], e["extractor"]) for e in parsed["entities"]} == {
        ("product", "blender", "ParleyTransformer"), ("order_id", "PL-123456", "ParleyPatterns")}
    for entity in parsed["entities"]:
        assert parsed["text"][entity["start"]:entity["end"]].upper() == entity["value"].upper()
        assert 0 < entity["confidence_entity"] <= 1
    ranking = parsed["intent_ranking"]
    assert ranking[0]["name"] == parsed["intent"]["name"]
    assert abs(sum(r["confidence"] for r in ranking) - 1) < 0.01


def test_version_metadata_records_how_it_was_made(trained) -> None:  # type: ignore[no-untyped-def]
    from nlu.data import data_hash
    from nlu.registry import Registry

    data, models, version = trained
    meta = Registry(models).metadata(version)
    assert meta["data_hash"] == data_hash(load_examples(data))
    assert meta["base_model"] == "e5-small" and meta["config"]["layers"] == 2
    assert meta["created_at"] and meta["intents"] == ["greet", "out_of_scope", "track"]
    assert meta["oos_label"] == "out_of_scope" and meta["entities"] == ["order_id", "product"]
    assert meta["serving"]["format"] in {"onnx-int8", "onnx-fp32"}
    assert meta["metrics"]["accuracy"] == 1.0


def test_eval_report_has_every_field_and_a_confusion_png(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from web.cli import app

    data, models, _ = trained
    report = tmp_path / "out" / "report.json"
    result = CliRunner().invoke(app, ["nlu", "eval", "--model", str(models), "--data",
                                      str(data), "--report", str(report)])
    assert result.exit_code == 0, result.output
    body = json.loads(report.read_text())
    for key in ("accuracy", "macro_f1", "oos_precision", "oos_recall", "entity_f1"):
        assert 0.0 <= body[key] <= 1.0, key
    assert body["accuracy"] == 1.0 and body["oos_recall"] == 1.0
    png = report.with_suffix(".confusion.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "macro_f1" in result.output


def test_activate_and_rollback_under_concurrent_parses_lose_nothing(trained) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    from nlu.registry import Registry
    from nlu.service import NLUService

    _, models, v1 = trained
    v2 = copy_version(models, v1)
    registry = Registry(models)
    registry.activate(v1)
    service = NLUService(models, batching=True)
    service.warm_up()
    answered: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answered.append(service.parse_future("where is my parcel").result(10)[
                    "model_version"])
            except BaseException as exc:  # any failure fails the test
                failures.append(exc)

    def wait_for_more(count: int) -> None:
        target, deadline = len(answered) + count, time.monotonic() + 30
        while len(answered) < target and not failures and time.monotonic() < deadline:
            time.sleep(0.002)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for target in (v2, v1, v2):
            registry.activate(target)
            assert service.refresh()
            wait_for_more(20)
            assert answered[-1] == target
        assert registry.rollback() == v1
        service.refresh()
        wait_for_more(20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        service.close()
    assert failures == []
    assert set(answered) == {v1, v2} and answered[-1] == v1
    assert service.batcher is not None and service.batcher.batches < len(answered)
    # v1 -> v2 -> v1 -> v2 -> rollback to v1: the history names every step
    assert [h["version"] for h in registry.history()][-4:] == [v2, v1, v2, v1]


def test_a_canary_takes_its_share_of_conversations(trained) -> None:  # type: ignore[no-untyped-def]
    from nlu.registry import Registry
    from nlu.service import NLUService

    _, models, v1 = trained
    v2 = copy_version(models, v1)
    registry = Registry(models)
    registry.activate(v1)
    registry.set_canary(v2, 0.3)
    service = NLUService(models)
    service.warm_up()
    served = {f"conv-{i}": service.parse("hi", conversation_id=f"conv-{i}")["model_version"]
              for i in range(200)}
    share = sum(v == v2 for v in served.values()) / len(served)
    assert 0.15 < share < 0.45
    assert all(service.parse("hello there", conversation_id=c)["model_version"] == v
               for c, v in list(served.items())[:20])  # a conversation stays on its version
    assert all(service.parse("hi", conversation_id=c)["canary"] == (v == v2)
               for c, v in list(served.items())[:40])  # analytics tells the canary apart
    live = service.report()["live"]
    assert live[v1]["requests"] > 0 and live[v2]["requests"] > 0
    assert set(live[v2]) >= {"fallback_rate", "mean_confidence", "latency_p50_ms"}
    registry.activate(v2)  # promoting the candidate ends the canary
    assert registry.canary() is None


def test_below_the_floor_nothing_is_activated(trained, base_encoders: Path) -> None:  # type: ignore[no-untyped-def]
    from core.config import Settings
    from nlu.errors import EvaluationFloor
    from nlu.registry import Registry

    _, models, v1 = trained
    v2 = copy_version(models, v1)
    registry = Registry(models)
    registry.activate(v1)
    from nlu.train import activate_if_passing

    assert not activate_if_passing(registry, v2, floor=1.01)
    assert registry.active_version() == v1
    settings = Settings(environment="test", var_dir=models.parent.parent, nlu_floor=1.01)
    assert settings.nlu_model_dir == models
    from nlu import admin

    with pytest.raises(EvaluationFloor):
        admin.activate(settings, v2)
    assert registry.active_version() == v1
    admin.activate(settings, v2, force=True)
    assert registry.active_version() == v2
    registry.activate(v1)
    broken = copy_version(models, v1)
    (models / broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(NLUInvalid, match="cannot be served"):
        admin.activate(settings, broken, force=True)
    assert registry.active_version() == v1


def test_a_failed_training_run_keeps_the_active_model(trained, tmp_path: Path,
                                                      base_encoders: Path) -> None:  # type: ignore[no-untyped-def]
    from nlu.errors import UnknownBaseModel
    from nlu.registry import Registry
    from nlu.train import train

    data, models, _ = trained
    registry = Registry(models)
    active, versions = registry.active_version(), registry.versions()
    broken = tmp_path / "broken.csv"
    broken.write_text("text,intent\nhi,\n")
    with pytest.raises(TrainingDataError, match=r"broken\.csv:2"):
        train(broken, models, config=tiny_config(), base_cache=base_encoders)
    with pytest.raises(UnknownBaseModel, match="unknown base model 'bert-huge'"):
        train(data, models, config=tiny_config(base="bert-huge"), base_cache=base_encoders,
              reuse=False)
    assert registry.active_version() == active and registry.versions() == versions
    assert not [p for p in models.iterdir() if p.name.startswith(".staging")]


def test_an_interrupted_training_run_resumes(tmp_path: Path, base_encoders: Path) -> None:
    from nlu.train import train

    data = tmp_path / "d.yml"
    data.write_text(TINY, encoding="utf-8")
    config = tiny_config(layers=1, min_steps=12, batch_size=8)
    steps: list[int] = []

    class Interrupted(Exception):
        pass

    def interrupt_after_first_epoch(phase: str, done: int, total: int) -> None:
        steps.append(done)
        if phase == "training" and done == 3:  # 13 examples, batch 8: 2 steps an epoch
            raise Interrupted

    with pytest.raises(Interrupted):
        train(data, tmp_path / "m", config=config, base_cache=base_encoders,
              progress=interrupt_after_first_epoch)
    assert list((tmp_path / "m" / ".work").glob("*/checkpoint.pt"))
    resumed: list[int] = []
    version = train(data, tmp_path / "m", config=config, base_cache=base_encoders,
                    progress=lambda phase, done, total: resumed.append(done)
                    if phase == "training" else None)
    assert resumed[0] == 3  # epoch 1 (steps 1-2) was not trained again
    assert version and not list((tmp_path / "m" / ".work").glob("*/checkpoint.pt"))


def test_an_ensemble_trained_in_parts_is_served_as_one_model(tmp_path: Path,
                                                            base_encoders: Path) -> None:
    from nlu.finetune import fit, fit_members
    from nlu.runtime import OnnxJointModel

    data = tmp_path / "d.yml"
    data.write_text(TINY, encoding="utf-8")
    examples = load_examples(data)
    config = tiny_config(members=2, quantize=False)
    for member in (0, 1):  # as two processes would
        fit_members(examples, config, [member], cache=base_encoders, workdir=tmp_path / "w")
    assert sorted(p.parent.name for p in (tmp_path / "w").glob("*/checkpoint.pt")) == [
        "member-0", "member-1"]
    retrained: list[int] = []
    result = fit(examples, [], config, cache=base_encoders, workdir=tmp_path / "w",
                 progress=lambda phase, done, total: retrained.append(done)
                 if phase == "training" else None)
    assert retrained == []  # both members were found trained
    model = OnnxJointModel(result.directory)
    texts = [e.text for e in examples]
    _, vectors = model.intent_logits(texts, with_vectors=True)
    assert vectors.shape == (len(texts), 2 * 384)  # each member's sentence vector
    assert [p.ranking[0][0] for p in model.predict(texts)] == [e.intent for e in examples]


def test_admins_manage_versions_over_http(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from core.config import Settings
    from nlu.registry import Registry
    from tests.unit.conftest import ScriptedDialogue
    from tests.unit.test_handoff import PASSWORD, make_agent
    from web.app import create_app

    _, models, v1 = trained
    v2 = copy_version(models, v1)
    registry = Registry(models)
    registry.activate(v1)
    # The project's state folder holds the trained models; the database stays in this test's.
    settings = Settings(environment="test", var_dir=models.parent.parent,
                        database_url=f"sqlite:///{tmp_path / 'parley.db'}",
                        secret_key="s" * 32, rasa_token="t" * 32, nlu_port=free_port())
    assert settings.nlu_model_dir == models
    make_agent(settings, "boss@example.com", role="admin")
    make_agent(settings, "ana@example.com")
    with TestClient(create_app(settings, dialogue=ScriptedDialogue())) as client:
        def login(email: str) -> dict[str, str]:
            token = client.post("/api/v1/auth/login", json={
                "email": email, "password": PASSWORD}).json()["token"]
            return {"Authorization": f"Bearer {token}"}

        admin, agent = login("boss@example.com"), login("ana@example.com")
        assert client.get("/api/v1/admin/nlu").status_code == 401
        assert client.post("/api/v1/admin/nlu/activate", json={"version": v2},
                           headers=agent).status_code == 403
        overview = client.get("/api/v1/admin/nlu", headers=admin).json()
        assert overview["active"] == v1
        assert {v["version"] for v in overview["versions"]} >= {v1, v2}
        assert client.post("/api/v1/admin/nlu/activate", json={"version": v2},
                           headers=admin).json()["active"] == v2
        assert registry.active_version() == v2
        missing = client.post("/api/v1/admin/nlu/activate", json={"version": "nope"},
                              headers=admin)
        assert (missing.status_code, missing.json()["error"]["code"]) == (
            404, "nlu_model_not_found")
        hostile = client.post("/api/v1/admin/nlu/activate", json={"version": "../../etc"},
                              headers=admin)
        assert hostile.status_code == 422
        assert client.put("/api/v1/admin/nlu/canary", json={"version": v1, "share": 0.2},
                          headers=admin).status_code == 200
        assert registry.canary() == {"version": v1, "share": 0.2}
        assert client.put("/api/v1/admin/nlu/canary", json={"version": v1, "share": 2},
                          headers=admin).status_code == 422
        assert client.delete("/api/v1/admin/nlu/canary", headers=admin).status_code == 200
        assert client.post("/api/v1/admin/nlu/rollback", headers=admin).json()["active"] == v1
        assert registry.active_version() == v1


@pytest.mark.parametrize(("text", "entities"), [
    ("where is my Aero blender", [(12, 24, "product")]),
    ("订单PL-654321到哪了", [(2, 11, "order_id")]),
    ("ship to New York by friday", [(8, 16, "city"), (20, 26, "day")]),
])
def test_bio_tags_round_trip_through_tokens(text: str, entities, base_encoders: Path) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    from nlu import tagging
    from nlu.data import Entity
    from nlu.encoders import resolve_base

    tokenizer = Tokenizer.from_file(str(resolve_base("e5-small", base_encoders)
                                        / "tokenizer.json"))
    gold = [Entity(s, e, name, text[s:e]) for s, e, name in entities]
    names = tagging.tag_names([e.entity for e in gold])
    index = {t: i for i, t in enumerate(names)}
    enc = tokenizer.encode(text)
    special = [bool(s) for s in enc.special_tokens_mask]
    ids = tagging.token_tags(enc.offsets, special, gold, index)
    tags = [names[i] if i != tagging.IGNORE else "O" for i in ids]
    spans = tagging.decode(text, enc.offsets, special, tags, [1.0] * len(tags))
    assert [(s.start, s.end, s.entity) for s in spans] == entities


def test_out_of_scope_thresholds_trade_accuracy_for_recall_only_with_enough_evidence() -> None:
    import numpy as np

    from nlu.calibration import choose_thresholds

    rng = np.random.default_rng(0)
    n_in, n_oos = 400, 40
    # in scope: confident and close to a centroid; out of scope: half are unsure, the other
    # half confident but far from every centroid (what a probability threshold alone misses)
    scores = np.concatenate([rng.uniform(0.7, 1.0, n_in), rng.uniform(0.1, 0.4, n_oos // 2),
                             rng.uniform(0.7, 1.0, n_oos // 2)])
    similarity = np.concatenate([rng.uniform(0.8, 0.95, n_in), rng.uniform(0.6, 0.9, n_oos // 2),
                                 rng.uniform(0.5, 0.7, n_oos // 2)])
    correct = np.concatenate([np.ones(n_in, bool), np.zeros(n_oos, bool)])
    is_oos = ~correct
    tau, sim_tau = choose_thresholds(scores, similarity, correct, is_oos)
    rejected = (scores < tau) | (similarity < sim_tau)
    assert rejected[is_oos].mean() == 1.0 and rejected[~is_oos].mean() < 0.02
    only_probability = choose_thresholds(scores, None, correct, is_oos)
    assert only_probability[1] == -1.0
    # three out-of-scope examples are no evidence to reject in-scope traffic for
    few = np.concatenate([np.zeros(n_in, bool), np.ones(3, bool)])
    tau, sim_tau = choose_thresholds(scores[:n_in + 3], similarity[:n_in + 3],
                                     ~few, few)
    assert sim_tau == -1.0 and (scores[:n_in] < tau).mean() <= 0.02


def test_a_service_can_be_pinned_to_one_version(trained) -> None:  # type: ignore[no-untyped-def]
    from nlu.registry import Registry
    from nlu.service import NLUService

    _, models, v1 = trained
    v2 = copy_version(models, v1)
    Registry(models).activate(v1)
    pinned = NLUService(models / v2)
    pinned.warm_up()
    assert pinned.parse("hi")["model_version"] == v2
    assert pinned.refresh() is False  # a pinned service ignores the registry


def test_a_projects_first_model_is_served_even_below_the_floor(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A new project's bot must answer: with nothing active, the first version is activated
    whatever its accuracy; a later one below the floor is not."""
    import shutil

    from nlu.registry import Registry
    from nlu.train import activate_if_passing

    _, models, v1 = trained
    fresh = tmp_path / "nlu"
    fresh.mkdir()
    shutil.copytree(models / v1, fresh / v1)
    registry = Registry(fresh)
    assert registry.active_version() is None
    assert activate_if_passing(registry, v1, floor=1.01)
    assert registry.active_version() == v1
    v2 = copy_version(fresh, v1)
    assert not activate_if_passing(registry, v2, floor=1.01)
    assert registry.active_version() == v1
