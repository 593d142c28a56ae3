"""``PARLEY_REDACT_GENERATOR``: personal data in the question and the sources is masked before
an LLM generator sees it; the extractive answer is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Settings
from knowledge.answer import KnowledgeAnswerer, Source
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.embeddings import E5Embedder
from knowledge.factory import answerer as build_answerer
from knowledge.ingest import import_path
from knowledge.pii import mask_personal_data
from tests.unit.test_injection import NotFound

pytestmark = pytest.mark.unit

RETURNS = """---
id: returns-opened
title: Returning an opened appliance
lang: en
---
Opened small appliances such as blenders can be returned within 14 days of delivery if they
have not been used with food.
"""
QUESTION = "can I return an opened blender? anna.schmidt@gmail.com, +49 171 2345678"


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SQLiteDocumentIndex]:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "returns.md").write_text(RETURNS)
    store = SQLiteDocumentIndex(tmp_path / "documents.db")
    await import_path(kb, index=store, embedder=E5Embedder())
    yield store
    await store.close()


async def test_the_generator_sees_the_question_masked_and_the_answer_is_unchanged(
        index: SQLiteDocumentIndex) -> None:
    answers, prompts = [], []
    for redact in (mask_personal_data, None):
        recorder = NotFound()
        answerer = KnowledgeAnswerer(index=index, embedder=E5Embedder(), generators=[recorder],
                                     redact=redact)
        answers.append(await answerer.answer(QUESTION, lang="en"))
        prompts.append(recorder.prompts[0][1].content)
    masked, plain = prompts
    assert "Opened small appliances" in masked and "an opened blender?" in masked
    assert "anna.schmidt" not in masked and "2345678" not in masked
    assert "a***@gmail.com" in masked
    assert "anna.schmidt@gmail.com" in plain and "+49 171 2345678" in plain  # off by default
    # The extractive answer reads the question and the sources as they are, either way.
    assert (answers[0].text, answers[0].reason) == (answers[1].text, answers[1].reason)


async def test_card_numbers_in_the_question_never_reach_the_generator(
        index: SQLiteDocumentIndex) -> None:
    recorder = NotFound()
    answerer = KnowledgeAnswerer(index=index, embedder=E5Embedder(), generators=[recorder],
                                 redact=mask_personal_data)
    await answerer.answer("refund to my card 4111 1111 1111 1111 for the opened blender?",
                          lang="en")
    prompt = recorder.prompts[0][1].content
    assert "4111" not in prompt and "[card]" in prompt and "opened blender" in prompt


def test_the_setting_masks_the_question_and_the_sources(settings: Settings) -> None:
    source = Source(1, "complaint", "Customer: Anna Schmidt",
                    "Anna wrote from anna.schmidt@gmail.com; call her on +49 171 2345678. "
                    "Questions go to support@nimbus.example.")
    masked = build_answerer(settings.model_copy(update={"redact_generator": True}))
    plain = build_answerer(settings)

    user = masked.prompt(QUESTION, [source], "en")[1].content  # type: ignore[attr-defined]
    assert "anna.schmidt" not in user and "2345678" not in user and "Anna Schmidt" not in user
    assert "support@nimbus.example" in user  # a role mailbox is the company's, kept
    assert "anna.schmidt@gmail.com" in plain.prompt(  # type: ignore[attr-defined]
        QUESTION, [source], "en")[1].content
