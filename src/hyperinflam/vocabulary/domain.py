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
#: ``infection_test``: a test for infection ordered (clinical reference §5.1; sources/suspected_infection.py).
EVENT_TYPES: tuple[str, ...] = ("infection", "death", "infection_test")
SEXES: tuple[str, ...] = ("female", "male")
#: FiO2 of room air (fraction): §5.2 (authors' EHR rule, FiO2 above it = respiratory support), §11.2.
ROOM_AIR_FIO2 = 0.21

# --- domains a source records or not (docs/data-model.md "Domains a source records") ---------
#: Domain names of the domain record (table ``source_domains``): one per measurement variable
#: (``measurement:<variable>``), one per organ-support kind (``support:<kind>``), vasoactive
#: agents as one domain (as organ support or as drug administrations), and these.
DRUGS_DOMAIN = "drugs"
VASOACTIVE_DOMAIN = "vasoactive"
CONDITIONS_DOMAIN = "conditions"
WEIGHT_DOMAIN = "weight"
MEASUREMENT_DOMAIN_PREFIX = "measurement:"
SUPPORT_DOMAIN_PREFIX = "support:"
#: Groups a site may declare at once (domains.csv, --domains): group -> what it stands for.
DOMAIN_GROUPS = {
    "organ_support": "every organ-support kind and the vasoactive agents",
    "measurements": "every measurement variable (labs and vital signs)",
    "labs": "every laboratory variable",
    "vitals": "every vital-sign and bedside variable",
    "events": "infections, deaths and tests for infection",
}
#: Statuses a site may declare for a domain.
DECLARED_STATUSES = ("complete", "absent")


def support_domain(kind: str) -> str:
    """The domain of one organ-support kind (``support:invasive_ventilation``); every
    vasoactive agent is the one domain :data:`VASOACTIVE_DOMAIN`."""
    return SUPPORT_DOMAIN_PREFIX + kind


def measurement_domain(variable: str) -> str:
    return MEASUREMENT_DOMAIN_PREFIX + variable


def domain_catalogue(vocab) -> list[tuple[str, str, str]]:
    """Every domain a load records, in order: (domain, kind, label). Kinds: measurement, drug,
    support, condition, event, weight."""
    out = [(measurement_domain(v), "measurement", row.label)
           for v, row in vocab.variables.items()]
    out.append((DRUGS_DOMAIN, "drug", "drug administrations"))
    out += [(support_domain(k), "support", str(row.get("label") or k).lower())
            for k, row in vocab.supports.items()]
    out.append((VASOACTIVE_DOMAIN, "support", "vasoactive agents (as organ support or drugs)"))
    out.append((CONDITIONS_DOMAIN, "condition", "diagnoses and clinical findings"))
    out += [(e, "event", {"infection": "infections", "death": "deaths",
                        "infection_test": "tests for infection (cultures)"}.get(e, e))
            for e in EVENT_TYPES]
    out.append((WEIGHT_DOMAIN, "weight", "weight (admission or dosing weight)"))
    return out


def domain_group_members(group: str, vocab) -> list[str]:
    """The domains of a group of :data:`DOMAIN_GROUPS` (empty for a name that is no group)."""
    cat = domain_catalogue(vocab)
    if group == "organ_support":
        return [d for d, kind, _ in cat if kind == "support"]
    if group == "measurements":
        return [d for d, kind, _ in cat if kind == "measurement"]
    if group in ("labs", "vitals"):
        want = "lab" if group == "labs" else "vital"
        return [measurement_domain(v) for v, row in vocab.variables.items() if row.kind == want]
    if group == "events":
        return list(EVENT_TYPES)
    return []
