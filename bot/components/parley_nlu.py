"""A thin Rasa 3.6 NLU component that asks Parley's NLU service for intent and entities.

Why a component and not Rasa's ``nlu: url:`` endpoint (both exist in 3.6; see
docs/architecture.md): the HTTP interpreter sends only ``text`` and the sender id, bypasses
Rasa's ``/intent{...}`` handling for button payloads, and on any failure silently returns an
empty parse, so the bot would answer as if the customer had said nothing. This component
sits in the normal graph: button payloads are still handled by Rasa's RegexMessageHandler,
and if the NLU service is down the turn fails loudly, the API answers 503 and the customer's
stored message is processed again when it comes back.

Parley's API asks the NLU service itself, asynchronously, and sends the parse along in the
message's metadata (``parley_parse``, see conversations/dialogue.py): Rasa runs this graph
synchronously, so a request made from here held Rasa's event loop for the round trip. The
component uses that parse when it is of the text Rasa sees, and asks the service otherwise.
Only Parley's channel, which only the API reaches (with Rasa's token), hands a parse over; a
``parley_parse`` in another channel's metadata is ignored.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from typing import Any

import requests
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

# The NLU service's ``language`` (nlu.patterns.written_language) as an entity of its own, for
# the ``language`` slot; Parley's channel leaves it out of what it reports as understood.
LANGUAGE_ENTITY = "language"
LANGUAGE_EXTRACTOR = "ParleyLanguage"

# The parse the API sent with this request's message (``metadata.parley_parse``): Parley's
# channel takes it out of the metadata, which Rasa would store with the message, and puts it
# here for ``ParleyNLU`` (Rasa runs the NLU graph synchronously, in the request's context).
GIVEN_PARSE: ContextVar[dict[str, Any] | None] = ContextVar("parley_given_parse", default=None)


class NLUServiceUnavailable(RuntimeError):
    """Parley's NLU service did not answer; the turn must fail rather than guess."""


@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
        DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
    ],
    is_trainable=False,
)
class ParleyNLU(GraphComponent, IntentClassifier, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"url": None, "timeout": 10.0}

    def __init__(self, config: dict[str, Any]) -> None:
        self._url = (
            os.environ.get("PARLEY_NLU_URL") or config.get("url") or "http://127.0.0.1:5006"
        ).rstrip("/") + "/model/parse"
        self._timeout = float(config.get("timeout") or 10.0)
        self._session = requests.Session()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ParleyNLU:
        return cls(config)

    def train(self, training_data: TrainingData) -> Resource:  # pragma: no cover - not trainable
        raise NotImplementedError

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                # Button payloads (/intent{...}) are Rasa's RegexMessageHandler's job; the
                # Parley channel lets nothing else start with "/" (customer_text).
                continue
            metadata = message.get("metadata") or {}
            parse = self._given(text) or self._parse(text, metadata)
            intent = dict(parse.get("intent") or {"name": None, "confidence": 0.0})
            # Which NLU version answered (the active one or its canary), for analytics.
            intent["model_version"] = parse.get("model_version")
            intent["canary"] = bool(parse.get("canary"))
            message.set(INTENT, intent, add_to_output=True)
            message.set(INTENT_RANKING_KEY, parse.get("intent_ranking") or [],
                        add_to_output=True)
            entities = message.get(ENTITIES, []) + (parse.get("entities") or [])
            language = parse.get("language")
            if isinstance(language, str) and language:
                # The language the customer writes in fills the ``language`` slot (a
                # from_entity mapping in bot/domain.yml): no action-server call per turn.
                entities.append({"entity": LANGUAGE_ENTITY, "value": language, "start": 0,
                                 "end": len(text), "confidence_entity": 1.0,
                                 "extractor": LANGUAGE_EXTRACTOR})
            message.set(ENTITIES, entities, add_to_output=True)
        return messages

    @staticmethod
    def _given(text: str) -> dict[str, Any] | None:
        """The parse the API sent along, when it is of ``text``."""
        parse = GIVEN_PARSE.get()  # only Parley's channel sets it, from the API's request
        if isinstance(parse, dict) and parse.get("text") == text \
                and isinstance(parse.get("intent"), dict):
            return parse
        return None

    def _parse(self, text: str, metadata: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": text}
        locale: str | None = metadata.get("locale") if isinstance(metadata, dict) else None
        if locale:
            payload["locale"] = locale
        conversation = metadata.get("parley_conversation_id") if isinstance(metadata, dict) \
            else None
        if isinstance(conversation, str):
            payload["conversation_id"] = conversation
        # The turn's trace context (core/tracing.py puts it in the message metadata): the NLU
        # service's spans join the turn's trace.
        headers = {key: value for key in ("traceparent", "tracestate")
                   if isinstance(metadata, dict) and isinstance(value := metadata.get(key), str)}
        try:
            response = self._session.post(self._url, json=payload, timeout=self._timeout,
                                          headers=headers or None)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            logger.error("Parley NLU service at %s failed: %s", self._url, type(exc).__name__)
            raise NLUServiceUnavailable(f"NLU service unavailable: {type(exc).__name__}") from exc
