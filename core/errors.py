"""The one error root of wakeserve.

Every failure that crosses a transport boundary is a :class:`WakeserveError`. It carries the HTTP status a
REST transport answers with, a stable machine-readable ``code`` (the same one an error CloudEvent carries),
and whether retrying the same request may succeed. Each transport translates it in exactly one place.
"""

from __future__ import annotations


class WakeserveError(Exception):
    """Base class: a failure with an HTTP status, a stable code and a retry hint."""

    status: int = 500
    code: str = "internal"
    retryable: bool = False
    headers: dict[str, str] = {}  # extra HTTP headers of the answer (e.g. WWW-Authenticate on 401)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "code": self.code, "retryable": self.retryable}


class InvalidInputError(WakeserveError):
    """The request is malformed or does not match the model's declared tensors."""

    status = 400
    code = "invalid_input"


class UnknownModelError(WakeserveError):
    """No model with that name is served here."""

    status = 404
    code = "unknown_model"


class PayloadTooLargeError(WakeserveError):
    """A request body or referenced payload is over the configured limit."""

    status = 413
    code = "payload_too_large"


class OverloadedError(WakeserveError):
    """A bounded queue is full; the caller should back off and retry."""

    status = 503
    code = "overloaded"
    retryable = True


class NotReadyError(WakeserveError):
    """The model is still loading or warming up."""

    status = 503
    code = "not_ready"
    retryable = True


class ModelError(WakeserveError):
    """The model raised while computing a result."""

    status = 500
    code = "model_error"


class ArtifactError(WakeserveError):
    """Model artifacts could not be found or fetched."""

    status = 500
    code = "artifact_error"


class InvalidEventError(WakeserveError):
    """A CloudEvent that does not follow the request contract (docs/events.md)."""

    status = 400
    code = "invalid_event"


class PayloadNotFoundError(WakeserveError):
    """The ``dataref`` object does not exist."""

    status = 404
    code = "payload_not_found"


class ExpiredError(WakeserveError):
    """The request's ``deadline`` passed before it could run."""

    status = 408
    code = "expired"


class TransientError(WakeserveError):
    """A dependency failed in a way that may pass (S3 5xx or timeout, a 503 from the model server)."""

    status = 503
    code = "unavailable"
    retryable = True


class UnauthorizedError(WakeserveError):
    """The request lacks the credential this listener requires."""

    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="wakeserve"'}


class ForbiddenError(WakeserveError):
    """The caller is known, or needs no name, but what it asks for is not allowed here."""

    status = 403
    code = "forbidden"


class NotFoundError(WakeserveError):
    """No such route or resource (other than a model, which is :class:`UnknownModelError`)."""

    status = 404
    code = "not_found"


class NotImplementedFeatureError(WakeserveError):
    """The server does not implement what was asked."""

    status = 501
    code = "not_implemented"


class ConflictError(WakeserveError):
    """The request contradicts the current state (a candidate is still loading, nothing to promote)."""

    status = 409
    code = "conflict"
