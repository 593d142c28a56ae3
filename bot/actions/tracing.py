"""A span per action run in the action server (``parley-actions``), in the customer turn's trace.

Rasa sits between the API and the action server and forwards no trace headers, so the API
puts the W3C trace context into the message's metadata (``conversations.flows``); Rasa keeps
it with the user event and sends it back in every action call's tracker
(``latest_message.metadata.traceparent``), where the span below continues it. Rasa's own work
shows as the time inside the API's ``rasa.handle`` span that no child covers. Every span
also carries the conversation id (Rasa's sender id), which ties an action to its turn when
there is no context to continue (a turn from before tracing was on, an action Rasa runs by
itself).

``rasa_sdk`` runs every action through ``ActionExecutor.run``; ``instrument`` wraps it once,
the way rasa-sdk's own tracing does, so every action (forms and validations included) is
covered without each one opting in.
"""

from __future__ import annotations

import functools
from typing import Any

from rasa_sdk.executor import ActionExecutor

from core import tracing
from core.config import get_settings

SERVICE = "parley-actions"
_MARK = "_parley_traced"
_configured = False


def instrument(executor: type[ActionExecutor] = ActionExecutor) -> None:
    if getattr(executor, _MARK, False):
        return
    original = executor.run

    @functools.wraps(original)
    async def run(self: ActionExecutor, action_call: dict[str, Any], *args: Any,
                  **kwargs: Any) -> Any:
        _configure()
        if not tracing.enabled():
            return await original(self, action_call, *args, **kwargs)
        tracker = action_call.get("tracker") or {}
        metadata = (tracker.get("latest_message") or {}).get("metadata") or {}
        conversation = action_call.get("sender_id") or tracker.get("sender_id")
        with tracing.span("action.run", kind=tracing.SpanKind.SERVER,
                          parent=tracing.extract(metadata if isinstance(metadata, dict) else None),
                          attributes={"parley.action": action_call.get("next_action"),
                                      "parley.conversation_id": conversation}):
            return await original(self, action_call, *args, **kwargs)

    setattr(executor, "run", run)  # noqa: B010 - a method replaced on the class
    setattr(executor, _MARK, True)


def _configure() -> None:
    """Tracing from the settings, on the first action call (not at import: tests import the
    actions without an action server)."""
    global _configured
    if not _configured:
        _configured = True
        tracing.configure(get_settings(), service=SERVICE)
