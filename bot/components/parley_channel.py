"""Parley's Rasa input channel: the one door the web API uses into Rasa.

Unlike Rasa's stock REST channel it
- fails loudly (HTTP 503) when the turn fails, instead of answering ``[]``, and that includes
  a custom action whose action server could not be reached (Rasa logs that and carries on
  without the action): such a turn is not saved to the tracker, so the retry of the same
  message runs it again;
- is idempotent per Parley message id: if the tracker already holds a user event carrying
  ``metadata.parley_message_id``, the replies recorded after it are returned and nothing is
  processed twice (this is how a turn interrupted by a crash is recovered exactly once); with
  the SQL tracker store one query over the conversation's user events says whether the id may
  be there, so the tracker is loaded for that only on a retry;
- returns what the turn understood (intent, entities, slots, active loop) so the API can
  store it with the message and tests can assert it;
- requires the shared bearer token (``PARLEY_RASA_TOKEN``) and never logs message text;
- lets only a button payload the API verified (``metadata.payload: true``) be read as Rasa's
  ``/intent{entities}`` command: any other text starting with "/" (after whitespace, as Rasa
  strips it) is customer text, and its slash is neutralised here, before Rasa parses it
  (``RegexMessageHandler`` runs after every NLU component, so no later place can).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import SQLTrackerStore
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

import bot.components.rasa_logging  # keeps customer text out of Rasa's logs
import bot.components.rasa_speedups  # noqa: F401 - installs faster Rasa internals
from bot.components.parley_nlu import GIVEN_PARSE, LANGUAGE_EXTRACTOR

logger = logging.getLogger(__name__)
COMMAND_PREFIX = "/"  # rasa.shared.constants.INTENT_MESSAGE_PREFIX
FULLWIDTH_SOLIDUS = "\uff0f"  # reads as "/" to a person and to the NLU, but is no command


def customer_text(text: str, metadata: dict[str, Any]) -> str:
    """``text`` as Rasa may see it: unchanged for a verified button payload, otherwise with a
    leading "/" (the command prefix Rasa checks after ``str.strip()``) made a full-width one."""
    if metadata.get("payload") is True:
        return text
    stripped = text.lstrip()
    if stripped.startswith(COMMAND_PREFIX):
        return FULLWIDTH_SOLIDUS + stripped[len(COMMAND_PREFIX):]
    return text


# The custom actions of this request's turn whose action server could not be reached.
_unreachable: ContextVar[list[str] | None] = ContextVar("parley_unreachable", default=None)
# The tracker this request's turn saved: the turn summary reads it instead of the store.
_saved: ContextVar[list[Any] | None] = ContextVar("parley_saved", default=None)


def _watch_unreachable_actions() -> None:
    """Note, for the turn running it, a custom action whose action server could not be reached
    (connection refused, reset or dropped: Rasa swallows that error), and keep such a turn out
    of the tracker store (the channel answers 503 and the retry runs it again)."""
    run, save = RemoteAction.run, MessageProcessor.save_tracker
    if getattr(run, "parley_watched", False):
        return

    async def watched_run(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run(self, *args, **kwargs)
        except Exception as exc:
            failed = _unreachable.get()
            if failed is not None and isinstance(exc.__context__,
                                                 aiohttp.ClientConnectionError):
                failed.append(self.name())
            raise

    async def watched_save(self: MessageProcessor, tracker: Any) -> None:
        if not _unreachable.get():
            await save(self, tracker)
            saved = _saved.get()
            if saved is not None:
                saved.append(tracker)

    watched_run.parley_watched = True  # type: ignore[attr-defined]
    RemoteAction.run = watched_run  # type: ignore[method-assign]
    MessageProcessor.save_tracker = watched_save  # type: ignore[method-assign]


_watch_unreachable_actions()


def _replies_after(events: list[dict[str, Any]], message_id: str) -> list[dict] | None:
    """Replies recorded after the user event with ``message_id``; None if it is not there."""
    found = False
    replies: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("event")
        if kind == "user":
            if found:
                break
            meta = event.get("metadata") or {}
            found = meta.get("parley_message_id") == message_id
        elif found and kind == "bot":
            data = event.get("data") or {}
            reply = {"text": event.get("text")}
            for key in ("buttons", "custom", "image", "attachment"):
                if data.get(key):
                    reply[key] = data[key]
            replies.append(reply)
    return replies if found else None


def _sql_store(store: Any) -> SQLTrackerStore | None:
    """The SQL tracker store behind Rasa's wrappers (``AwaitableTrackerStore``,
    ``FailSafeTrackerStore``), if that is what stores trackers."""
    for _ in range(4):
        if isinstance(store, SQLTrackerStore):
            return store
        store = getattr(store, "_tracker_store", None)
    return None


async def _maybe_seen(store: Any, sender: str, message_id: str) -> bool:
    """Whether the tracker may already hold the user event of ``message_id``: False only when
    it certainly does not. With the SQL store one indexed query over the conversation's user
    events answers that (message ids are in their JSON), instead of loading the whole tracker
    on every turn; other stores say True, and the tracker is loaded to look."""
    sql = _sql_store(store)
    if sql is None:
        return True
    needle = json.dumps(message_id)
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with sql.session_scope() as session:
        found = (session.query(sql.SQLEvent.id)
                 .filter(sql.SQLEvent.sender_id == sender, sql.SQLEvent.type_name == "user",
                         sql.SQLEvent.data.like(pattern, escape="\\"))
                 .first())
    return found is not None


def _turn_summary(tracker: Any) -> dict[str, Any]:
    latest = tracker.latest_message
    parse = latest.parse_data if latest else {}
    return {
        "intent": parse.get("intent"),
        "entities": [e for e in parse.get("entities", [])
                     if e.get("extractor") != LANGUAGE_EXTRACTOR],
        "slots": tracker.current_slot_values(),
        "active_loop": tracker.active_loop_name,
    }


class ParleyInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "parley"

    def blueprint(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> Blueprint:
        webhook = Blueprint("parley_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            token = os.environ.get("PARLEY_RASA_TOKEN", "")
            supplied = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
            if not token or not hmac.compare_digest(supplied, token):
                return response.json({"error": "unauthorized"}, status=401)
            body = request.json or {}
            sender = body.get("sender")
            text = body.get("message")
            metadata = body.get("metadata") or {}
            parse = None
            if isinstance(metadata, dict) and "parley_parse" in metadata:
                metadata = dict(metadata)  # the parse is for ParleyNLU, not the tracker
                parse = metadata.pop("parley_parse")
            message_id = metadata.get("parley_message_id")
            if isinstance(sender, str):
                # the NLU service routes canary traffic by conversation
                metadata = {**metadata, "parley_conversation_id": sender}
            if not sender or not isinstance(text, str) or not message_id:
                return response.json({"error": "sender, message and "
                                      "metadata.parley_message_id are required"}, status=400)
            text = customer_text(text, metadata)
            agent = request.app.ctx.agent
            if agent is None or not agent.is_ready():
                return response.json({"error": "model_not_ready"}, status=503)

            if await _maybe_seen(agent.tracker_store, sender, message_id):
                tracker = await agent.tracker_store.retrieve(sender)
                if tracker is not None:
                    events = [e.as_dict() for e in tracker.events]
                    replayed = _replies_after(events, message_id)
                    if replayed is not None:
                        return response.json({"messages": replayed, "replayed": True,
                                              **_turn_summary(tracker)})

            collector = CollectingOutputChannel()
            unreachable: list[str] = []
            saved: list[Any] = []
            _unreachable.set(unreachable)
            _saved.set(saved)
            # For this turn only: a keep-alive connection's requests may share one context.
            given = GIVEN_PARSE.set(parse if isinstance(parse, dict) else None)
            try:
                await on_new_message(UserMessage(text, collector, sender,
                                                 input_channel=self.name(), metadata=metadata,
                                                 message_id=message_id))
            except Exception as exc:
                logger.error("turn failed for a conversation: %s", type(exc).__name__)
                return response.json({"error": "turn_failed", "reason": type(exc).__name__},
                                     status=503)
            finally:
                GIVEN_PARSE.reset(given)
            if unreachable:  # not saved (see _watch_unreachable_actions): run again on retry
                logger.error("turn failed for a conversation: action server unreachable (%s)",
                             ", ".join(unreachable))
                return response.json({"error": "turn_failed", "reason": "action_server"},
                                     status=503)
            tracker = saved[-1] if saved else await agent.tracker_store.retrieve(sender)
            messages = [
                {k: v for k, v in m.items() if k != "recipient_id" and v is not None}
                for m in collector.messages
            ]
            return response.json({"messages": messages, "replayed": False,
                                  **_turn_summary(tracker)})

        return webhook
