"""pSOFA, the pediatric Sequential Organ Failure Assessment.

Clinical reference §6.1-§6.4 and §12.9, §12.10, §12.13, §12.14, §12.22, §12.24, §12.36; Matics TJ,
Sanchez-Pinto LN, JAMA Pediatr 2017;171(10):e172352 (tables [S], cross-checked with the open-source
implementation ljwoodley/psofa; primary table not re-read: VERIFY before publication).

Six systems, 0-4 points each, from the worst value in the last :data:`LOOKBACK_HOURS` hours
(§6.1 "worst value in each 24-h period"). Bands are half-open on the upper side (§12.13):

* respiratory: P/F preferred, S/F when no P/F in the window (S/F only where SpO2 <= 97 %, §12.22,
  applied in hyperinflam.features.derived). P/F ``>= 400`` 0, ``[300,400)`` 1, ``[200,300)`` 2,
  ``[100,200)`` with support 3, ``< 100`` with support 4; S/F ``>= 292`` 0, ``[264,292)`` 1
  (264 -> 1, §12.36), ``[221,264)`` 2, ``[148,221)`` + support 3, ``< 148`` + support 4.
  Without support, ratios below 200 (P/F) / 221 (S/F) score 2 (adult SOFA convention; VERIFY).
  Support: IMV, BiPAP / NIV or CPAP in the window (:data:`SUPPORT_KINDS`; mechanical ventilation,
  invasive or not, VERIFY); :data:`SUPPORT_INCLUDES_SUPPLEMENTAL_OXYGEN` adds high flow, oxygen
  and FiO2 > 0.21.
* coagulation: platelets (10^3/uL) ``>= 150`` 0, ``[100,150)`` 1, ``[50,100)`` 2, ``[20,50)`` 3,
  ``< 20`` 4.
* hepatic: bilirubin (mg/dL) ``< 1.2`` 0, ``[1.2,2)`` 1, ``[2,6)`` 2, ``[6,12)`` 3, ``>= 12`` 4.
* cardiovascular, highest applicable row (doses in ug/kg/min, §12.24): 4 dopamine ``> 15`` or
  epinephrine ``> 0.1`` or norepinephrine ``> 0.1``; 3 dopamine ``> 5`` or any epinephrine or
  norepinephrine; 2 any dopamine or dobutamine; 1 MAP below the age threshold; else 0. Milrinone
  and vasopressin do not score. An agent given with no recorded dose scores its lowest row (epi /
  norepi 3, dopamine 2) and its dose is named in ``psofa_missing``.
* neurologic: GCS 15 -> 0, ``[13,15)`` 1, ``[10,13)`` 2, ``[6,10)`` 3, ``< 6`` 4.
* renal: creatinine (mg/dL) by age band in exact months (days / 30.4375), half-open on the lower
  edge of the next band (§6.2; the < 1-month row is *not* copied from ljwoodley/psofa).

Missing components score 0 (§6.3, adult SOFA practice; VERIFY). ``psofa_missing`` names the missing
inputs; ``psofa_n_assumed_normal`` counts the **systems** scored 0 for want of data (respiratory: no
P/F and no S/F; cardiovascular: no vasoactive scored and no MAP or no age; renal: no creatinine or
no age; coagulation, hepatic, neurologic: their one input missing).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.criteria._toolkit import ROOM_AIR_FIO2, in_age_band, missing_flags
from hyperinflam.features import FeatureSpec
from hyperinflam.vocabulary.domain import (CPAP, INVASIVE_VENTILATION, NONINVASIVE_VENTILATION,
                                           OTHER_RESPIRATORY_SUPPORT)

NAME = "psofa"
TITLE = "pSOFA (Matics & Sanchez-Pinto 2017)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "pSOFA"
#: Criterion group (screening.meets): organ dysfunction and severity.
GROUP = "severity"
#: Ages (months, [low, high)) the authors validated the score in; outside them the screen flags
#: the evaluation (``psofa_outside_validated_ages``). §6.1: derived and validated in PICU
#: encounters of children (Matics 2017); its age-adjusted MAP and creatinine bands of §6.2 end at
#: 216 months, the reference names no upper age (named setting, Open: confirm against Matics 2017).
VALIDATED_AGE_MONTHS = (0, 216)
REFERENCE = (
    "clinical reference §6; Matics TJ, Sanchez-Pinto LN. JAMA Pediatr 2017;171(10):e172352"
)

#: Worst value over this many hours before the evaluation time (§6.1).
LOOKBACK_HOURS: float = 24
#: "Respiratory support" required for 3-4 respiratory points (§6.2): mechanical ventilation,
#: invasive or not (adult SOFA "with respiratory support"; VERIFY for pSOFA): these organ-support
#: kinds of vocabulary/supports.csv.
SUPPORT_KINDS: tuple[str, ...] = (INVASIVE_VENTILATION, NONINVASIVE_VENTILATION, CPAP)
#: Set True to also count high-flow nasal cannula, conventional supplemental oxygen and a charted
#: FiO2 > 0.21 (Phoenix's "any respiratory support", §5.2) as support.
SUPPORT_INCLUDES_SUPPLEMENTAL_OXYGEN: bool = False


def _m(variable: str, agg: str) -> FeatureSpec:
    return FeatureSpec(variable, agg, LOOKBACK_HOURS, "measurement")


def _os(variable: str, agg: str) -> FeatureSpec:
    return FeatureSpec(variable, agg, LOOKBACK_HOURS, "organ_support")


PF_RATIO = _m("pf_ratio", "min")
SF_RATIO = _m("sf_ratio", "min")
FIO2 = _m("fio2", "max")
IMV = _os(INVASIVE_VENTILATION, "any")
NIV = _os(NONINVASIVE_VENTILATION, "any")
CPAP_ANY = _os(CPAP, "any")
#: Any documented respiratory support besides IMV (for SUPPORT_INCLUDES_SUPPLEMENTAL_OXYGEN).
OTHER_SUPPORT = _os(OTHER_RESPIRATORY_SUPPORT, "any")
#: The kind -> spec of each organ-support kind SUPPORT_KINDS may name.
SUPPORT_SPECS = {INVASIVE_VENTILATION: IMV, NONINVASIVE_VENTILATION: NIV, CPAP: CPAP_ANY}
PLATELETS = _m("platelets", "min")
BILIRUBIN = _m("bilirubin_total", "max")
MAP = _m("map_any", "min")
GCS = _m("gcs_total", "min")
CREATININE = _m("creatinine", "max")
DOPAMINE_ANY = _os("dopamine", "any")
DOPAMINE_DOSE = _os("dopamine", "max")
DOBUTAMINE_ANY = _os("dobutamine", "any")
EPINEPHRINE_ANY = _os("epinephrine", "any")
EPINEPHRINE_DOSE = _os("epinephrine", "max")
NOREPINEPHRINE_ANY = _os("norepinephrine", "any")
NOREPINEPHRINE_DOSE = _os("norepinephrine", "max")

INPUTS: list[FeatureSpec] = [
    PF_RATIO, SF_RATIO, FIO2, IMV, NIV, CPAP_ANY, OTHER_SUPPORT, PLATELETS, BILIRUBIN, MAP, GCS, CREATININE,
    DOPAMINE_ANY, DOPAMINE_DOSE, DOBUTAMINE_ANY, EPINEPHRINE_ANY, EPINEPHRINE_DOSE,
    NOREPINEPHRINE_ANY, NOREPINEPHRINE_DOSE,
]

#: Age bands in months (lo, hi, hi inclusive), §6.2 "Age-banded thresholds".
AGE_BANDS_MONTHS = [(0, 1, False), (1, 12, False), (12, 24, False), (24, 60, False),
                    (60, 144, False), (144, 216, True), (216, None, False)]
#: MAP (mmHg) below which 1 point is scored, per age band (§6.2).
MAP_THRESHOLDS = [46, 55, 60, 62, 65, 67, 70]
#: Creatinine (mg/dL) lower edges of the 1, 2, 3 and 4-point bands, per age band (§6.2).
CREATININE_EDGES = [
    (0.8, 1.0, 1.2, 1.6),
    (0.3, 0.5, 0.8, 1.2),
    (0.4, 0.6, 1.1, 1.5),
    (0.6, 0.9, 1.6, 2.3),
    (0.7, 1.1, 1.8, 2.6),
    (1.0, 1.7, 2.9, 4.2),
    (1.2, 2.0, 3.5, 5.0),
]
#: Respiratory lower edges of the 0, 1, 2 and 3-point bands (§6.2; below the last: 4 points):
#: P/F 400 / 300 / 200 / 100, S/F 292 / 264 / 221 / 148 (264 -> 1 point, §12.36).
PF_EDGES = (400, 300, 200, 100)
SF_EDGES = (292, 264, 221, 148)
#: Coagulation, platelets (10^3/uL): below 150 / 100 / 50 / 20 -> 1 / 2 / 3 / 4 points.
PLATELETS_EDGES = (150, 100, 50, 20)
#: Hepatic, bilirubin (mg/dL): at least 1.2 / 2 / 6 / 12 -> 1 / 2 / 3 / 4 points.
BILIRUBIN_EDGES = (1.2, 2.0, 6.0, 12.0)
#: Neurologic, GCS: below 15 / 13 / 10 / 6 -> 1 / 2 / 3 / 4 points.
GCS_EDGES = (15, 13, 10, 6)
#: Cardiovascular doses (ug/kg/min, §12.24): 4 points for dopamine > 15 or epinephrine /
#: norepinephrine > 0.1; 3 points for dopamine > 5 or any epinephrine / norepinephrine.
DOPAMINE_FOUR_ABOVE, EPINEPHRINE_FOUR_ABOVE, NOREPINEPHRINE_FOUR_ABOVE = 15, 0.1, 0.1
DOPAMINE_THREE_ABOVE = 5
#: Cardiovascular points from which a vasoactive row applied (rows 2-4; 1 is the MAP row).
VASOACTIVE_ROW_POINTS_FROM = 2


def _ladder(value: ir.NumericValue, edges: tuple, *, higher_is_worse: bool) -> ir.IntegerValue:
    """Points 0-4 from four band edges (half-open bands); NULL value -> 0 (assumed normal)."""
    branches = []
    if higher_is_worse:  # edges ascending: value >= edge[k] -> k+1 points
        for points, edge in sorted(zip(range(1, 5), edges), reverse=True):
            branches.append((value >= edge, points))
    else:  # edges descending: value < edge[k] -> k+1 points
        for points, edge in sorted(zip(range(1, 5), edges), reverse=True):
            branches.append((value < edge, points))
    return ibis.cases(*branches, else_=0).fill_null(0).cast("int64")


def _in_band(age, lo, hi, closed) -> ir.BooleanValue:
    # the open-ended > 216 band excludes 216 itself (the band before it is closed at 216)
    return in_age_band(age, lo, hi, high_inclusive=closed, low_inclusive=hi is not None)


def respiratory_support(t: ir.Table) -> ir.BooleanValue:
    """§6.2 "with respiratory support": a kind of SUPPORT_KINDS in the window (or, with
    SUPPORT_INCLUDES_SUPPLEMENTAL_OXYGEN, any documented support or FiO2 > 0.21)."""
    support = ibis.literal(False)
    for kind in SUPPORT_KINDS:
        support = support | t[SUPPORT_SPECS[kind].column].fill_null(False)
    if SUPPORT_INCLUDES_SUPPLEMENTAL_OXYGEN:
        support = (support | t[OTHER_SUPPORT.column].fill_null(False)
                   | (t[FIO2.column] > ROOM_AIR_FIO2).fill_null(False))
    return support


def respiratory_points(t: ir.Table) -> ir.IntegerValue:
    """§6.2 respiratory: P/F preferred, else S/F; 3-4 points require respiratory support."""
    pf, sf = t[PF_RATIO.column], t[SF_RATIO.column]
    support = respiratory_support(t)

    def score(ratio, zero, one, two, three):
        return ibis.cases(
            (ratio >= zero, 0), (ratio >= one, 1), (ratio >= two, 2),
            (~support, 2), (ratio >= three, 3), else_=4,
        )

    return ibis.cases(
        (pf.notnull(), score(pf, *PF_EDGES)),
        (sf.notnull(), score(sf, *SF_EDGES)),
        else_=0,
    ).cast("int64")


def cardiovascular_points(t: ir.Table) -> ir.IntegerValue:
    """§6.2 cardiovascular: highest applicable row of vasoactive doses, else MAP by age."""
    dopa_any = t[DOPAMINE_ANY.column].fill_null(False)
    dopa = t[DOPAMINE_DOSE.column]
    epi_any = t[EPINEPHRINE_ANY.column].fill_null(False)
    epi = t[EPINEPHRINE_DOSE.column]
    ne_any = t[NOREPINEPHRINE_ANY.column].fill_null(False)
    ne = t[NOREPINEPHRINE_DOSE.column]
    dobu_any = t[DOBUTAMINE_ANY.column].fill_null(False)
    four = ((dopa > DOPAMINE_FOUR_ABOVE) | (epi > EPINEPHRINE_FOUR_ABOVE)
            | (ne > NOREPINEPHRINE_FOUR_ABOVE)).fill_null(False)
    three = ((dopa > DOPAMINE_THREE_ABOVE).fill_null(False) | epi_any | ne_any | epi.notnull()
             | ne.notnull())
    two = dopa_any | dopa.notnull() | dobu_any
    return ibis.cases((four, 4), (three, 3), (two, 2), (map_below_threshold(t), 1),
                      else_=0).cast("int64")


def map_below_threshold(t: ir.Table) -> ir.BooleanValue:
    """MAP below the age-band threshold of §6.2 (NULL MAP or age -> False, assumed normal)."""
    age, map_mmhg = t.age_months, t[MAP.column]
    below = ibis.literal(False)
    for (lo, hi, closed), threshold in zip(AGE_BANDS_MONTHS, MAP_THRESHOLDS):
        below = below | (_in_band(age, lo, hi, closed) & (map_mmhg < threshold))
    return below.fill_null(False)


def renal_points(t: ir.Table) -> ir.IntegerValue:
    """§6.2 renal: creatinine bands by age in months (NULL creatinine or age -> 0)."""
    age, creatinine = t.age_months, t[CREATININE.column]
    branches = [(_in_band(age, lo, hi, closed), _ladder(creatinine, edges, higher_is_worse=True))
                for (lo, hi, closed), edges in zip(AGE_BANDS_MONTHS, CREATININE_EDGES)]
    return ibis.cases(*branches, else_=0).fill_null(0).cast("int64")


#: The six organ systems of pSOFA (§6); ``psofa_n_assumed_normal`` counts those scored 0 for want
#: of an input.
ORGAN_SYSTEMS = ("respiratory", "coagulation", "hepatic", "cardiovascular", "neurologic", "renal")


def evaluate(t: ir.Table) -> dict[str, ir.Value]:
    """pSOFA output columns over the wide feature table ``t`` (§6)."""
    resp = respiratory_points(t)
    coag = _ladder(t[PLATELETS.column], PLATELETS_EDGES, higher_is_worse=False)
    hepatic = _ladder(t[BILIRUBIN.column], BILIRUBIN_EDGES, higher_is_worse=True)
    cardio = cardiovascular_points(t)
    neuro = _ladder(t[GCS.column], GCS_EDGES, higher_is_worse=False)
    renal = renal_points(t)

    age_missing = t.age_months.isnull()
    vaso_scored = cardio >= VASOACTIVE_ROW_POINTS_FROM
    missing_inputs = [
        ("pf_ratio", t[PF_RATIO.column].isnull()),
        ("sf_ratio", t[SF_RATIO.column].isnull()),
        ("platelets", t[PLATELETS.column].isnull()),
        ("bilirubin_total", t[BILIRUBIN.column].isnull()),
        ("map", t[MAP.column].isnull()),
        ("gcs", t[GCS.column].isnull()),
        ("creatinine", t[CREATININE.column].isnull()),
        ("age_months", age_missing),
        ("dopamine_dose", t[DOPAMINE_ANY.column].fill_null(False)
         & t[DOPAMINE_DOSE.column].isnull()),
        ("epinephrine_dose", t[EPINEPHRINE_ANY.column].fill_null(False)
         & t[EPINEPHRINE_DOSE.column].isnull()),
        ("norepinephrine_dose", t[NOREPINEPHRINE_ANY.column].fill_null(False)
         & t[NOREPINEPHRINE_DOSE.column].isnull()),
    ]
    text, _ = missing_flags(missing_inputs)
    systems_assumed_normal = [
        t[PF_RATIO.column].isnull() & t[SF_RATIO.column].isnull(),
        t[PLATELETS.column].isnull(),
        t[BILIRUBIN.column].isnull(),
        ~vaso_scored & (t[MAP.column].isnull() | age_missing),
        t[GCS.column].isnull(),
        t[CREATININE.column].isnull() | age_missing,
    ]
    n_assumed = ibis.literal(0, type="int64")
    for flag in systems_assumed_normal:
        n_assumed = n_assumed + flag.cast("int64")
    return {
        "psofa_respiratory_points": resp,
        "psofa_coagulation_points": coag,
        "psofa_hepatic_points": hepatic,
        "psofa_cardiovascular_points": cardio,
        "psofa_neurologic_points": neuro,
        "psofa_renal_points": renal,
        "psofa_score": resp + coag + hepatic + cardio + neuro + renal,
        "psofa_missing": text,
        "psofa_n_assumed_normal": n_assumed,
    }
