"""What a criterion asks of the feature table: one :class:`FeatureSpec` per input column (a
variable, its aggregate and its window), and the sources and aggregates a spec may name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from hyperinflam.vocabulary.domain import EVENT_TYPES, INVASIVE_VENTILATION  # noqa: F401

Aggregate = Literal["min", "max", "last", "first", "count", "any"]
Source = Literal["measurement", "condition", "drug", "organ_support", "event"]

#: Aggregates each source supports.
SUPPORTED_AGGREGATES: dict[str, tuple[str, ...]] = {
    "measurement": ("min", "max", "last", "first", "count"),
    "condition": ("any",),
    "drug": ("any", "count"),
    "organ_support": ("any", "count", "max"),
    "event": ("any",),
}


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
    first_hours: only with lookback None (measurements, min/max/count): the window is the first
        hours of the stay, [admission, min(t, admission + first_hours)] -- e.g. PRISM III-24
        (clinical reference §7.3, §12.29).
    """

    variable: str
    agg: Aggregate
    lookback_hours: float | None
    source: Source = "measurement"
    first_hours: float | None = None

    @property
    def column(self) -> str:
        if self.first_hours is not None:
            window = f"first{self.first_hours:g}h"
        else:
            window = "stay" if self.lookback_hours is None else f"{self.lookback_hours:g}h"
        return f"{self.variable}_{self.agg}_{window}"


def unique_specs(specs: Iterable[FeatureSpec]) -> list[FeatureSpec]:
    """Specs without duplicates, in first-seen order."""
    return list(dict.fromkeys(specs))
