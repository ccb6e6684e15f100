"""Domain constants of the dictionary, in one place (every layer imports them from here).

* :data:`INVASIVE_VENTILATION`: the organ-support kind of invasive mechanical ventilation
  (``supports.csv``); vasoactive agents are drugs of class :data:`VASOACTIVE_CLASS`.
* :data:`RESPIRATORY_SUPPORTS`: every respiratory organ-support kind of ``supports.csv``;
  :data:`OTHER_RESPIRATORY_SUPPORTS` the ones besides IMV (Phoenix "other respiratory support",
  clinical reference §5.2); :data:`RESPIRATORY_SUPPORT` and :data:`OTHER_RESPIRATORY_SUPPORT`
  name those groups as feature variables (like :data:`VASOACTIVE_CLASS` names the agents).
* :data:`VASOACTIVE_DOSE_UNIT`, :data:`VASOPRESSIN_DOSE_UNIT`: the canonical dose units of a
  vasoactive infusion (clinical reference §12.24; ``dose_units.csv``).
* :data:`EVENT_TYPES`: the canonical event types; :data:`SEXES`: person.sex values besides
  'unknown'.
* :data:`ROOM_AIR_FIO2`: the FiO2 of room air, the lowest plausible FiO2 (variables.csv
  ``accept_min`` of fio2, §11.2) and the edge of "FiO2 > 0.21 implies respiratory support" (§5.2).
"""

from __future__ import annotations

INVASIVE_VENTILATION = "invasive_ventilation"
NONINVASIVE_VENTILATION = "noninvasive_ventilation"
CPAP = "cpap"
HIGH_FLOW_NASAL_CANNULA = "high_flow_nasal_cannula"
SUPPLEMENTAL_OXYGEN = "supplemental_oxygen"
#: Respiratory support other than IMV: BiPAP / NIV, CPAP, high-flow nasal cannula, conventional
#: supplemental oxygen (clinical reference §5.2 "any support incl. supplemental oxygen").
OTHER_RESPIRATORY_SUPPORTS: tuple[str, ...] = (NONINVASIVE_VENTILATION, CPAP,
                                               HIGH_FLOW_NASAL_CANNULA, SUPPLEMENTAL_OXYGEN)
RESPIRATORY_SUPPORTS: tuple[str, ...] = (INVASIVE_VENTILATION, *OTHER_RESPIRATORY_SUPPORTS)
#: Feature variables of the organ_support source naming a group of kinds (any / count of them).
RESPIRATORY_SUPPORT = "respiratory_support"
OTHER_RESPIRATORY_SUPPORT = "other_respiratory_support"
SUPPORT_GROUPS: dict[str, tuple[str, ...]] = {RESPIRATORY_SUPPORT: RESPIRATORY_SUPPORTS,
                                              OTHER_RESPIRATORY_SUPPORT: OTHER_RESPIRATORY_SUPPORTS}
VASOACTIVE_CLASS = "vasoactive"
#: Canonical dose units accepted for organ support (clinical reference §12.24).
VASOACTIVE_DOSE_UNIT = "ug/kg/min"
VASOPRESSIN_DOSE_UNIT = "U/kg/min"
EVENT_TYPES: tuple[str, ...] = ("infection", "death")
SEXES: tuple[str, ...] = ("female", "male")
#: FiO2 of room air (fraction): §5.2 (authors' EHR rule, FiO2 above it = respiratory support), §11.2.
ROOM_AIR_FIO2 = 0.21
