"""One API process for the scale-out tests: the real app with a slow, scripted dialogue
instead of Rasa, served by uvicorn.

    python -m tests.scale_api --port 8001 --record turns.jsonl --delay 0.3

Settings come from the environment (``PARLEY_*``) as in production. Every turn appends one
JSON line to ``--record`` (``O_APPEND``: whole lines, whichever process writes):
``{"pid", "conversation", "message_id", "text", "start", "end"}``, so a test can check that
turns of one conversation never overlapped across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import uvicorn

from conversations.dialogue import BotReply, Turn
from core.config import Settings
from core.logging import configure_logging
from web.app import create_app


class SlowScriptedDialogue:
    """Answers ``echo: <text>`` after ``delay_s``; "a human please" asks for a person."""

    def __init__(self, record: Path, delay_s: float) -> None:
        self.record, self.delay_s = record, delay_s
        self.slots: dict[str, dict[str, Any]] = {}

    async def handle(self, conversation_id: str, text: str, *, message_id: str,
                     metadata: dict[str, Any]) -> Turn:
        start = time.time()
        await asyncio.sleep(self.delay_s)
        end = time.time()
        line = json.dumps({"pid": os.getpid(), "conversation": conversation_id,
                           "message_id": message_id, "text": text, "start": start, "end": end})
        fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        replies = [BotReply(text=f"echo: {text}")]
        if text == "a human please":
            replies.append(BotReply(text=None, custom={"handoff": {"reason": "customer_request"}}))
        return Turn(replies=replies, intent={"name": "test", "confidence": 1.0},
                    slots=dict(self.slots.get(conversation_id, {})))

    async def set_slots(self, conversation_id: str, slots: dict[str, Any], *,
                        new_conversation: bool = False) -> None:
        self.slots.setdefault(conversation_id, {}).update(slots)

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.3)
    args = parser.parse_args()
    configure_logging()
    app = create_app(Settings(), dialogue=SlowScriptedDialogue(args.record, args.delay))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
