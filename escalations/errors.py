"""Errors the services raise; each interface turns them into its own answer."""

from __future__ import annotations


class BatonError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []

    def describe(self) -> str:
        """The message with each field's problem, for a terminal or a log line."""
        details = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)
        return f"{self.message} ({details})" if details else self.message


class InvalidInput(BatonError):
    status = 422
    code = "validation_error"


class NotFound(BatonError):
    status = 404
    code = "not_found"


class Forbidden(BatonError):
    status = 403
    code = "forbidden"


class Conflict(BatonError):
    status = 409
    code = "conflict"
