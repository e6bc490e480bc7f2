"""The root of the service's error tree.

Every error the service raises on purpose derives from :class:`ServiceError`.
Domain packages define small subtrees in their own ``errors.py``; the API maps
them to ``application/problem+json`` in one place (``service.api.problems``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConflictError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "ServiceError",
]


class ServiceError(Exception):
    """Root of every error the service raises on purpose."""

    status = 400
    code = "service-error"
    title = "Request could not be completed"

    def __init__(self, detail: str = "", *args: Any, **extra: Any) -> None:
        super().__init__(detail, *args)
        self.detail = detail or self.title
        self.extra = extra


class InvalidInputError(ServiceError):
    """The request is well-formed but its content is not acceptable."""

    status = 422
    code = "invalid-input"
    title = "Invalid input"


class NotFoundError(ServiceError):
    """The object does not exist, or the caller may not know that it exists."""

    status = 404
    code = "not-found"
    title = "Not found"


class PermissionDeniedError(ServiceError):
    """The caller is known but their role does not allow the action."""

    status = 403
    code = "forbidden"
    title = "Not allowed"


class ConflictError(ServiceError):
    """The action contradicts the current state (duplicate, wrong status...)."""

    status = 409
    code = "conflict"
    title = "Conflict"
