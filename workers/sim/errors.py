"""The simulator's request errors, mapped once to vLLM's OpenAI-style error body."""

from __future__ import annotations

from typing import Any, ClassVar


class SimRequestError(Exception):
    """A request the worker refuses; carries the HTTP status and OpenAI error fields."""

    status: ClassVar[int] = 400
    error_type: ClassVar[str] = "BadRequestError"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        """``{"error": {message, type, param, code}}`` exactly as vLLM's ErrorResponse."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.status,
            }
        }


class BadRequestError(SimRequestError):
    """Malformed JSON, a field of the wrong type or value, or a request that cannot fit."""


class ModelNotFoundError(SimRequestError):
    status = 404
    error_type = "NotFoundError"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.", param="model")


class ServiceUnavailableError(SimRequestError):
    """The worker is draining: it finishes what it has and takes nothing new."""

    status = 503
    error_type = "ServiceUnavailableError"

    def __init__(self) -> None:
        super().__init__(
            "The server is shutting down and accepts no new requests; retry on another worker."
        )
