"""NLU exceptions.

    NLUError
    ├── TrainingDataError   malformed YAML/CSV (names the file and line), empty intents
    └── ModelNotFound       no trained model where one was expected
"""

from __future__ import annotations

from web.core.errors import NotFound, ParleyError, Unprocessable


class NLUError(ParleyError):
    code = "nlu_error"


class TrainingDataError(NLUError, Unprocessable):
    code = "training_data_invalid"


class ModelNotFound(NLUError, NotFound):
    code = "nlu_model_not_found"
