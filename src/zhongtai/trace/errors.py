"""Errors of the EPCIS interface, each carrying the exception type of the EPCIS 2.0 REST bindings.

EPCIS endpoints answer every error as an RFC 7807 problem (`application/problem+json`) whose `type`
is the bindings' `epcisException:…` name; `epcis_api` maps core errors (401, 403, 404) to theirs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from zhongtai.core.errors import AppError


class EpcisError(AppError):
    epcis_type: ClassVar[str] = "epcisException:ImplementationException"
    title: ClassVar[str] = "EPCIS error"


class EpcisValidationError(EpcisError):
    """A document or event that does not validate; `data.errors` locates each problem (JSON pointer)."""

    code = "epcis_validation"
    status_code = 400
    epcis_type = "epcisException:ValidationException"
    title = "The EPCIS document is not valid"


class QueryParameterError(EpcisError):
    code = "epcis_query_parameter"
    status_code = 400
    epcis_type = "epcisException:QueryParameterException"
    title = "Invalid query parameter"


class CaptureLimitExceeded(EpcisError):
    code = "epcis_capture_limit"
    status_code = 413
    epcis_type = "epcisException:CaptureLimitExceededException"
    title = "Capture payload too large"


class NoSuchResource(EpcisError):
    code = "epcis_not_found"
    status_code = 404
    epcis_type = "epcisException:NoSuchResourceException"
    title = "Resource not found"


class ResourceAlreadyExists(EpcisError):
    code = "epcis_already_exists"
    status_code = 409
    epcis_type = "epcisException:ResourceAlreadyExistsException"
    title = "The event is already stored"

    def __init__(self, message: str | None = None, *, location: str, **data: Any) -> None:
        super().__init__(message, location=location, **data)


class UnsupportedMediaType(EpcisError):
    code = "epcis_media_type"
    status_code = 415
    epcis_type = "epcisException:UnsupportedMediaTypeException"
    title = "Unsupported media type"
