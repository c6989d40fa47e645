"""One error tree for the whole fleet.

`api/` maps these to HTTP responses (and nothing else does); workers turn them into a job's
`error = {code, message}`. Each class carries a stable machine-readable `code`.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "EngineError",
    "EngineOverloadedError",
    "InvalidInputError",
    "InvalidOutputError",
    "JobNotFoundError",
    "KeyNotFoundError",
    "ModelError",
    "ModelNotPreparedError",
    "PermissionDeniedError",
    "QueueUnavailableError",
    "QuotaExceededError",
    "RetryableError",
    "TextfleetError",
    "TransientDatabaseError",
]


class TextfleetError(Exception):
    """Base of every error textfleet raises on purpose."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        """The `{code, message}` object stored on a failed job and sent in error responses."""
        return {"code": self.code, "message": self.message}


# --- Categories ---------------------------------------------------------------------------------


class RetryableError(TextfleetError):
    """Raised when a failure is transient and the same job may succeed if tried again later."""

    code = "retryable_error"


class ConfigurationError(TextfleetError):
    """Raised when settings are missing or inconsistent (a process cannot start correctly)."""

    code = "configuration_error"


# --- Client-facing ------------------------------------------------------------------------------


class InvalidInputError(TextfleetError):
    """Raised when a job's input or params are invalid; `field` names the offending field."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def to_dict(self) -> dict[str, str]:
        out = super().to_dict()
        if self.field is not None:
            out["field"] = self.field
        return out


class JobNotFoundError(TextfleetError):
    """Raised when no job has the requested id."""

    code = "job_not_found"


class AuthenticationError(TextfleetError):
    """Raised when a request carries no API key, or one that is unknown, revoked or expired."""

    code = "invalid_api_key"


class KeyNotFoundError(TextfleetError):
    """Raised when no API key has the id or prefix an operator named (to list or revoke it)."""

    code = "key_not_found"


class PermissionDeniedError(TextfleetError):
    """Raised when a valid key lacks the scope a request needs."""

    code = "insufficient_scope"


class ConflictError(TextfleetError):
    """Raised when a request conflicts with the job's current state (e.g. cancelling a finished job)."""

    code = "conflict"


class QuotaExceededError(TextfleetError):
    """Raised when a tenant passes one of its limits (`shared.quotas`): its request rate, its unfinished
    jobs or a generation-token budget. `retry_after_s`: when trying again may succeed."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


# --- Infrastructure -----------------------------------------------------------------------------


class QueueUnavailableError(RetryableError):
    """Raised when the broker (Redis) cannot accept a message."""

    code = "queue_unavailable"


class TransientDatabaseError(RetryableError):
    """Raised when the database is briefly unreachable or a transaction must be retried."""

    code = "database_unavailable"


# --- Models -------------------------------------------------------------------------------------


class ModelNotPreparedError(ConfigurationError):
    """Raised when a worker starts without its model on disk (run `textfleet models prepare`)."""

    code = "model_not_prepared"


class ModelError(TextfleetError):
    """Raised when a model fails on a job's input; the job fails, the worker keeps serving."""

    code = "model_error"


class EngineError(ModelError):
    """Raised when the generation engine fails a request."""

    code = "engine_error"


class InvalidOutputError(ModelError):
    """Raised when constrained output does not parse or validate against its schema (or was cut off)."""

    code = "invalid_output"


class ContentFlaggedError(TextfleetError):
    """Raised by a generation guardrail: the prompt (`params.moderate_input`), or the output with
    `params.moderate_output: "block"`, was flagged by moderation. The job fails; nothing is retried."""

    code = "content_flagged"


class GuardrailUnavailableError(RetryableError):
    """Raised when a guardrail's moderation did not come back in time (no classify worker, say): the
    job is retried later rather than generated unchecked."""

    code = "guardrail_unavailable"


class EngineOverloadedError(RetryableError):
    """Raised when the engine cannot take more work right now (the job is retried later)."""

    code = "engine_overloaded"
