"""The assistant speaks for the configured company, never for a built-in one."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import DEMO_PROJECT, Settings
from knowledge.answer import KnowledgeAnswerer
from knowledge.documents.embedded import SQLiteDocumentIndex
from knowledge.embeddings import E5Embedder
from knowledge.factory import company_name

pytestmark = pytest.mark.unit


def test_the_name_comes_from_settings_then_the_project_then_the_company_folder(
        tmp_path: Path) -> None:
    project = tmp_path / "acme"
    folder = project / "company"
    folder.mkdir(parents=True)
    # No parley.yml and no company.yml: the assistant names no company.
    assert company_name(Settings(project=project, company_name="")) == ""
    (folder / "company.yml").write_text("name: Acme Bank\n", encoding="utf-8")
    assert company_name(Settings(project=project, company_name="")) == "Acme Bank"
    (project / "parley.yml").write_text("company:\n  name: Acme Group\nlanguages: [en]\n",
                                        encoding="utf-8")
    assert company_name(Settings(project=project, company_name="")) == "Acme Group"
    assert company_name(Settings(project=project, company_name="Other")) == "Other"


def test_the_demo_project_speaks_for_nimbus_home() -> None:
    assert company_name(Settings(project=DEMO_PROJECT, company_name="")) == "Nimbus Home"


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


async def test_the_prompt_names_the_assistant_and_uses_the_project_tone(tmp_path: Path) -> None:
    from knowledge.answer import TONES

    index = SQLiteDocumentIndex(tmp_path / "documents.db")
    try:
        answerer = KnowledgeAnswerer(index=index, embedder=E5Embedder(), company="Acme Bank",
                                     assistant="Ava", tone="formal")
        system = answerer.prompt("q", [], "en")[0].content
        assert system.startswith("You are Ava, the customer-service assistant of Acme Bank.")
        assert TONES["formal"] in system and TONES["friendly"] not in system
    finally:
        await index.close()
