"""The ``parley`` command line: each domain's sub-app is mounted where the README documents
it, a domain's CLI imports only its own package and those below it, and a Parley error is
one line and exit code 2, never a traceback."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from core.config import get_settings
from web.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("core", "staff", "workers", "nlu", "knowledge", "conversations", "handoff", "bot",
          "web")
DOMAIN_CLIS = ("core/cli.py", "staff/cli.py", "workers/cli.py", "nlu/cli.py", "knowledge/cli.py",
               "conversations/cli.py", "conversations/privacy_cli.py")


@pytest.fixture
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARLEY_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _paths(group: Any, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group
            yield from _paths(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def test_every_command_keeps_its_name_and_place() -> None:
    assert list(_paths(typer.main.get_command(app))) == [
        "init", "check", "train", "run", "worker", "chat", "retention", "kb import", "kb eval",
        "kb train-scorer", "kb train-injection", "kafka consume", "tasks dead", "tasks retry",
        "serve api", "serve nlu", "nlu train", "nlu eval", "nlu parse", "nlu versions",
        "nlu activate", "nlu rollback", "nlu canary", "agents create", "customer export",
        "customer delete"]


@pytest.mark.parametrize("module", DOMAIN_CLIS)
def test_a_domain_cli_imports_only_its_package_and_lower_ones(module: str) -> None:
    own = LAYERS.index(module.split("/")[0])
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    higher = {name for name in imported
              if name.split(".")[0] in LAYERS and LAYERS.index(name.split(".")[0]) > own}
    assert not higher, f"{module} imports {sorted(higher)}"


def test_a_parley_error_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["nlu", "eval", "--model", str(tmp_path), "--data",
                                      str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: No active NLU model")
    assert "Traceback" not in result.output


def test_an_invalid_account_is_refused_before_the_database(local_settings: None,
                                                           tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["agents", "create", "--email", "not-an-email", "--name",
                                      "Ann"], env={"PARLEY_NEW_PASSWORD": "long-enough-pw-1"})
    assert result.exit_code == 2
    assert result.output.startswith("error: ")
    assert not (tmp_path / "var" / "parley.db").exists()


def test_importing_a_missing_path_is_exit_code_2(local_settings: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["kb", "import", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_importing_a_project_without_a_kb_folder_is_exit_code_2(
        local_settings: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no PATH, ``kb import`` imports the project's kb/, and says so when there is none."""
    project = tmp_path / "acme"
    project.mkdir()
    monkeypatch.setenv("PARLEY_PROJECT", str(project))  # --project sets it; restored after
    result = CliRunner().invoke(app, ["--project", str(project), "kb", "import"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "does not exist" in result.output
    assert str(project / "kb") in result.output.replace("\n", "")
