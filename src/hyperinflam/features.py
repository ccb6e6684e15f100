"""Long measurements -> one row per stay x evaluation time, with the worst value of each variable
in its lookback window.

Contract shared by every criterion (``hyperinflam.criteria``): a criterion declares the inputs it
needs as :class:`FeatureSpec` values; the screen builds one wide table holding the union of all
declared inputs (column names from :attr:`FeatureSpec.column`), then every criterion adds its
result columns to that table as ibis expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Aggregate = Literal["min", "max", "last", "first", "count", "any"]
Source = Literal["measurement", "condition", "drug", "organ_support", "event"]


@dataclass(frozen=True)
class FeatureSpec:
    """One input column of the wide feature table.

    variable: a vocabulary variable ('platelets'), a condition concept ('splenomegaly'), a drug
        or drug class ('anakinra', 'vasoactive') or an organ support ('invasive_ventilation'),
        depending on ``source``.
    agg: how values inside the window are reduced: 'min' / 'max' (worst low / worst high),
        'last' (last value at or before the evaluation time), 'first', 'count' (number of rows
        or distinct agents), 'any' (True if any row, NULL = unknown when none).
    lookback_hours: window (t - lookback, t]; None means from PICU admission up to t.
    """

    variable: str
    agg: Aggregate
    lookback_hours: float | None
    source: Source = "measurement"

    @property
    def column(self) -> str:
        window = "stay" if self.lookback_hours is None else f"{self.lookback_hours:g}h"
        return f"{self.variable}_{self.agg}_{window}"
