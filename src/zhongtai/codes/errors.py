"""Errors of codes, each with a stable code."""

from __future__ import annotations

from zhongtai.core.errors import BadRequest, Conflict, NotFound, ValidationFailed


class BatchNotFound(NotFound):
    code = "batch_not_found"
    default_message = "No such code batch."


class CodeNotFound(NotFound):
    code = "code_not_found"
    default_message = "No such code."


class UnreadableCodeError(BadRequest):
    code = "code_unreadable"


class InvalidBatchRequest(ValidationFailed):
    code = "invalid_batch"


class BatchNotReady(Conflict):
    code = "batch_not_ready"
    default_message = "The batch is still being generated; try again when it is ready."


class BatchVoided(Conflict):
    code = "batch_voided"
    default_message = "The batch is voided."


class InvalidCodeSettings(ValidationFailed):
    code = "invalid_code_settings"


class CodeStepRefused(Conflict):
    """A commissioning or packing step refused; `data.refused` lists each code with its reason."""

    code = "code_step_refused"


class InvalidCodeStep(ValidationFailed):
    code = "invalid_code_step"
