"""Organ support however a source records it: the one place that says what counts.

:func:`support_intervals` is every organ-support interval of the database, from both tables a
reader may have written it to:

* ``organ_support`` rows: invasive ventilation, the other respiratory support kinds of
  ``vocabulary/supports.csv`` (BiPAP / NIV, CPAP, high-flow nasal cannula, conventional
  supplemental oxygen; clinical reference §5.2) and vasoactive infusions, as recorded.
* ``drug_administration`` rows of a vasoactive agent (drug class ``vasoactive``), which is how
  most health-record exports record an infusion (issue 12 item 3; clinical reference §12.24). An
  administration counts as that agent running from its start to its end (an administration
  without an end: at its start only), given intravenously or intraosseously or with no route
  recorded (:data:`VASOACTIVE_ROUTES`; nebulised racemic epinephrine for croup, or an
  intramuscular dose for anaphylaxis, is not vasoactive support). Its dose is a rate in
  ug/kg/min (vasopressin U/kg/min) when the dose unit is a rate (:data:`RATE_TO_PER_KG_MIN`)
  and, for a rate not per kg, a weight is known: the dosing weight recorded with the
  administration, else the latest weight measurement at or before its start, else the
  admission weight of its stay (clinical reference §12.34). Without a rate (a bolus, a dose in
  mg) the agent counts and its dose is unknown (NULL).

Every score counts agents (distinct names) or takes the highest dose, so an infusion recorded
in both tables is never counted twice. Readers that map a vasoactive record straight to
``organ_support`` (FHIR, OMOP) and readers that keep it as a drug (CSV ``drug_administration.csv``,
MEDS) give the same features.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.vocabulary.domain import (VASOACTIVE_CLASS, VASOACTIVE_DOSE_UNIT,
                                           VASOPRESSIN_DOSE_UNIT)

#: Routes (lower case, as loaded) of a vasoactive drug administration that count as vasoactive
#: support; an administration with no route recorded counts too.
VASOACTIVE_ROUTES: tuple[str, ...] = ("iv", "io", "intravenous", "intraosseous", "ivpb",
                                      "iv infusion", "civ", "central", "cvc")
#: Canonical drug dose units (dose_units.csv; ug/kg/h loads as ug/kg/min, U/h as U/min) that are
#: a rate -> (factor to the per-kg-per-minute unit, needs a weight). mg/h -> ug/kg/min:
#: x 1000 / 60 / weight.
RATE_TO_PER_KG_MIN: dict[str, tuple[float, bool]] = {
    VASOACTIVE_DOSE_UNIT: (1.0, False),
    "mg/kg/h": (1000 / 60, False),
    "ug/min": (1.0, True),
    "mg/h": (1000 / 60, True),
    VASOPRESSIN_DOSE_UNIT: (1.0, False),
    "U/kg/h": (1 / 60, False),
    "U/min": (1.0, True),
}
#: A converted rate is snapped to this many decimals (1e-9 ug/kg/min, far below any recorded
#: resolution) so that 2 ug/min for 20 kg is 0.1, on pSOFA's threshold, not 0.1 plus noise.
CONVERTED_DOSE_DECIMALS = 9
#: Where an interval came from (the ``recorded_as`` column).
FROM_ORGAN_SUPPORT, FROM_DRUG_ADMINISTRATION = "organ_support", "drug_administration"


def _canonical_dose_unit(unit: str) -> str:
    return VASOPRESSIN_DOSE_UNIT if unit.startswith("U/") else VASOACTIVE_DOSE_UNIT


def support_intervals(con, vocab) -> ir.Table:
    """Every organ-support interval: person_id, stay_id, support, start_time, end_time (NULL =
    still running), dose (float64, in ``dose_unit``), dose_unit (ug/kg/min, U/kg/min or NULL),
    recorded_as ('organ_support' / 'drug_administration')."""
    org = con.table("organ_support")
    units = ibis.memtable(vocab.dose_units_frame[["unit_key", "canonical_unit", "factor"]])
    units = units.mutate(unit_key=units.unit_key.lower())
    org = org.mutate(o_unit_key=org.dose_unit.strip().lower().replace(" ", "")
                     .replace("\u00b5", "u").replace("\u03bc", "u"))
    org = org.left_join(units, org.o_unit_key == units.unit_key)
    recorded = org.select(
        person_id="person_id", stay_id="stay_id", support="support", start_time="start_time",
        end_time="end_time", dose=org.dose.cast("float64") * org.factor.cast("float64"),
        dose_unit="canonical_unit", recorded_as=ibis.literal(FROM_ORGAN_SUPPORT))
    return ibis.union(recorded, vasoactive_administrations(con, vocab), distinct=False)


def vasoactive_administrations(con, vocab) -> ir.Table:
    """Vasoactive drug administrations as organ-support intervals (the columns of
    :func:`support_intervals`)."""
    d = con.table("drug_administration")
    d = d.filter(d.drug_class == VASOACTIVE_CLASS,
                 d.route.isnull() | d.route.lower().isin(list(VASOACTIVE_ROUTES)))
    d = d.select(a_person="person_id", a_stay="stay_id", a_drug="drug", a_start="start_time",
                 a_end="end_time", a_dose=d.dose.cast("float64"), a_unit="dose_unit",
                 a_weight=d.weight_kg.cast("float64"))
    d = d.mutate(a_key=ibis.row_number().over(order_by=[d.a_person, d.a_drug, d.a_start,
                                                        d.a_unit, d.a_dose]))
    stay = con.table("stay")
    stay = stay.select(s_person="person_id", s_stay="stay_id", s_admit="admit_time",
                       s_discharge="discharge_time", s_weight=stay.weight_kg.cast("float64"))
    j = d.left_join(stay, [d.a_person == stay.s_person, d.a_start >= stay.s_admit,
                           stay.s_discharge.isnull() | (d.a_start <= stay.s_discharge)])
    # the latest weight measurement at or before the start (row_number, no asof_join)
    m = con.table("measurement")
    w = m.filter(m.variable == "weight").select(w_person="person_id", w_time="time",
                                                 w_kg=m.value.cast("float64"))
    wj = d.select("a_key", "a_person", "a_start").join(
        w, [d.a_person == w.w_person, w.w_time <= d.a_start])
    wj = wj.mutate(rk=ibis.row_number().over(group_by=wj.a_key,
                                             order_by=[wj.w_time.desc(), wj.w_kg.desc()]))
    latest = wj.filter(wj.rk == 0).select(l_key="a_key", l_kg="w_kg")
    j = j.left_join(latest, j.a_key == latest.l_key)
    # one row per administration: the stay it belongs to (its own stay_id first)
    j = j.mutate(rk_stay=ibis.row_number().over(
        group_by=j.a_key, order_by=[(j.s_stay == j.a_stay).fill_null(False).desc(),
                                    j.s_admit.desc()]))
    j = j.filter(j.rk_stay == 0)
    weight = ibis.coalesce(j.a_weight, j.l_kg, j.s_weight)
    dose = ibis.null("float64")
    unit = ibis.null("string")
    for rate_unit, (factor, per_weight) in RATE_TO_PER_KG_MIN.items():
        value = j.a_dose * factor if factor != 1.0 else j.a_dose
        if per_weight:
            value = value / weight
        if factor != 1.0 or per_weight:
            value = value.round(CONVERTED_DOSE_DECIMALS)
        is_unit = j.a_unit == rate_unit
        target = _canonical_dose_unit(rate_unit)
        fits = (j.a_drug == "vasopressin") if target == VASOPRESSIN_DOSE_UNIT \
            else (j.a_drug != "vasopressin")
        dose = (is_unit & fits).ifelse(value, dose)
        unit = (is_unit & fits & value.notnull()).ifelse(ibis.literal(target), unit)
    return j.select(
        person_id=j.a_person, stay_id=ibis.coalesce(j.a_stay, j.s_stay), support=j.a_drug,
        start_time=j.a_start, end_time=ibis.coalesce(j.a_end, j.a_start),
        dose=unit.notnull().ifelse(dose, ibis.null("float64")), dose_unit=unit,
        recorded_as=ibis.literal(FROM_DRUG_ADMINISTRATION))
