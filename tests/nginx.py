"""Debian's nginx as a test load balancer: one server block per upstream, on free loopback
ports, run as the test's own process with its config, pid, logs and temp files in a folder.

Round robin, no sticky sessions, WebSocket upgrades passed through, and each response says
which upstream answered (``X-Upstream``), so a test can tell where a request or socket landed.
No keep-alive to the upstreams: a connection to one is open only while a request is, so a
test sees which process is busy with a request from its sockets.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.servers import unavailable

NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def require_nginx() -> str:
    """The nginx binary; otherwise ``unavailable`` (CI installs Debian's ``nginx-light``)."""
    found = shutil.which("nginx") or next((p for p in NGINX_PATHS if os.access(p, os.X_OK)), None)
    if found is None:
        unavailable("nginx is not installed (apt-get install nginx-light; CI: see .ci/run)")
    return found


def nginx_config(root: Path, upstreams: dict[str, tuple[int, list[str]]]) -> str:
    """``upstreams``: name → (listen port, ["127.0.0.1:port", ...])."""
    blocks = []
    for name, (port, servers) in upstreams.items():
        members = "".join(f"    server {s} max_fails=1 fail_timeout=1s;\n" for s in servers)
        blocks.append(
            f"  upstream {name} {{\n{members}  }}\n"
            f"  server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    location / {{\n"
            f"      proxy_pass http://{name};\n"
            f"      proxy_http_version 1.1;\n"
            f"      proxy_set_header Upgrade $http_upgrade;\n"
            f"      proxy_set_header Connection $connection_upgrade;\n"
            f"      proxy_set_header Host $host;\n"
            f"      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            f"      proxy_read_timeout 300s;\n"
            f"      client_body_buffer_size 1m;\n"
            f"      proxy_connect_timeout 2s;\n"
            f"      add_header X-Upstream $upstream_addr always;\n"
            f"    }}\n"
            f"  }}\n")
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may write the temp folders
    temp = "".join(f"  {kind}_temp_path {root / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'error.log'} warn;\n"
            f"events {{ worker_connections 1024; }}\n"
            f"http {{\n  access_log {root / 'access.log'};\n{temp}"
            f"  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n"
            + "".join(blocks) + "}\n")


@contextmanager
def running_nginx(root: Path, upstreams: dict[str, tuple[int, list[str]]]) -> Iterator[Path]:
    """nginx in the foreground of its own process group; yields its folder (logs there)."""
    binary = require_nginx()
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(nginx_config(root, upstreams))
    command = [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        pytest.fail(f"nginx rejected its config:\n{checked.stderr}\n{conf.read_text()}")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        ports = [port for port, _ in upstreams.values()]
        deadline = time.monotonic() + 10
        while not all(_listening(port) for port in ports):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start:\n{(root / 'error.log').read_text()}")
            time.sleep(0.05)
        yield root
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGQUIT)  # graceful: finish open requests
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return False
    return True
