"""Errors that reach a client as a Matrix JSON error body.

Services raise these directly so that the rule deciding the error stays next
to the rule that was broken; the HTTP layer only turns them into responses.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error with the status and errcode the spec gives for it."""

    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}


def bad_json(message: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", message)


def invalid_param(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


def missing_param(message: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", message)


def forbidden(message: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", message)


def not_found(message: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", message)


def unknown_token(message: str, *, soft_logout: bool) -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", message, soft_logout=soft_logout)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    return MatrixError(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_after_ms)
