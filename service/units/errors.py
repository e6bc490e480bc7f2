"""Errors of the unit tree."""

from __future__ import annotations

from service.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError

__all__ = ["InvalidTreeError", "OwnUnitError", "SealNameTakenError", "UnitCodeTakenError", "UnitNotFoundError",
           "UnknownUnitsError", "UsernameTakenError"]


class UnitNotFoundError(NotFoundError):
    """No unit with that id or code (or not one the caller may see)."""

    code = "unit-not-found"


class UnknownUnitsError(InvalidInputError):
    """Units named in a request do not exist; ``extra['unknown']`` lists them."""

    code = "unknown-units"


class InvalidTreeError(InvalidInputError):
    """An import or move would break the tree (cycle, missing or out-of-scope parent,
    bad code, too deep), or the unit file cannot be read."""

    code = "invalid-unit-tree"


class UnitCodeTakenError(ConflictError):
    """The identifier code is already used by another unit (a retry will not help)."""

    code = "unit-code-taken"


class SealNameTakenError(ConflictError):
    """Another unit that holds a seal has the name (as a seal reads it): two sealed units of one
    name would seal as each other, so neither could seal; the change is refused instead."""

    code = "seal-name-taken"


class UsernameTakenError(ConflictError):
    code = "username-taken"


class OwnUnitError(PermissionDeniedError):
    """An admin tried to change its own unit's name, level, code or seal: those belong to an
    admin of the unit above it, or to the operator."""

    code = "own-unit"
