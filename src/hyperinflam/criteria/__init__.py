"""Screening criteria and severity scores, one module each.

Each module in this package defines::

    NAME: str                      # e.g. "hscore"; prefix of every output column
    TITLE: str                     # human title, e.g. "HScore (Fardet 2014)"
    LABEL: str                     # short name for tables, e.g. "HScore" (optional)
    RESULT: str                    # column of the overall tri-state result (optional)
    REFERENCE: str                 # clinical reference section and primary publication
    INPUTS: list[FeatureSpec]      # what it reads from the wide feature table
    def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
        '''Output columns (each named NAME_...) as ibis expressions over the wide table t.'''

Modules are discovered automatically: adding a criterion is one module plus vocabulary entries.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType


@lru_cache(maxsize=1)
def discover() -> dict[str, ModuleType]:
    """All criterion modules of this package, by NAME, in a stable order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in ("NAME", "INPUTS", "evaluate")):
            found[module.NAME] = module
    return found


def label(name: str) -> str:
    """The short label of a criterion (its module's LABEL), else its name."""
    return getattr(discover().get(name), "LABEL", name)
