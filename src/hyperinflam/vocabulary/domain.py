"""Domain constants of the dictionary, in one place (every layer imports them from here).

* :data:`INVASIVE_VENTILATION`: the organ-support kind of invasive mechanical ventilation
  (``supports.csv``); vasoactive agents are drugs of class :data:`VASOACTIVE_CLASS`.
* :data:`VASOACTIVE_DOSE_UNIT`, :data:`VASOPRESSIN_DOSE_UNIT`: the canonical dose units of a
  vasoactive infusion (clinical reference §12.24; ``dose_units.csv``).
* :data:`EVENT_TYPES`: the canonical event types; :data:`SEXES`: person.sex values besides
  'unknown'.
"""

from __future__ import annotations

INVASIVE_VENTILATION = "invasive_ventilation"
VASOACTIVE_CLASS = "vasoactive"
#: Canonical dose units accepted for organ support (clinical reference §12.24).
VASOACTIVE_DOSE_UNIT = "ug/kg/min"
VASOPRESSIN_DOSE_UNIT = "U/kg/min"
EVENT_TYPES: tuple[str, ...] = ("infection", "death")
SEXES: tuple[str, ...] = ("female", "male")
