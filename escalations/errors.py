"""Errors the services raise; each interface turns them into its own answer."""

from __future__ import annotations


class BatonError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


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
