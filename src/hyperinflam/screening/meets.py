"""The one rule for "meets a criterion", used by every surface (the ``screen`` summary, the
census, the JSON API, the study's phenotype at the index time, the docs).

* A criterion is **met** at an evaluation when the column its module names as ``RESULT`` is
  ``'met'``; 'not_met', 'unknown', 'indeterminate' and NULL are not met. Criteria without a
  ``RESULT`` (pSOFA, PRISM III points, Phoenix-8) have no threshold and are never "met".
* Each criterion module declares its ``GROUP``: :data:`PHENOTYPE` (HLH-2004, HScore, MAS-2016,
  MS score, hyperferritinaemic sepsis) or :data:`SEVERITY` (organ dysfunction and severity:
  IPSCC, Phoenix, Phoenix-8, pSOFA, PRISM III). "Meets a phenotype criterion" is the headline;
  organ dysfunction and severity are shown beside it, never mixed into it.
* A module may declare ``VALIDATED_AGE_MONTHS = (low, high)``: the ages its authors validated it
  in (months, ``low <= age < high``, age at the evaluation time, clinical reference §12.14). The
  screen adds ``<name>_outside_validated_ages`` (true, false, or NULL without an age) for each
  (``screening.screen.outside_validated_ages``).

Set-based: every function returns ibis expressions over a screen table.
"""

from __future__ import annotations

from typing import Iterable

import ibis
import ibis.expr.types as ir

from hyperinflam.screening.screen import (AGE_COLUMN, OUTSIDE_AGES_SUFFIX,  # noqa: F401
                                          outside_validated_ages)

MET = "met"
PHENOTYPE = "phenotype"
SEVERITY = "severity"
#: The groups in the order every surface shows them, with their human titles.
GROUP_TITLES = {PHENOTYPE: "hyperinflammatory phenotype",
                SEVERITY: "organ dysfunction and severity"}


def group_of(module) -> str:
    """A criterion module's group (a module that declares none is a phenotype criterion)."""
    group = getattr(module, "GROUP", PHENOTYPE)
    if group not in GROUP_TITLES:
        raise ValueError(f"criterion '{module.NAME}' declares GROUP = {group!r}: use "
                         f"{' or '.join(map(repr, GROUP_TITLES))}")
    return group


def _modules(criteria=None):
    from hyperinflam.screening import screen  # read at call time (tests choose the criteria)

    return screen.select_criteria(criteria)


def result_columns(columns: Iterable[str], criteria=None, group: str | None = None
                   ) -> dict[str, str]:
    """Criterion NAME -> its ``RESULT`` column, for the criteria (of ``group``, if given) whose
    result column is among ``columns``, in discovery order."""
    present = set(columns)
    out = {}
    for module in _modules(criteria):
        column = getattr(module, "RESULT", None)
        if column and column in present and (group is None or group_of(module) == group):
            out[module.NAME] = column
    return out


def met(t: ir.Table, column: str) -> ir.BooleanValue:
    """True where ``column`` is 'met'; false for every other value and NULL."""
    return (t[column] == MET).fill_null(False)


def status_columns(t: ir.Table, criteria=None) -> dict[str, ir.Value]:
    """Per evaluation row, for each group: ``meets_<group>`` (bool) and ``<group>_met`` (the
    NAMEs of the criteria met, comma-separated, in discovery order)."""
    out: dict[str, ir.Value] = {}
    for group in GROUP_TITLES:
        any_met = ibis.literal(False)
        names = ibis.literal("")
        for name, column in result_columns(t.columns, criteria, group).items():
            hit = met(t, column)
            any_met = any_met | hit
            names = names + hit.ifelse("," + name, "")
        out[f"meets_{group}"] = any_met
        out[f"{group}_met"] = names.substr(1)
    return out


def outside_ages_names(row: dict) -> list[str]:
    """The criteria a row (dict of screen columns) was evaluated outside the validated ages of."""
    return [c.removesuffix(OUTSIDE_AGES_SUFFIX) for c, v in row.items()
            if c.endswith(OUTSIDE_AGES_SUFFIX) and v is True]
