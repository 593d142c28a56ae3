"""A new user's first minutes, in a real browser: ``parley init``, ``parley run``, then a chat.

Everything goes through the real command line in subprocesses, as someone following
docs/projects.md would do it: a fresh project folder, its own model cache, the API on a free
port and no internal port set (``parley run`` picks free ones). The second test stops
``parley run`` the way Ctrl-C or a service manager does and checks that nothing it started is
left running.

Run with ``pytest -m e2e tests/e2e/test_project_e2e.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.e2e.helpers import messages, screenshot, send
from tests.servers import wait_healthy
from tests.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import BrowserContext, Page, expect  # noqa: E402 - after the importorskip above

COMPANY = "Acme Bank"
# Training the NLU and Rasa models and starting four processes on a 2-core CI machine.
START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 60
REPLY_TIMEOUT_MS = 90_000  # the first answers load models; a busy machine is slow
# The variable every process started by `parley run` inherits: how we find them all in /proc.
MARKER = "PARLEY_E2E_RUN"
# Text from every open shadow root (the widget's) as well as the document's.
PAGE_TEXT_JS = """() => {
  const parts = [document.title, document.body.innerText];
  const walk = root => root.querySelectorAll('*').forEach(el => {
    if (el.shadowRoot) { parts.push(el.shadowRoot.textContent); walk(el.shadowRoot); }
  });
  walk(document);
  return parts.join('\\n');
}"""


@dataclass
class ParleyRun:
    project: Path
    process: subprocess.Popen[bytes]
    log: Path
    marker: str
    api_url: str
    internal_ports: dict[str, int] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    stopped: bool = False

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        service_logs = self.project / ".parley" / "logs"
        for path in sorted(service_logs.glob("*.log")) if service_logs.is_dir() else []:
            text += f"\n--- {path.name} ---\n" + path.read_text("utf-8", "replace")[-2000:]
        return text[-chars:]

    def stop(self) -> None:
        """SIGTERM to ``parley run``'s process group, SIGKILL after a while; then every process
        it started must be gone (each service runs in its own session, so a group signal does
        not reach them: ``parley run`` must stop them itself). Leftovers are killed and kept in
        ``leftovers``."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.leftovers.append(f"parley run (pid {self.process.pid}) ignored SIGTERM "
                                      f"for {STOP_TIMEOUT_S}s")
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        deadline = time.monotonic() + 15
        while marked_processes(self.marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid, command in marked_processes(self.marker).items():
            self.leftovers.append(f"pid {pid} still running: {command}")
            try:
                group = os.getpgid(pid)
                if group != os.getpgrp():
                    os.killpg(group, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name, port in self.internal_ports.items():
            if answers(port):
                self.leftovers.append(f"{name} port {port} still answers")


def clean_env() -> dict[str, str]:
    """The caller's environment without Parley's settings (a developer's PARLEY_PROJECT or
    ports must not leak in); PARLEY_RASA_VENV says where Rasa is installed, it stays."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("PARLEY_") or k == "PARLEY_RASA_VENV"}


def marked_processes(marker: str) -> dict[int, str]:
    """Live processes whose environment carries ``MARKER=marker``: all of ``parley run``'s."""
    wanted = f"{MARKER}={marker}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie: exited, not yet reaped
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found[int(entry.name)] = command.strip()
    return found


def child_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(item.decode(errors="replace").split("=", 1)
                for item in raw.split(b"\0") if b"=" in item)


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def parley_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyRun]:
    root = tmp_path_factory.mktemp("new-user")
    project = root / "acme"
    env = clean_env()
    init = subprocess.run(
        [sys.executable, "-m", "web.cli", "init", str(project), "--name", COMPANY,
         "--languages", "en"], cwd=root, env=env, capture_output=True, text=True, timeout=120,
        check=False)
    assert init.returncode == 0, f"parley init failed:\n{init.stdout}\n{init.stderr}"
    assert (project / "parley.yml").is_file()
    assert "Monday to Friday" in (project / "kb" / "en" / "about.md").read_text()

    api_port = free_port()
    marker = uuid.uuid4().hex
    env.update({"PARLEY_ENVIRONMENT": "test", "PARLEY_API_PORT": str(api_port),
                "PARLEY_NLU_PRESET": "fast", "PARLEY_CPU_LLM": "never",
                "PARLEY_MODELS_DIR": str(root / "models"), MARKER: marker,
                "PYTHONUNBUFFERED": "1", "COLUMNS": "120"})
    log = root / "parley-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "run", "--project", str(project)],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    run = ParleyRun(project, process, log, marker, f"http://127.0.0.1:{api_port}")
    try:
        wait_healthy(run.api_url, process, timeout_s=START_TIMEOUT_S, interval_s=1,
                     what="parley run", log_tail=run.log_tail)
        # The internal services: free ports (no PARLEY_*_PORT was set), each one answering.
        children = {pid: child_environ(pid) for pid in marked_processes(marker)
                    if pid != process.pid}
        for child in children.values():
            if "PARLEY_NLU_PORT" in child:
                run.internal_ports["nlu"] = int(child["PARLEY_NLU_PORT"])
                run.internal_ports["actions"] = int(child["PARLEY_ACTION_PORT"])
                run.internal_ports["rasa"] = urlparse(child["PARLEY_RASA_URL"]).port or 0
                break
        run.internal_ports["api"] = api_port
        assert len(run.internal_ports) == 4, (
            f"no child of parley run was told its ports: {children}\n{run.log_tail()}")
        assert len(set(run.internal_ports.values())) == 4, run.internal_ports
        assert not {5005, 5006, 5055} & set(run.internal_ports.values()), run.internal_ports
        for name, port in run.internal_ports.items():
            assert answers(port), f"{name} does not answer on {port}:\n{run.log_tail()}"
        yield run
    finally:
        run.stop()
        if run.leftovers:  # also when a test failed: a leftover is a bug of its own
            print("parley run left processes behind:\n" + "\n".join(run.leftovers),
                  file=sys.stderr)


def test_new_project_chats_in_the_browser(parley_run: ParleyRun,
                                          context: BrowserContext) -> None:
    log = parley_run.log.read_text(encoding="utf-8", errors="replace")
    assert f"Parley is running at {parley_run.api_url}" in log, log[-3000:]

    page = context.new_page()
    page.goto(parley_run.api_url + "/")
    expect(page).to_have_title(COMPANY)
    # The header waits for the widget's config, so its text is the project's title.
    expect(page.locator("#parley-title")).to_have_text(COMPANY)
    page.get_by_test_id("parley-launcher").click()
    expect(page.get_by_test_id("parley-panel")).to_be_visible()
    greeting = page.get_by_test_id("parley-greeting")
    expect(greeting).to_be_visible()
    expect(greeting).to_contain_text(COMPANY)

    # A question for the knowledge base: the scaffolded article answers it, and says so.
    send(page, "When does your support team answer?")
    answer = messages(page, "bot").filter(has_text="Monday to Friday")
    expect(answer).to_have_count(1, timeout=REPLY_TIMEOUT_MS)
    row = page.locator(".row.bot").filter(has=answer)
    cited = row.get_by_test_id("parley-citation").first
    expect(row.get_by_test_id("parley-sources")).to_contain_text("Sources:")
    expect(cited).to_contain_text(COMPANY)  # the article: "About Acme Bank"
    expect(cited).to_have_attribute("title", re.compile(r"\w"))

    # The core's greeting names the project's company.
    send_and_wait_reply_slow(page, "hello")
    expect(messages(page, "bot").last).to_contain_text(COMPANY)
    screenshot(page, "project-acme-bank")

    text = page.evaluate(PAGE_TEXT_JS)
    assert COMPANY in text
    assert "nimbus" not in text.lower(), text


def send_and_wait_reply_slow(page: Page, text: str) -> None:
    """``send_and_wait_reply`` with the reply's longer timeout."""
    before = send(page, text)
    expect(messages(page, "bot")).not_to_have_count(before, timeout=REPLY_TIMEOUT_MS)


def test_stopping_parley_run_stops_everything(parley_run: ParleyRun) -> None:
    """SIGTERM (a service manager, or Ctrl-C's group signal) stops all four services."""
    parley_run.stop()
    assert parley_run.process.returncode == 0, parley_run.log_tail()
    assert "Stopping Parley" in parley_run.log.read_text(encoding="utf-8", errors="replace")
    assert not parley_run.leftovers, (
        "parley run left processes behind:\n" + "\n".join(parley_run.leftovers))
