"""Optional packages (signing, mail) plug their tables, routes and commands in when present,
and what a long-running process keeps once they are loaded."""

from __future__ import annotations

import gc
import importlib
from types import ModuleType

__all__ = ["freeze_loaded", "import_optional"]


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


def freeze_loaded() -> None:
    """Take what exists now (modules, the app, pools, a runtime just started) out of the
    cyclic collector's walks: it lives as long as the process, and a full collection would
    otherwise walk it again after every few thousand allocations (65 ms a walk, mid-request)."""
    gc.collect()
    gc.freeze()
