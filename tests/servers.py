"""Helpers for tests that start a real server process of their own."""

from __future__ import annotations

import os
import subprocess
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """A server a test needs could not start: skip locally, fail under CI (which provides it)."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 10) -> None:
    """Terminate, then kill if it does not exit within ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
