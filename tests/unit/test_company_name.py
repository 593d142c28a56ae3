"""The assistant speaks for the configured company, never for a built-in one."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from knowledge.answer import KnowledgeAnswerer
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.embeddings import E5Embedder
from knowledge.factory import company_name

pytestmark = pytest.mark.unit


def test_the_name_comes_from_settings_then_the_company_folder(tmp_path: Path) -> None:
    folder = tmp_path / "company"
    folder.mkdir()
    assert company_name(Settings(company_data_dir=folder)) == ""
    (folder / "company.yml").write_text("name: Acme Bank\n", encoding="utf-8")
    assert company_name(Settings(company_data_dir=folder)) == "Acme Bank"
    assert company_name(Settings(company_data_dir=folder, company_name="Other")) == "Other"


async def test_without_a_company_the_prompt_names_none(tmp_path: Path) -> None:
    index = SQLiteDocumentIndex(tmp_path / "documents.db")
    try:
        for company, opening in (("", "You are a customer-service assistant."),
                                 ("Acme Bank", "You are the customer-service assistant of "
                                               "Acme Bank.")):
            answerer = KnowledgeAnswerer(index=index, embedder=E5Embedder(), company=company)
            assert answerer.prompt("q", [], "en")[0].content.startswith(opening)
    finally:
        await index.close()
