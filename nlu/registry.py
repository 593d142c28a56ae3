"""Versioned model directories: ``<root>/<version>/metadata.json`` plus the model files.

``ACTIVE`` names the version the service serves, ``HISTORY`` lists past activations (for
rollback) and ``CANARY`` names a candidate and the share of conversations it takes. Every write
is atomic (temp file or folder + rename), so a failed training run never touches the active
model and a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlu.errors import ModelNotFound, NLUConflict, NLUInvalid

ACTIVE = "ACTIVE"
HISTORY = "HISTORY"
CANARY = "CANARY"


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if not p.name.startswith(".") and (p / "metadata.json").exists())

    def metadata(self, version: str) -> dict[str, Any]:
        path = self.root / version / "metadata.json"
        if "/" in version or version.startswith(".") or not path.exists():
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

    def find(self, *, key: str) -> str | None:
        """The newest version trained with this training key (data and configuration)."""
        for version in reversed(self.versions()):
            if self.metadata(version).get("training_key") == key:
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

    def _write(self, name: str, text: str) -> None:
        tmp = self.root / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.root / name)

    def history(self) -> list[dict[str, str]]:
        path = self.root / HISTORY
        return json.loads(path.read_text()) if path.exists() else []

    def activate(self, version: str, *, reason: str = "activate") -> None:
        self.metadata(version)  # raises if missing
        previous = self.active_version()
        self._write(ACTIVE, version)
        if previous != version:
            entry = {"version": version, "previous": previous or "", "reason": reason,
                     "at": datetime.now(UTC).isoformat(timespec="seconds")}
            self._write(HISTORY, json.dumps([*self.history(), entry][-100:], indent=1))
        canary = self.canary()
        if canary and canary["version"] == version:
            self.clear_canary()  # a promoted candidate is no longer a candidate

    def rollback(self) -> str:
        """Re-activate the version that was active before the current one."""
        current = self.active_version()
        for entry in reversed(self.history()):
            if entry["version"] == current and entry["previous"]:
                if not (self.root / entry["previous"] / "metadata.json").exists():
                    break
                self.activate(entry["previous"], reason="rollback")
                return entry["previous"]
        raise NLUConflict("There is no earlier NLU version to roll back to.",
                       code="nlu_no_rollback_target")

    def canary(self) -> dict[str, Any] | None:
        path = self.root / CANARY
        if not path.exists():
            return None
        canary = json.loads(path.read_text())
        return canary if (self.root / canary["version"] / "metadata.json").exists() else None

    def set_canary(self, version: str, share: float) -> None:
        self.metadata(version)
        if not 0.0 < share < 1.0:
            raise NLUInvalid("A canary's share of conversations must be between 0 and 1.",
                           code="nlu_bad_canary_share")
        if version == self.active_version():
            raise NLUConflict("The active version cannot be its own canary.",
                           code="nlu_canary_is_active")
        self._write(CANARY, json.dumps({"version": version, "share": share}))

    def clear_canary(self) -> None:
        (self.root / CANARY).unlink(missing_ok=True)

    def state_stamp(self) -> tuple[str | None, str | None]:
        """What the service should be serving: the active version and the canary file."""
        canary = self.root / CANARY
        return self.active_version(), canary.read_text() if canary.exists() else None

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)
