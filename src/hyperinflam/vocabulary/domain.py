"""Domain constants of the dictionary, in one place (every layer imports them from here).

* :data:`INVASIVE_VENTILATION`: the organ-support kind of invasive mechanical ventilation
  (``supports.csv``); vasoactive agents are drugs of class :data:`VASOACTIVE_CLASS`.
* :data:`VASOACTIVE_DOSE_UNIT`, :data:`VASOPRESSIN_DOSE_UNIT`: the canonical dose units of a
  vasoactive infusion (clinical reference §12.24; ``dose_units.csv``).
* :data:`EVENT_TYPES`: the canonical event types; :data:`SEXES`: person.sex values besides
  'unknown'.
* :data:`ROOM_AIR_FIO2`: the FiO2 of room air, the lowest plausible FiO2 (variables.csv
  ``accept_min`` of fio2, §11.2) and the edge of "FiO2 > 0.21 implies respiratory support" (§5.2).
"""

from __future__ import annotations

INVASIVE_VENTILATION = "invasive_ventilation"
VASOACTIVE_CLASS = "vasoactive"
#: Canonical dose units accepted for organ support (clinical reference §12.24).
VASOACTIVE_DOSE_UNIT = "ug/kg/min"
VASOPRESSIN_DOSE_UNIT = "U/kg/min"
EVENT_TYPES: tuple[str, ...] = ("infection", "death")
SEXES: tuple[str, ...] = ("female", "male")
#: FiO2 of room air (fraction): §5.2 (authors' EHR rule, FiO2 above it = respiratory support), §11.2.
ROOM_AIR_FIO2 = 0.21
