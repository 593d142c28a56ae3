"""NLU exceptions.

    NLUError
    ├── TrainingDataError   malformed YAML/CSV (names the file and line), empty intents
    ├── ModelNotFound       no trained model where one was expected
    ├── UnknownBaseModel    a base encoder that is neither bundled nor a transformers folder
    ├── EvaluationFloor     a candidate below the configured evaluation floor (not activated)
    ├── NLUConflict         no version to roll back to, a canary that is the active version
    └── NLUInvalid          a bad canary share, an unknown preset
"""

from __future__ import annotations

from core.errors import Conflict, NotFound, ParleyError, Unprocessable


class NLUError(ParleyError):
    code = "nlu_error"


class TrainingDataError(NLUError, Unprocessable):
    code = "training_data_invalid"


class ModelNotFound(NLUError, NotFound):
    code = "nlu_model_not_found"


class UnknownBaseModel(NLUError, Unprocessable):
    code = "nlu_unknown_base_model"


class EvaluationFloor(NLUError, Conflict):
    code = "nlu_below_floor"


class NLUConflict(NLUError, Conflict):
    code = "nlu_conflict"


class NLUInvalid(NLUError, Unprocessable):
    code = "nlu_invalid"
