"""Who may read analytics: an admin or an analyst (``staff.deps.AnalyticsReader``), re-exported
for the analytics routers."""

from __future__ import annotations

from staff.deps import AnalyticsReader

__all__ = ["AnalyticsReader"]
