"""IPSCC 2005: SIRS, infection, sepsis, severe sepsis, septic shock, organ dysfunctions and MODS.

Clinical reference §8.1-§8.5 and §12.9, §12.11, §12.15, §12.28, §12.31, §12.37; Goldstein B,
Giroir B, Randolph A; International Consensus Conference on Pediatric Sepsis. *International
pediatric sepsis consensus conference: definitions for sepsis and organ dysfunction in pediatrics.*
Pediatr Crit Care Med 2005;6(1):2-8, doi:10.1097/01.PCC.0000149131.72248.E6.

Every result is tri-state (§8.4 "Missing values: IPSCC gives no rule"; §0; §12.9): an input
that was not measured makes its criterion 'unknown', never 'not_met'. Conditions are nullable
booleans combined with SQL three-valued (Kleene) logic (``criteria._toolkit``), so "A or B" is met
as soon as one part is met and not met only when every part is known and not met.

* **SIRS** (§8.2): >= 2 of temperature, heart rate, respiratory rate, leukocytes, one of which must
  be temperature or leukocytes; count-based, so 'met' / 'not_met' / 'indeterminate'. Age-specific
  thresholds of Goldstein Table 3 (:data:`SIRS_TABLE`), age groups contiguous in completed age
  (§12.37: ``[0 d, 7 d)``, ``[7 d, 1 mo)``, ``[1 mo, 1 y)``, ``[1 y, 6 y)``, ``[6 y, 13 y)``,
  ``[13 y, 18 y)``; months = days / 30.4375, §11.1). Temperature > 38.5 or < 36.0 °C (§12.15);
  bradycardia counts only below 1 year. The worst value in the :data:`LOOKBACK_HOURS` before the
  evaluation time stands in for the "mean" rate of §8.2. Immature neutrophils (bands > 10 %) are not
  a vocabulary variable: the leukocyte criterion is decided on the count, as the counter-example of
  §8.5 does. Outside 0-< 18 years (and for preterm infants, §8.2) the age-specific criteria are
  'unknown'.
* **Infection** (§8.3): suspected or proven infection; the event feature is TRUE or NULL (a
  missing record is not "no infection"), so ``ipscc_infection`` is 'met' or 'unknown'.
* **Sepsis** = SIRS and infection; **severe sepsis** = sepsis and (cardiovascular dysfunction or
  ARDS or >= 2 other organ dysfunctions); **septic shock** = sepsis and cardiovascular dysfunction.
* **Organ dysfunctions** (§8.4): cardiovascular, respiratory, neurologic, haematologic, renal,
  hepatic; **MODS** = >= 2 of them (§12.31; IPSCC itself defines severe sepsis, the ">= 2
  organs" rule is the pediatric MODS convention), count-based.

Components the canonical tables cannot carry (the fluid bolus before the cardiovascular criterion,
base deficit, urine output, capillary refill, core-peripheral temperature gap, non-invasive
ventilation where none is recorded (a recorded BiPAP / NIV or CPAP interval meets the respiratory
criterion; "non-elective" is not told apart), chest-radiograph infiltrates for ARDS, chronic haematology/oncology status) follow
:data:`UNMODELLED_COMPONENTS`: 'unknown' by default (never "not met" by absence), 'absent' for the
conventional EHR reading. The fluid bolus ("despite >= 40 mL/kg") and the exclusions "without
cyanotic heart disease or pre-existing lung disease" and "not secondary to chemotherapy" are not
evaluated, as in the worked example of §8.5. Neurologic "GCS decrease >= 3 from an abnormal
baseline" needs no separate rule: an abnormal baseline is <= 14, so the drop reaches GCS <= 11.

Named settings are module constants. :data:`LOOKBACK_HOURS` and :data:`PLATELET_PEAK_HOURS` name the
input columns and are fixed at import; the others are read at each :func:`evaluate`:
:data:`HYPOTENSION_TABLE` (§12.28, UpToDate values by default), :data:`UNMODELLED_COMPONENTS`,
:data:`CREATININE_ULN_MG_DL`, :data:`ALT_ULN_U_L`, :data:`LACTATE_ULN_MMOL_L` (default upper limits
of normal, VERIFY against the site laboratory: ``ipscc_default_uln_used`` says when they were used).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.criteria._toolkit import (
    INDETERMINATE, UNKNOWN, at_least, count_true, missing_list, tristate)
from hyperinflam.features import FeatureSpec
from hyperinflam.vocabulary.domain import CPAP
from hyperinflam.vocabulary.domain import NONINVASIVE_VENTILATION as NONINVASIVE_VENTILATION_KIND

NAME = "ipscc"
TITLE = "IPSCC 2005 SIRS, sepsis and organ dysfunction (Goldstein 2005)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "IPSCC MODS"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "ipscc_mods"
#: Criterion group (screening.meets): organ dysfunction and severity.
GROUP = "severity"
#: Ages (months, [low, high)) the authors validated the score in; outside them the screen flags
#: the evaluation (``ipscc_outside_validated_ages``). §8.2: the age-specific table of Goldstein
#: 2005 runs from birth (0 days - 1 week) to 13 - < 18 years; no threshold is given for adults.
VALIDATED_AGE_MONTHS = (0, 216)
REFERENCE = (
    "clinical reference §8.1-§8.5, §12.9, §12.11, §12.15, §12.28, §12.31, §12.37; Goldstein B, "
    "Giroir B, Randolph A. Pediatr Crit Care Med 2005;6(1):2-8, "
    "doi:10.1097/01.PCC.0000149131.72248.E6"
)

#: Worst value in this many hours before the evaluation time (project choice: IPSCC gives no
#: window; §12.10). VERIFY.
LOOKBACK_HOURS: float = 24.0

#: Age groups of Goldstein Table 3 as (name, upper edge, unit of the edge), contiguous and
#: half-open (§8.2, §12.37): the first edge in completed days, the others in months.
AGE_GROUPS: tuple[tuple[str, float, str], ...] = (
    ("0d-1wk", 7, "days"), ("1wk-1mo", 1, "months"), ("1mo-1y", 12, "months"),
    ("1y-5y", 72, "months"), ("6y-12y", 156, "months"), ("13y-17y", 216, "months"),
)

#: Goldstein 2005 Table 3 (§8.2): tachycardia HR >, bradycardia HR < (below 1 year only),
#: respiratory rate >, leukocytes (10^3/uL) > and < (no lower limit in the first week).
SIRS_TABLE: dict[str, dict[str, float | None]] = {
    "0d-1wk": {"hr_above": 180, "hr_below": 100, "rr_above": 50, "wbc_above": 34, "wbc_below": None},
    "1wk-1mo": {"hr_above": 180, "hr_below": 100, "rr_above": 40, "wbc_above": 19.5, "wbc_below": 5},
    "1mo-1y": {"hr_above": 180, "hr_below": 90, "rr_above": 34, "wbc_above": 17.5, "wbc_below": 5},
    "1y-5y": {"hr_above": 140, "hr_below": None, "rr_above": 22, "wbc_above": 15.5, "wbc_below": 6},
    "6y-12y": {"hr_above": 130, "hr_below": None, "rr_above": 18, "wbc_above": 13.5,
               "wbc_below": 4.5},
    "13y-17y": {"hr_above": 110, "hr_below": None, "rr_above": 14, "wbc_above": 11,
                "wbc_below": 4.5},
}
#: Core temperature (Cel): SIRS if > above or < below (§8.2, §12.15).
TEMPERATURE_ABOVE: float = 38.5
TEMPERATURE_BELOW: float = 36.0

#: Hypotension: SBP (mmHg) below these values (§8.2 note, §12.28). Sources disagree: VERIFY.
HYPOTENSION_TABLES: dict[str, dict[str, float]] = {
    "uptodate": {"0d-1wk": 59, "1wk-1mo": 79, "1mo-1y": 75, "1y-5y": 74, "6y-12y": 83,
                 "13y-17y": 90},
    "goldstein_2005": {"0d-1wk": 65, "1wk-1mo": 75, "1mo-1y": 100, "1y-5y": 94, "6y-12y": 105,
                       "13y-17y": 117},
}
#: Which hypotension table is used (§12.28 default: the UpToDate reproduction).
HYPOTENSION_TABLE: str = "uptodate"

#: Dopamine counts above this dose (ug/kg/min); dobutamine, epinephrine, norepinephrine at any
#: dose (§8.4, §12.24).
DOPAMINE_ABOVE_UG_KG_MIN: float = 5.0
#: Lactate upper limit of normal (mmol/L); dysfunction sign if > 2 x ULN (§8.4). Project default:
#: VERIFY against the site laboratory.
LACTATE_ULN_MMOL_L: float = 2.0
#: Respiratory (§8.4): PaO2/FiO2 < 300, PaCO2 > 65 mmHg, FiO2 > 0.50 (charted FiO2 above 0.50 is
#: read as the "proven need"; a failed weaning trial is not recorded); PaCO2 >= 20 mmHg above the
#: lowest PaCO2 of the stay (baseline: project choice, VERIFY).
PF_RATIO_BELOW: float = 300.0
PACO2_ABOVE: float = 65.0
PACO2_RISE_AT_LEAST: float = 20.0
FIO2_ABOVE: float = 0.50
#: ARDS requires PaO2/FiO2 <= 200 (plus infiltrates and no left heart failure, unmodelled).
ARDS_PF_RATIO_AT_MOST: float = 200.0
#: "At least 2 of" rules: SIRS criteria (§8.2), signs of decreased perfusion (§8.4), organ
#: dysfunctions for MODS (§12.31) and other organs for severe sepsis (§8.3).
SIRS_CRITERIA_REQUIRED = 2
PERFUSION_SIGNS_REQUIRED = 2
MODS_ORGANS_REQUIRED = 2
SEVERE_SEPSIS_OTHER_ORGANS_REQUIRED = 2
#: Perfusion signs the canonical tables cannot carry (§8.4): base deficit > 5 mEq/L, urine output
#: < 0.5 mL/kg/h, capillary refill > 5 s, core-peripheral temperature gap > 3 Cel.
UNMODELLED_PERFUSION_SIGNS = ("base_deficit", "oliguria", "capillary_refill", "temperature_gap")
#: Lactate, creatinine and ALT count above this multiple of the upper limit of normal, and
#: creatinine at this multiple of its baseline (§8.4).
ULN_MULTIPLE = 2
BASELINE_MULTIPLE = 2
#: Neurologic: GCS <= 11.
GCS_AT_MOST: float = 11.0
#: Haematologic: platelets < 80 x 10^3/uL, INR > 2, or (chronic haematology/oncology) a decline of
#: >= 50 % from the highest count of the past 72 h.
PLATELETS_BELOW: float = 80.0
INR_ABOVE: float = 2.0
PLATELET_DECLINE_FRACTION: float = 0.5
PLATELET_PEAK_HOURS: float = 72.0
#: Renal: creatinine >= 2 x ULN for age, or >= 2 x baseline (lowest creatinine of the stay up to
#: the evaluation time; project choice, VERIFY).
#: Default creatinine ULN (mg/dL) by IPSCC age group: upper ends of the Harriet Lane Handbook
#: ranges (newborn 0.3-1.0, infant 0.2-0.4, child 0.3-0.7, adolescent 0.5-1.0). VERIFY.
CREATININE_ULN_MG_DL: dict[str, float] = {
    "0d-1wk": 1.0, "1wk-1mo": 1.0, "1mo-1y": 0.4, "1y-5y": 0.7, "6y-12y": 0.7, "13y-17y": 1.0}
#: Hepatic: total bilirubin >= 4 mg/dL (not for newborns: the two groups below 1 month) or
#: ALT > 2 x ULN. Default ALT ULN (U/L) for every age group. VERIFY.
BILIRUBIN_AT_LEAST_MG_DL: float = 4.0
BILIRUBIN_NOT_FOR: tuple[str, ...] = ("0d-1wk", "1wk-1mo")
ALT_ULN_U_L: dict[str, float] = {g: 40.0 for g, _, _ in AGE_GROUPS}
#: True while the ULN tables above are the shipped defaults (a site replaces them with its own).
DEFAULT_ULN_TABLES: bool = True

#: 'unknown' (default): components the canonical tables cannot carry are unknown, so a criterion
#: depending on them is never 'not_met' by their absence; 'absent': they count as not present.
UNMODELLED_COMPONENTS: str = UNKNOWN


def _spec(variable: str, agg: str, source: str = "measurement") -> FeatureSpec:
    return FeatureSpec(variable, agg, LOOKBACK_HOURS, source)


TEMPERATURE_MAX = _spec("temperature", "max")
TEMPERATURE_MIN = _spec("temperature", "min")
HEART_RATE_MAX = _spec("heart_rate", "max")
HEART_RATE_MIN = _spec("heart_rate", "min")
RESP_RATE_MAX = _spec("resp_rate", "max")
WBC_MAX = _spec("wbc", "max")
WBC_MIN = _spec("wbc", "min")
INVASIVE_VENTILATION = _spec("invasive_ventilation", "any", "organ_support")
#: Non-invasive mechanical ventilation (§8.4): BiPAP / NIV or CPAP intervals.
NONINVASIVE_VENTILATION = _spec(NONINVASIVE_VENTILATION_KIND, "any", "organ_support")
CPAP_ANY = _spec(CPAP, "any", "organ_support")
INFECTION = FeatureSpec("infection", "any", None, "event")
SBP_MIN = _spec("sbp", "min")
DOPAMINE_ANY = _spec("dopamine", "any", "organ_support")
DOPAMINE_MAX = _spec("dopamine", "max", "organ_support")
DOBUTAMINE_ANY = _spec("dobutamine", "any", "organ_support")
EPINEPHRINE_ANY = _spec("epinephrine", "any", "organ_support")
NOREPINEPHRINE_ANY = _spec("norepinephrine", "any", "organ_support")
LACTATE_MAX = _spec("lactate", "max")
PF_RATIO_MIN = _spec("pf_ratio", "min")
PACO2_MAX = _spec("paco2", "max")
PACO2_MIN_STAY = FeatureSpec("paco2", "min", None, "measurement")
FIO2_MAX = _spec("fio2", "max")
GCS_MIN = _spec("gcs_total", "min")
PLATELETS_MIN = _spec("platelets", "min")
PLATELETS_MAX_PEAK = FeatureSpec("platelets", "max", PLATELET_PEAK_HOURS, "measurement")
INR_MAX = _spec("inr", "max")
CREATININE_MAX = _spec("creatinine", "max")
CREATININE_MIN_STAY = FeatureSpec("creatinine", "min", None, "measurement")
BILIRUBIN_MAX = _spec("bilirubin_total", "max")
ALT_MAX = _spec("alt", "max")

INPUTS: list[FeatureSpec] = [
    TEMPERATURE_MAX, TEMPERATURE_MIN, HEART_RATE_MAX, HEART_RATE_MIN, RESP_RATE_MAX, WBC_MAX,
    WBC_MIN, INVASIVE_VENTILATION, NONINVASIVE_VENTILATION, CPAP_ANY, INFECTION, SBP_MIN, DOPAMINE_ANY, DOPAMINE_MAX, DOBUTAMINE_ANY,
    EPINEPHRINE_ANY, NOREPINEPHRINE_ANY, LACTATE_MAX, PF_RATIO_MIN, PACO2_MAX, PACO2_MIN_STAY,
    FIO2_MAX, GCS_MIN, PLATELETS_MIN, PLATELETS_MAX_PEAK, INR_MAX, CREATININE_MAX,
    CREATININE_MIN_STAY, BILIRUBIN_MAX, ALT_MAX,
]

ORGANS: tuple[str, ...] = (
    "cardiovascular", "respiratory", "neurologic", "hematologic", "renal", "hepatic")

_NULL_BOOL = ibis.null("boolean")


def age_group(t: ir.Table) -> ir.StringValue:
    """IPSCC age group (§8.2, §12.37); NULL from 18 years on or when age is unknown."""
    return _by_age(t, {name: name for name, _, _ in AGE_GROUPS}, "string")


def _by_age(t: ir.Table, values: dict[str, object], dtype: str = "float64",
            otherwise: object = None) -> ir.Value:
    """Per-age-group value straight from the age columns (no nested group lookups, so the
    compiled query stays small); NULL for a group without a value, ``otherwise`` outside."""
    branches = []
    for name, edge, unit in AGE_GROUPS:
        age = t.age_days if unit == "days" else t.age_months  # days: < 7 == completed days < 7
        value = values.get(name)
        branches.append((age < edge, ibis.literal(value, type=dtype) if value is not None
                         else ibis.null(dtype)))
    else_ = ibis.null(dtype) if otherwise is None else ibis.literal(otherwise, type=dtype)
    return ibis.cases(*branches, else_=else_)


def _has_value(t: ir.Table, values: dict[str, float | None]) -> ir.BooleanValue:
    """TRUE for the groups that have a threshold, FALSE for those that have none, NULL outside."""
    return _by_age(t, {g: v is not None for g, v in values.items()}, "boolean")


def _unmodelled() -> ir.BooleanValue:
    """A component the canonical tables cannot carry (:data:`UNMODELLED_COMPONENTS`)."""
    if UNMODELLED_COMPONENTS == UNKNOWN:
        return _NULL_BOOL
    if UNMODELLED_COMPONENTS == "absent":
        return ibis.literal(False)
    raise ValueError(
        f"hyperinflam.criteria.ipscc.UNMODELLED_COMPONENTS = {UNMODELLED_COMPONENTS!r}: use "
        "'unknown' (default) or 'absent'.")


def conditions(t: ir.Table) -> dict[str, ir.BooleanValue]:
    """Every IPSCC criterion as a nullable boolean (TRUE met, FALSE not met, NULL unknown)."""
    if HYPOTENSION_TABLE not in HYPOTENSION_TABLES:
        raise ValueError(
            f"hyperinflam.criteria.ipscc.HYPOTENSION_TABLE = {HYPOTENSION_TABLE!r}: use one of "
            f"{', '.join(sorted(HYPOTENSION_TABLES))}.")
    row = {key: {g: r[key] for g, r in SIRS_TABLE.items()} for key in next(iter(
        SIRS_TABLE.values()))}
    c: dict[str, ir.BooleanValue] = {}

    # SIRS (§8.2)
    c["sirs_temperature"] = ((t[TEMPERATURE_MAX.column] > TEMPERATURE_ABOVE)
                             | (t[TEMPERATURE_MIN.column] < TEMPERATURE_BELOW))
    tachycardia = t[HEART_RATE_MAX.column] > _by_age(t, row["hr_above"])
    bradycardia = _has_value(t, row["hr_below"]) & (
        t[HEART_RATE_MIN.column] < _by_age(t, row["hr_below"]))
    c["sirs_heart_rate"] = tachycardia | bradycardia
    c["sirs_resp_rate"] = ((t[RESP_RATE_MAX.column] > _by_age(t, row["rr_above"]))
                           | t[INVASIVE_VENTILATION.column])
    leukocytosis = t[WBC_MAX.column] > _by_age(t, row["wbc_above"])
    leukopenia = _has_value(t, row["wbc_below"]) & (
        t[WBC_MIN.column] < _by_age(t, row["wbc_below"]))
    c["sirs_leukocytes"] = leukocytosis | leukopenia
    sirs_parts = [c["sirs_temperature"], c["sirs_heart_rate"], c["sirs_resp_rate"],
                  c["sirs_leukocytes"]]
    c["sirs"] = (at_least(sirs_parts, SIRS_CRITERIA_REQUIRED)
                 & (c["sirs_temperature"] | c["sirs_leukocytes"]))

    # Infection and sepsis (§8.3)
    c["infection"] = t[INFECTION.column]
    c["sepsis"] = c["sirs"] & c["infection"]

    # Organ dysfunctions (§8.4)
    hypotension = t[SBP_MIN.column] < _by_age(t, HYPOTENSION_TABLES[HYPOTENSION_TABLE])
    dopamine = t[DOPAMINE_ANY.column] & (t[DOPAMINE_MAX.column] > DOPAMINE_ABOVE_UG_KG_MIN)
    vasoactive = (dopamine | t[DOBUTAMINE_ANY.column] | t[EPINEPHRINE_ANY.column]
                  | t[NOREPINEPHRINE_ANY.column])
    lactate = t[LACTATE_MAX.column] > ULN_MULTIPLE * LACTATE_ULN_MMOL_L
    perfusion = at_least([lactate] + [_unmodelled() for _ in UNMODELLED_PERFUSION_SIGNS],
                         PERFUSION_SIGNS_REQUIRED)
    c["cardiovascular"] = hypotension | vasoactive | perfusion

    paco2 = t[PACO2_MAX.column]
    c["respiratory"] = (
        (t[PF_RATIO_MIN.column] < PF_RATIO_BELOW)
        | (paco2 > PACO2_ABOVE)
        | (paco2 - t[PACO2_MIN_STAY.column] >= PACO2_RISE_AT_LEAST)
        | (t[FIO2_MAX.column] > FIO2_ABOVE)
        | t[INVASIVE_VENTILATION.column]
        # non-invasive ventilation: TRUE when recorded, else as the unmodelled components
        | (t[NONINVASIVE_VENTILATION.column] | t[CPAP_ANY.column] | _unmodelled())
    )
    c["ards"] = (t[PF_RATIO_MIN.column] <= ARDS_PF_RATIO_AT_MOST) & _unmodelled()  # infiltrates

    c["neurologic"] = t[GCS_MIN.column] <= GCS_AT_MOST

    platelets = t[PLATELETS_MIN.column]
    decline = platelets <= (1 - PLATELET_DECLINE_FRACTION) * t[PLATELETS_MAX_PEAK.column]
    c["hematologic"] = ((platelets < PLATELETS_BELOW) | (t[INR_MAX.column] > INR_ABOVE)
                        | (decline & _unmodelled()))  # chronic haematology/oncology status

    creatinine = t[CREATININE_MAX.column]
    c["renal"] = ((creatinine >= ULN_MULTIPLE * _by_age(t, CREATININE_ULN_MG_DL))
                  | (creatinine >= BASELINE_MULTIPLE * t[CREATININE_MIN_STAY.column]))

    bilirubin_applies = _by_age(t, {g: g not in BILIRUBIN_NOT_FOR for g, _, _ in AGE_GROUPS},
                                "boolean", otherwise=True)
    c["hepatic"] = ((bilirubin_applies & (t[BILIRUBIN_MAX.column] >= BILIRUBIN_AT_LEAST_MG_DL))
                    | (t[ALT_MAX.column] > ULN_MULTIPLE * _by_age(t, ALT_ULN_U_L)))

    organs = [c[o] for o in ORGANS]
    c["mods"] = at_least(organs, MODS_ORGANS_REQUIRED)
    others = [c[o] for o in ORGANS if o != "cardiovascular"]
    c["severe_sepsis"] = c["sepsis"] & (c["cardiovascular"] | c["ards"] | at_least(others, SEVERE_SEPSIS_OTHER_ORGANS_REQUIRED))
    c["septic_shock"] = c["sepsis"] & c["cardiovascular"]
    return c


#: Count-based rules report 'indeterminate' instead of 'unknown' (§1.4, criterion contract).
COUNT_BASED: tuple[str, ...] = ("sirs", "mods")


def evaluate(t: ir.Table) -> dict[str, ibis.Value]:
    """IPSCC 2005 results as text tri-states plus counts, age group and missing inputs (§8)."""
    c = conditions(t)
    out: dict[str, ibis.Value] = {f"{NAME}_age_group": age_group(t)}
    for name, condition in c.items():
        out[f"{NAME}_{name}"] = tristate(condition, INDETERMINATE if name in COUNT_BASED
                                         else UNKNOWN)
    out[f"{NAME}_sirs_n_met"] = count_true([c["sirs_temperature"], c["sirs_heart_rate"],
                                            c["sirs_resp_rate"], c["sirs_leukocytes"]])
    out[f"{NAME}_n_organ_dysfunctions"] = count_true([c[o] for o in ORGANS])
    out[f"{NAME}_hypotension_table"] = ibis.literal(HYPOTENSION_TABLE)
    out[f"{NAME}_default_uln_used"] = ibis.literal(DEFAULT_ULN_TABLES)
    missing: dict[str, ibis.Value] = {}
    for spec in INPUTS:
        missing.setdefault(spec.variable, t[spec.column])
    out[f"{NAME}_missing"] = missing_list(missing)
    return out
