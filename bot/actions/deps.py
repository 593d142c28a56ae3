"""What actions depend on, built once per action-server process."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from knowledge.embedded import SQLiteCompanyStore
from knowledge.protocol import CompanyStore
from web.core.config import get_settings


@lru_cache
def company_store() -> CompanyStore:
    settings = get_settings()
    return SQLiteCompanyStore(settings.company_data_dir, settings.var_dir / "knowledge.db")


def language_of(tracker: Any) -> str:
    return tracker.get_slot("language") or "en"
