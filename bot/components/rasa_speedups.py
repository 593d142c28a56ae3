"""Faster equivalents of Rasa 3.6 internals that cost every turn, installed when Rasa loads
Parley's channel (``bot.components.parley_channel`` imports this module).

- ``RemoteAction._validate_action_result`` calls ``jsonschema.validate`` on each action-server
  response, which checks the (constant) schema itself again every time: 42% of Rasa's request
  CPU in a profile, ~60 ms a call on a busy 2-core machine (docs/benchmarks.md, "Where a turn's
  milliseconds go"). Here the schema is checked once and its validator reused: the response is
  validated against the same schema, with the same error type and message.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL


@lru_cache(maxsize=1)
def action_response_validator() -> Validator:
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    try:
        error = best_match(action_response_validator().iter_errors(result))  # as validate()
        if error is not None:
            raise error
        return True
    except ValidationError as e:
        e.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise e


RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
