"""Optional packages (signing, mail) plug their tables, routes and commands in when present."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional"]


def import_optional(name: str) -> ModuleType | None:
    """The module, or None when it (or its package) is not installed.

    An import error from *inside* a present module is not hidden.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise
