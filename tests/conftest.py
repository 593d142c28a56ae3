"""Shared fixtures. Unit tests must not touch the network (see ``_no_network``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.contract")

from tests.stack import Stack, running_stack  # noqa: E402 - after the assert rewrite hook


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that opens a non-loopback connection fails."""
    if request.node.get_closest_marker("unit") is None:
        return
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else ""
        if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"unit tests may not open network connections ({host})")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def base_encoders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of unpacked base encoders (e5-small) for every test that trains."""
    return tmp_path_factory.mktemp("base-encoders")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole Parley stack, started once per test session."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
