"""``parley kb eval``: exact figures on a tiny knowledge base, questions files checked line by
line, right replies judged after normalisation, and the live knowledge base never touched."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import Settings, get_settings
from knowledge.evaluation import Report, evaluate
from knowledge.evaluation_questions import InvalidQuestions, Question, is_right, load_questions
from knowledge.sync import import_into
from tests.stack import free_port
from web.cli import app

pytestmark = pytest.mark.unit

ARTICLES = {
    "warranty.md": """---
id: kettle-warranty
title: Kettle warranty
lang: en
---

## How long is the warranty?

Every Kettlecraft kettle comes with a 3-year warranty from the date of delivery.

## How do I make a claim?

Send a photo of the fault and your order number to the support team.
We reply within two business days.
""",
    "delivery.md": """---
id: delivery-times
title: Delivery times
lang: en
---

Standard delivery within Germany takes 2 to 4 business days.
Express delivery arrives the next business day when you order before 2 pm.
""",
    "returns-zh.md": """---
id: returns-zh
title: 退货政策
lang: zh
---

收到商品后30天内可以免费退货。退货商品需要保持原包装完好。退款会在收到退货后5个工作日内退回原支付方式。
""",
    "faq.csv": "\n".join([
        "question,answer",
        'Can I pay with PayPal?,"Yes, we accept PayPal, Visa and Mastercard at checkout."',
        'Do you ship to Switzerland?,"Yes, we ship to Switzerland. Customs fees are paid by '
        'the customer on delivery."',
        'How do I change my delivery address?,"You can change the delivery address under '
        'Orders until the parcel has shipped."']) + "\n",
}
QUESTIONS = [
    # right
    Question("How long is the warranty on my kettle?", ("3-year warranty",),
             source="kettle-warranty"),
    Question("Can I pay with PayPal?", ("we accept paypal",), source="faq:1"),
    Question("退货需要保持原包装吗？", ("原包装",), source="returns-zh"),
    Question("退款多久到账？", ("5个工作日",), source="returns-zh"),
    # wrong: answered, but not with the key's answer, nor from the key's source
    Question("How fast is express delivery?", ("same day",), source="kettle-warranty"),
    # answerable by the key, not by the knowledge base: abstains
    Question("What is the capital of Mongolia?", ("Ulaanbaatar",)),
    # unanswerable: abstain
    Question("Who founded the company?", ()),
    Question("Do you sell garden furniture?", ()),
]


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _questions_file(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for the module: a model built on first use is built once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def eval_settings(settings: Settings, models: Path) -> Settings:
    return settings.model_copy(update={"models_dir": models})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, models: Path) -> Report:
    root = tmp_path_factory.mktemp("eval")
    settings = Settings(_env_file=None, environment="test", var_dir=root / "var",
                        models_dir=models,
                        secret_key="unit-test-secret-key-0123456789",
                        rasa_token="unit-rasa-token", generator_url="", cpu_llm="never")
    return asyncio.run(evaluate([_write(root / "kb", ARTICLES)], QUESTIONS, settings=settings))


def test_a_tiny_knowledge_base_gives_exact_figures(report: Report) -> None:
    figures = report.figures()
    assert {k: figures[k] for k in (
        "n", "answerable", "unanswerable", "right", "wrong", "abstained_answerable",
        "abstained_unanswerable", "cited", "source_top1", "recall_at_5")} == {
        "n": 8, "answerable": 6, "unanswerable": 2, "right": 0.6667, "wrong": 0.1667,
        "abstained_answerable": 0.1667, "abstained_unanswerable": 1.0, "cited": 1.0,
        "source_top1": 0.8, "recall_at_5": 1.0}
    assert 0 < figures["p50_ms"] <= figures["p95_ms"]
    assert figures["generator"] == {"extractive": 5}
    assert figures["kb_chunks"] == 7 and figures["import_failed"] == []
    assert [r.right for r in report.results] == [True] * 4 + [False, False, True, True]
    assert [r.lang for r in report.results][1:3] == ["en", "zh"]  # detected


def test_a_faq_question_is_answered_from_its_own_row(report: Report) -> None:
    paypal = report.results[1]
    assert paypal.citations[0] == "faq:1" and paypal.source_first
    assert paypal.reply == "Yes, we accept PayPal, Visa and Mastercard at checkout."


async def test_a_faq_row_with_short_sentences_is_answered(eval_settings: Settings,
                                                          tmp_path: Path) -> None:
    result = await evaluate([_write(tmp_path / "kb", ARTICLES)], [
        Question("Do you ship to Switzerland?", ("we ship to Switzerland",), source="faq:2")],
        settings=eval_settings)
    assert result.results[0].right and result.results[0].source_first


def test_an_unanswerable_question_abstains(report: Report) -> None:
    for result in report.results[-2:]:
        assert result.abstained and result.reply == "" and result.citations == ()
        assert result.right  # abstaining is the right reply


def test_the_report_and_each_question_are_written(report: Report, tmp_path: Path) -> None:
    per_question = report.write(tmp_path / "report.json", {"dataset": "tiny"})
    assert per_question == tmp_path / "report.questions.jsonl"
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["dataset"] == "tiny" and written["right"] == 0.6667
    rows = [json.loads(line) for line in per_question.read_text().splitlines()]
    assert [r["question"] for r in rows] == [q.question for q in QUESTIONS]
    assert rows[4]["citations"] == ["delivery-times"] and rows[4]["source_first"] is False


@pytest.mark.parametrize(("reply", "answers", "right"), [
    ("Returns are accepted within 30 days.", ["30 Days"], True),
    ("Returns are accepted within 300 days.", ["30 days"], False),  # not part of a word
    ("We offer a 3‑year warranty!", ["3-year  warranty"], True),  # punctuation, spaces
    ("收到商品后３０天内可以退货。", ["30天"], True),  # NFKC: full-width digits
    ("请保持「原包装」完好。", ["原包装，"], True),  # Chinese punctuation
    ("anything at all", [], False),  # unanswerable: no reply states an answer
])
def test_a_reply_is_right_when_it_states_an_answer(reply: str, answers: list[str],
                                                   right: bool) -> None:
    assert is_right(reply, answers) is right


@pytest.mark.parametrize(("line", "why"), [
    ('{"question": "hi", "answers": [', "not JSON"),
    ('["hi", []]', "expected a JSON object"),
    ('{"answers": []}', "'question' must be"),
    ('{"question": "hi"}', "'answers' must be"),
    ('{"question": "hi", "answers": "30 days"}', "'answers' must be"),
    ('{"question": "hi", "answers": [30]}', "'answers' must be"),
    ('{"question": "hi", "answers": ["。"]}', "empty once punctuation"),
    ('{"question": "hi", "answers": [], "lang": "fr"}', "'lang' must be one of en, zh"),
    ('{"question": "hi", "answers": [], "source": 3}', "'source' must be"),
])
def test_a_malformed_line_fails_with_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = _questions_file(tmp_path / "q.jsonl", [
        '{"question": "Can I pay with PayPal?", "answers": ["PayPal"], "lang": "en"}', "", line])
    with pytest.raises(InvalidQuestions) as caught:
        load_questions(path)
    assert caught.value.message.startswith(f"{path}:3: ") and why in caught.value.message
    assert caught.value.code == "invalid_questions"


def test_a_questions_file_is_read_in_order(tmp_path: Path) -> None:
    path = _questions_file(tmp_path / "q.jsonl", [
        '{"question": " Can I pay with PayPal? ", "answers": ["PayPal"], "source": "faq:1"}',
        '{"question": "退货要多久？", "answers": [], "lang": "zh", "id": "ignored"}'])
    assert load_questions(path) == [Question("Can I pay with PayPal?", ("PayPal",), None, "faq:1"),
                                    Question("退货要多久？", (), "zh", None)]


@pytest.fixture
def cli_settings(tmp_path: Path, models: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARLEY_MODELS_DIR", str(models))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_the_cli_fails_on_a_malformed_line_with_one_error_line(cli_settings: Path,
                                                              tmp_path: Path) -> None:
    path = _questions_file(tmp_path / "q.jsonl", ['{"question": "hi", "answers": []}',
                                                  '{"question": "hi", "answers": [], "lang": 1}'])
    result = CliRunner().invoke(app, ["kb", "eval", "--kb", str(_write(tmp_path / "kb", ARTICLES)),
                                      "--questions", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert f"{path}:2:" in "".join(result.output.split())


def test_the_cli_fails_on_a_missing_knowledge_path(cli_settings: Path, tmp_path: Path) -> None:
    path = _questions_file(tmp_path / "q.jsonl", ['{"question": "hi", "answers": []}'])
    result = CliRunner().invoke(app, ["kb", "eval", "--kb", str(tmp_path / "nowhere"),
                                      "--questions", str(path)])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert "does not exist" in result.output


def test_the_cli_prints_figures_and_writes_the_report(cli_settings: Path, tmp_path: Path) -> None:
    path = _questions_file(tmp_path / "q.jsonl", [
        json.dumps({"question": q.question, "answers": list(q.answers)}, ensure_ascii=False)
        for q in QUESTIONS])
    result = CliRunner().invoke(app, [
        "kb", "eval", "--kb", str(_write(tmp_path / "kb", ARTICLES)), "--questions", str(path),
        "--report", str(tmp_path / "out.json"), "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "abstained_unanswerable" in result.output
    figures = json.loads((tmp_path / "out.json").read_text())
    assert {"n", "answerable", "unanswerable", "right", "wrong", "abstained_answerable",
            "abstained_unanswerable", "cited", "source_top1", "p50_ms",
            "p95_ms"} <= figures.keys()
    assert figures["n"] == 2 and figures["right"] == 1.0 and figures["source_top1"] is None
    assert len((tmp_path / "out.questions.jsonl").read_text().splitlines()) == 2
    assert not (cli_settings / "kb").exists()


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


async def test_an_eval_leaves_the_live_knowledge_base_untouched(eval_settings: Settings,
                                                                tmp_path: Path) -> None:
    settings = eval_settings
    live = _write(tmp_path / "live", {"hours.md": "---\nid: hours\n---\n\nWe open at 9 am.\n"})
    await import_into(settings, live)
    before = _snapshot(settings.var_dir / "kb")
    # Servers configured, and none listening: the eval must use none of them.
    configured = settings.model_copy(update={
        "elasticsearch_url": f"http://127.0.0.1:{free_port()}",
        "neo4j_url": f"bolt://127.0.0.1:{free_port()}"})
    result = await evaluate([_write(tmp_path / "kb", ARTICLES)], QUESTIONS[:2],
                            settings=configured)
    assert result.right == 1.0 and result.kb_chunks == 7
    assert _snapshot(settings.var_dir / "kb") == before
