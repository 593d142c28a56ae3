"""Cross-cutting plumbing shared by every Parley package: settings, database, errors, logging."""
