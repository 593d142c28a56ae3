"""Shapes the knowledge package gives the rest of Parley."""

from __future__ import annotations

from pydantic import BaseModel


class Citation(BaseModel):
    """A source an answer rests on, as the widget and the console show it."""

    source_id: str
    title: str
    snippet: str
