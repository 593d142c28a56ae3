"""Versioned model directories: ``<root>/<version>/metadata.json`` plus the model files, and an
``ACTIVE`` file naming the version the service serves. Writes are atomic (temp dir + rename),
so a failed training run never touches the active model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlu.errors import ModelNotFound

ACTIVE = "ACTIVE"


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "metadata.json").exists())

    def metadata(self, version: str) -> dict[str, Any]:
        path = self.root / version / "metadata.json"
        if not path.exists():
            raise ModelNotFound(f"No NLU model version '{version}' in {self.root}")
        return json.loads(path.read_text())

    def active_version(self) -> str | None:
        path = self.root / ACTIVE
        if path.exists():
            version = path.read_text().strip()
            if (self.root / version / "metadata.json").exists():
                return version
        return None

    def active_dir(self) -> Path:
        version = self.active_version()
        if version is None:
            raise ModelNotFound(f"No active NLU model in {self.root}; run `parley nlu train`.")
        return self.root / version

    def find_by_data_hash(self, data_hash: str, kind: str) -> str | None:
        for version in reversed(self.versions()):
            meta = self.metadata(version)
            if meta.get("data_hash") == data_hash and meta.get("kind") == kind:
                return version
        return None

    def staging_dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))

    def publish(self, staging: Path, metadata: dict[str, Any]) -> str:
        """Move a finished staging dir into place as a new version (not yet active)."""
        version = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        metadata = {**metadata, "version": version,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False))
        target = self.root / version
        os.replace(staging, target)
        return version

    def activate(self, version: str) -> None:
        self.metadata(version)  # raises if missing
        tmp = self.root / f".{ACTIVE}.tmp"
        tmp.write_text(version)
        os.replace(tmp, self.root / ACTIVE)

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)
