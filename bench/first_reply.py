"""Time from a fresh clone to the first bot reply with `make run`, cold and warm.

Cold: a new clone with no virtual environments or models (pip's download cache may be warm,
as on any developer machine after the first install). Warm: `make run` again in the same
clone (venvs and models exist). Each run stops Parley after the first reply.

    .venv/bin/python bench/first_reply.py [--repo .] [--skip-cold]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx


def first_reply_seconds(clone: Path, port: int, limit_s: float = 1800) -> float:
    env = {**os.environ, "PARLEY_API_PORT": str(port)}
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while time.monotonic() - started < limit_s:
            try:
                conv = httpx.post(f"{base}/api/v1/conversations", json={}, timeout=5).json()
                reply = httpx.post(f"{base}/api/v1/conversations/{conv['id']}/messages",
                                   headers={"Authorization": f"Bearer {conv['token']}"},
                                   json={"text": "hello", "client_message_id": uuid.uuid4().hex},
                                   timeout=60)
                if reply.status_code == 200 and len(reply.json()["messages"]) > 1:
                    return time.monotonic() - started
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError("no reply")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "parley"
        subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
        cold = first_reply_seconds(clone, args.port)
        print(f"cold (fresh clone, no venvs or models): {cold:6.1f} s to first reply")
        warm = first_reply_seconds(clone, args.port)
        print(f"warm (venvs and models in place):       {warm:6.1f} s to first reply")


if __name__ == "__main__":
    main()
