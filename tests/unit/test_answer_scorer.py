"""The learned answer scorer: trained from a knowledge base and questions with known answers,
saved and loaded, deciding which sentence is sent and when to abstain; a scorer file that does
not fit is refused and the hand-set score decides."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from core.config import Settings, get_settings
from knowledge.compose import FEATURES, Passage, candidates, compose
from knowledge.evaluation import evaluate
from knowledge.evaluation_questions import Question
from knowledge.reader import (
    LearnedScorer,
    Mined,
    ScorerUnusable,
    choose_threshold,
    fit,
    load_scorer,
    mine,
    outcome,
)
from tests.unit.test_kb_eval import ARTICLES, _questions_file, _write
from web.cli import app

pytestmark = pytest.mark.unit

# Questions whose answers the knowledge base states, and some it does not.
TRAINING = [
    Question("How long is the warranty on a kettle?", ("3-year warranty",), "en",
             "kettle-warranty"),
    Question("What do I send to make a warranty claim?", ("photo of the fault",), "en",
             "kettle-warranty"),
    Question("How quickly do you reply to a claim?", ("two business days",), "en",
             "kettle-warranty"),
    Question("How long does standard delivery in Germany take?", ("2 to 4 business days",),
             "en", "delivery-times"),
    Question("When does express delivery arrive?", ("next business day",), "en",
             "delivery-times"),
    Question("退货需要保持原包装吗？", ("原包装",), "zh", "returns-zh"),
    Question("退款多久到账？", ("5个工作日",), "zh", "returns-zh"),
    Question("收到商品后多少天内可以退货？", ("30天",), "zh", "returns-zh"),
    Question("Who designed the Kettlecraft kettle?", (), "en"),
    Question("How long is the warranty on a toaster?", (), "en"),
    Question("Does express delivery work on Sundays?", (), "en"),
    Question("退货运费谁来付？", (), "zh"),
]


def _settings(root: Path, models: Path) -> Settings:
    return Settings(_env_file=None, environment="test", var_dir=root / "var", models_dir=models,
                    secret_key="unit-test-secret-key-0123456789", rasa_token="unit-rasa-token",
                    generator_url="", cpu_llm="never")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the module: the embedder is built once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory,
            models: Path) -> tuple[Mined, LearnedScorer, Path]:
    root = tmp_path_factory.mktemp("scorer")
    kb = _write(root / "kb", ARTICLES)
    mined = asyncio.run(mine([kb], TRAINING, settings=_settings(root, models)))
    scorer, _ = fit(mined, folds=3)
    return mined, scorer, kb


def test_candidates_are_labelled_by_whether_they_state_the_answer(
        trained: tuple[Mined, LearnedScorer, Path]) -> None:
    mined, _, _ = trained
    x, y, groups = mined.arrays()
    assert x.shape == (len(y), len(FEATURES)) and len(mined.answerable) == len(TRAINING)
    for number, question in enumerate(TRAINING):
        labels = y[groups == number]
        if question.answerable:
            # Exactly the one sentence that states the answer, among its neighbours.
            assert labels.sum() == 1, question.question
        else:
            assert labels.sum() == 0, question.question


def test_a_saved_scorer_loads_and_scores_the_same(trained: tuple[Mined, LearnedScorer, Path],
                                                  tmp_path: Path) -> None:
    mined, scorer, _ = trained
    path = tmp_path / "scorer.pkl"
    scorer.save(path)
    loaded = LearnedScorer.load(path)
    assert loaded.threshold == scorer.threshold
    assert np.allclose(loaded.probabilities(mined.rows), scorer.probabilities(mined.rows))
    described = json.loads(path.with_suffix(".json").read_text())
    assert described["threshold"] == scorer.threshold and described["questions"] == 12


PASSAGES = [Passage(1, "Delivery times", "Standard delivery within Germany takes 2 to 4 "
                    "business days. Express delivery arrives the next business day when you "
                    "order before 2 pm.")]


def test_the_scorer_decides_between_sending_and_abstaining(
        trained: tuple[Mined, LearnedScorer, Path]) -> None:
    _, scorer, _ = trained
    question = "How long does express delivery take?"
    sent = compose(question, PASSAGES, scorer=dataclasses.replace(scorer, threshold=0.0))
    assert sent.reason == "passage" and len(sent.sentences) >= 1
    probabilities = scorer.probabilities(_features(question))
    best = _sentences(question)[int(np.argmax(probabilities))]
    assert sent.sentences[0] == (1, best)
    never = compose(question, PASSAGES, scorer=dataclasses.replace(scorer, threshold=1.01))
    assert never.sentences == [] and never.reason == "not_likely"


def _features(question: str) -> list[tuple[float, ...]]:
    return [c.features for c in candidates(question, PASSAGES)]


def _sentences(question: str) -> list[str]:
    return [c.sentence for c in candidates(question, PASSAGES)]


def test_the_threshold_abstains_where_it_costs_few_right_answers() -> None:
    # Question 0 (answerable): its best candidate states the answer at 0.9.
    # Question 1 (answerable): its best candidate (0.6) is wrong; the right one has 0.5.
    # Question 2 (unanswerable): best 0.7.  Question 3 (unanswerable): best 0.2.
    p = np.array([0.9, 0.1, 0.6, 0.5, 0.7, 0.2])
    labels = np.array([1, 0, 0, 1, 0, 0])
    groups = np.array([0, 0, 1, 1, 2, 3])
    answerable = [True, True, False, False]
    at_half = outcome(p, labels, groups, answerable, 0.5)
    assert (at_half.right, at_half.abstained_unanswerable, at_half.handled) == (0.5, 0.5, 0.5)
    at_high = outcome(p, labels, groups, answerable, 0.8)
    assert (at_high.right, at_high.abstained_unanswerable, at_high.handled) == (0.5, 1.0, 0.75)
    # Anything above 0.7 and up to 0.9 abstains on both unanswerable questions and keeps the
    # one right answer; the lowest such is chosen.
    assert choose_threshold(p, labels, groups, answerable) == 0.71
    # Abstaining on question 2 would cost the right answer to question 0: not worth it when
    # no right answer may be given up, and with nothing unanswerable nothing is abstained on.
    p[0] = 0.65
    assert choose_threshold(p, labels, groups, answerable, max_drop=0.0) == 0.21
    assert choose_threshold(p, labels, groups, [True, True, True, True]) == 0.0


def test_the_threshold_gives_up_few_right_answers_in_every_language() -> None:
    # English: an answerable question answered rightly at 0.3, an unanswerable one at 0.4.
    # Chinese: four answerable questions answered rightly at 0.9.
    p = np.array([0.3, 0.4, 0.9, 0.9, 0.9, 0.9])
    labels = np.array([1, 0, 1, 1, 1, 1])
    groups = np.arange(6)
    answerable = [True, False, True, True, True, True]
    # Pooled, abstaining on the unanswerable question costs one right answer of five (20%).
    assert choose_threshold(p, labels, groups, answerable, max_drop=0.25) == 0.41
    # It costs English its only right answer: not with the languages apart.
    languages = ["en", "en", "zh", "zh", "zh", "zh"]
    assert choose_threshold(p, labels, groups, answerable, max_drop=0.25,
                            languages=languages) == 0.0


def test_a_scorer_trained_on_other_features_is_refused(
        trained: tuple[Mined, LearnedScorer, Path], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    _, scorer, _ = trained
    path = tmp_path / "scorer.pkl"
    dataclasses.replace(scorer, features=(*FEATURES, "something new")).save(path)
    with pytest.raises(ScorerUnusable):
        LearnedScorer.load(path)
    settings = _settings(tmp_path, tmp_path / "models").model_copy(
        update={"answer_scorer": path})
    with caplog.at_level(logging.WARNING):
        assert load_scorer(settings) is None
    assert "train it again" in caplog.text
    assert load_scorer(settings.model_copy(update={"answer_scorer": tmp_path / "none"})) is None


def test_the_answer_path_uses_the_configured_scorer(
        trained: tuple[Mined, LearnedScorer, Path], tmp_path: Path, models: Path) -> None:
    _, scorer, kb = trained
    path = tmp_path / "scorer.pkl"
    dataclasses.replace(scorer, threshold=1.01).save(path)  # never sure enough: abstains
    settings = _settings(tmp_path, models).model_copy(
        update={"answer_scorer": path})
    asked = [Question("How long is the warranty on a kettle?", ("3-year warranty",), "en")]
    report = asyncio.run(evaluate([kb], asked, settings=settings))
    assert report.results[0].abstained and report.results[0].reason == "not_found"
    without = asyncio.run(evaluate([kb], asked, settings=settings.model_copy(
        update={"answer_scorer": tmp_path / "none"})))
    assert without.results[0].right


def test_the_cli_trains_a_scorer(trained: tuple[Mined, LearnedScorer, Path], tmp_path: Path,
                                 models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, kb = trained
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARLEY_MODELS_DIR", str(models))
    get_settings.cache_clear()
    try:
        questions = _questions_file(tmp_path / "q.jsonl", [
            json.dumps({"question": q.question, "answers": list(q.answers), "lang": q.lang},
                       ensure_ascii=False) for q in TRAINING])
        result = CliRunner().invoke(app, ["kb", "train-scorer", "--kb", str(kb),
                                          "--questions", str(questions)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    saved = models / "scorer" / "scorer.pkl"
    assert LearnedScorer.load(saved).threshold >= 0.0
    assert '"questions": 12' in result.output
