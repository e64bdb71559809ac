"""The built-in task families' fixture generators (imported for their registrations)."""

from __future__ import annotations

import importlib

MODULES = ("benign", "probes", "permissions", "bash_benign")


def load_all() -> None:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
