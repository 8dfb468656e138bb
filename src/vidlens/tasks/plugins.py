"""`import_builtins`: import a registry's built-in modules, each of which registers itself on import."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable


def import_builtins(modules: Iterable[str], failed: dict[str, str]) -> None:
    """Import each module that exists. One that needs a missing optional library (not a vidlens module) is
    recorded in `failed` as `module -> "module needs LIB"` and skipped, so the other entries still work."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("vidlens"):
                raise
            failed[module] = f"{module} needs {exc.name}"
