"""PRISM III points (Pediatric Risk of Mortality III), per item and total.

Clinical reference §7.1-§7.4 and §12.9-§12.14, §12.29; Pollack MM, Patel KM, Ruttimann UE.
*PRISM III: an updated Pediatric Risk of Mortality score.* Crit Care Med 1996;24(5):743-752,
doi:10.1097/00003246-199605000-00004. Point table as cross-checked against the validated Stata
implementation of Azamfirei R et al., Pediatr Crit Care Med 2023;24(3):e162-e163 (§7.1, [S]).

**Points only.** The PRISM III mortality-probability equation is licensed (§7.3): this module
never computes a probability.

Scoring (§7.2), the most abnormal value of each variable in the observation window:

* 17 items: systolic BP, heart rate, temperature (lowest and highest), mental status (GCS < 8),
  pupils (> 3 mm and fixed: one 7, both 11), acidosis (lowest pH **or** lowest total CO2: the worse
  of 2 / 6, counted once), pH alkalosis (highest pH), PCO2, total CO2 > 34, PaO2, glucose,
  potassium, creatinine, urea nitrogen, WBC, PT/PTT (one item), platelets.
* Age groups by completed days at the evaluation time (§7.1, §12.14): neonate 0-30, infant
  31-365, child 366-4380, adolescent >= 4381 days.
* Printed bands are half-open on the upper side for continuous values (§12.13): "40-55" is
  ``40 <= x < 56``, "42.0-49.9" is ``42 <= x < 50``, "7.0-7.28" is ``7.0 <= x < 7.29``; when two bands
  overlap at such an edge the worse points win (e.g. HR > 225 scores 4, not 3). The outer edge of the
  platelet band "100 000-200 000" is inclusive (``<= 200 000``), as printed.
* Boundaries are decided in the PRISM III native unit (§12.11): canonical values are converted
  (platelets and WBC to /mm3 with the factor of vocabulary/units.csv, §11.1) and rounded to the reporting precision of
  :data:`NATIVE_DIGITS` before comparison; SI inputs were already converted to mg/dL at load with the
  exact §11.1 factors, as §7.2 requires.
* Neurologic points = mental status + pupils; non-neurologic = all other items; total = both (§7.2).

Missing (§7.3, §12.9): an unmeasured item scores 0 (assumed normal), as the authors and the
cross-checked implementation do. ``prism3_n_assumed_normal`` counts the items (of 17) with no input
at all; ``prism3_missing`` names every missing input variable.

Observation window (§7.3, §12.29: PRISM III-24): every measured input is the worst value from
PICU admission to min(evaluation time, admission + :data:`WINDOW_HOURS`) (FeatureSpec
``first_hours``), so an evaluation later in the stay still reports the PRISM III-24 points.
``prism3_window_complete`` is FALSE while fewer than 24 h have passed (the points may still rise).
Bilaterally fixed pupils may also come from the condition concept ``pupils_fixed_bilateral``
(documented any time up to the evaluation time).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.criteria._toolkit import missing_list, native, typed
from hyperinflam.features import FeatureSpec

NAME = "prism3"
TITLE = "PRISM III points (Pollack 1996)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "PRISM III"
#: Criterion group (screening.meets): organ dysfunction and severity.
GROUP = "severity"
#: Ages (months, [low, high)) the authors validated the score in; outside them the screen flags
#: the evaluation (``prism3_outside_validated_ages``). §7.1: derived in PICU patients from neonates
#: to adolescents (Pollack 1996); the reference names no upper age, and the pediatric-only
#: population is taken as < 18 years (named setting, Open: confirm against Pollack 1996).
VALIDATED_AGE_MONTHS = (0, 216)
REFERENCE = (
    "clinical reference §7.1-§7.4, §12.9-§12.14, §12.29; Pollack MM, Patel KM, Ruttimann UE. "
    "Crit Care Med 1996;24(5):743-752; points cross-checked with Azamfirei R et al. "
    "Pediatr Crit Care Med 2023;24(3):e162-e163. Points only: the probability equation is licensed."
)

#: PRISM III-24 observation period in hours after PICU admission (§7.3, §12.29).
WINDOW_HOURS: float = 24.0

#: Upper age edge of each age group in completed days (§7.1): neonate <= 30, infant <= 365,
#: child <= 4380, adolescent above.
AGE_GROUP_MAX_DAYS: dict[str, int] = {"neonate": 30, "infant": 365, "child": 4380}

#: Reporting precision (decimal places) of each variable in the PRISM III native unit; canonical
#: values are rounded to it before any boundary decision (§12.11, §12.13: integer vitals are
#: compared as integers). Project choice where §7 is silent; it only removes conversion noise
#: (e.g. creatinine 115 umol/L / 88.40 = 1.3009 mg/dL -> 1.30, not > 1.30, as "> 115 umol/L").
NATIVE_DIGITS: dict[str, int] = {
    "sbp": 0, "heart_rate": 0, "temperature": 1, "gcs_total": 0, "ph": 2, "bicarbonate": 1,
    "paco2": 1, "pao2": 1, "glucose": 0, "potassium": 1, "creatinine": 2, "bun": 1,
    "wbc_per_mm3": 0, "pt": 1, "aptt": 1, "platelets_per_mm3": 0,
}


def _spec(variable: str, agg: str) -> FeatureSpec:
    """Worst value in the first WINDOW_HOURS of the stay (see module docstring on the window)."""
    return FeatureSpec(variable, agg, None, "measurement", first_hours=WINDOW_HOURS)


SBP_MIN = _spec("sbp", "min")
HEART_RATE_MAX = _spec("heart_rate", "max")
TEMPERATURE_MIN = _spec("temperature", "min")
TEMPERATURE_MAX = _spec("temperature", "max")
GCS_MIN = _spec("gcs_total", "min")
#: Number of pupils > 3 mm and fixed (0, 1, 2); vocabulary variable requested from the lead.
PUPILS_FIXED_COUNT_MAX = _spec("pupils_fixed_count", "max")
#: 1 = both pupils fixed (the variable Phoenix reads); used when the count is not recorded.
PUPILS_FIXED_BILATERAL_MAX = FeatureSpec("pupils_fixed_bilateral", "any", None, "condition")
PH_MIN = _spec("ph", "min")
PH_MAX = _spec("ph", "max")
#: Total CO2 is the vocabulary variable 'bicarbonate' ("Bicarbonate / total CO2").
TOTAL_CO2_MIN = _spec("bicarbonate", "min")
TOTAL_CO2_MAX = _spec("bicarbonate", "max")
PACO2_MAX = _spec("paco2", "max")
PAO2_MIN = _spec("pao2", "min")
GLUCOSE_MAX = _spec("glucose", "max")
POTASSIUM_MAX = _spec("potassium", "max")
CREATININE_MAX = _spec("creatinine", "max")
BUN_MAX = _spec("bun", "max")
WBC_MIN = _spec("wbc", "min")
PT_MAX = _spec("pt", "max")
APTT_MAX = _spec("aptt", "max")
PLATELETS_MIN = _spec("platelets", "min")

INPUTS: list[FeatureSpec] = [
    SBP_MIN, HEART_RATE_MAX, TEMPERATURE_MIN, TEMPERATURE_MAX, GCS_MIN, PUPILS_FIXED_COUNT_MAX,
    PUPILS_FIXED_BILATERAL_MAX, PH_MIN, PH_MAX, TOTAL_CO2_MIN, TOTAL_CO2_MAX, PACO2_MAX, PAO2_MIN,
    GLUCOSE_MAX, POTASSIUM_MAX, CREATININE_MAX, BUN_MAX, WBC_MIN, PT_MAX, APTT_MAX, PLATELETS_MIN,
]

#: The 17 PRISM III items (§7.2) and the inputs each is scored from.
ITEMS: dict[str, list[FeatureSpec]] = {
    "sbp": [SBP_MIN],
    "heart_rate": [HEART_RATE_MAX],
    "temperature": [TEMPERATURE_MIN, TEMPERATURE_MAX],
    "mental_status": [GCS_MIN],
    "pupils": [PUPILS_FIXED_COUNT_MAX, PUPILS_FIXED_BILATERAL_MAX],
    "acidosis": [PH_MIN, TOTAL_CO2_MIN],
    "ph_alkalosis": [PH_MAX],
    "pco2": [PACO2_MAX],
    "total_co2": [TOTAL_CO2_MAX],
    "pao2": [PAO2_MIN],
    "glucose": [GLUCOSE_MAX],
    "potassium": [POTASSIUM_MAX],
    "creatinine": [CREATININE_MAX],
    "bun": [BUN_MAX],
    "wbc": [WBC_MIN],
    "pt_ptt": [PT_MAX, APTT_MAX],
    "platelets": [PLATELETS_MIN],
}
NEUROLOGIC_ITEMS: tuple[str, ...] = ("mental_status", "pupils")

# Age-specific thresholds (§7.2), by age group: neonate, infant, child, adolescent.
#: SBP (mmHg): < first -> 7 points; first <= SBP < second -> 3 points ("40-55" = [40, 56)).
SBP_BANDS: dict[str, tuple[float, float]] = {
    "neonate": (40, 56), "infant": (45, 66), "child": (55, 76), "adolescent": (65, 86)}
#: Heart rate (/min): >= first -> 3 points; > second -> 4 points.
HEART_RATE_BANDS: dict[str, tuple[float, float]] = {
    "neonate": (215, 225), "infant": (215, 225), "child": (185, 205), "adolescent": (145, 155)}
#: Creatinine (mg/dL): > threshold -> 2 points.
CREATININE_ABOVE: dict[str, float] = {
    "neonate": 0.85, "infant": 0.90, "child": 0.90, "adolescent": 1.30}
#: Urea nitrogen (mg/dL): > threshold -> 3 points.
BUN_ABOVE: dict[str, float] = {"neonate": 11.9, "infant": 14.9, "child": 14.9, "adolescent": 14.9}
#: PTT (s): > threshold -> 3 points (PT > 22.0 s at every age).
PTT_ABOVE: dict[str, float] = {"neonate": 85.0, "infant": 57.0, "child": 57.0, "adolescent": 57.0}
PT_ABOVE: float = 22.0

# Age-independent thresholds (§7.2), in the native units of NATIVE_DIGITS; the points they score
# are in item_points.
#: Temperature (Cel): lowest < 33 or highest > 40 -> 3 points.
TEMPERATURE_BELOW_CEL, TEMPERATURE_ABOVE_CEL = 33.0, 40.0
#: Mental status: GCS < 8 -> 5 points.
GCS_BELOW: float = 8
#: Pupils > 3 mm and fixed: both -> 11 points, one -> 7 points.
PUPILS_FIXED_BOTH, PUPILS_FIXED_ONE = 2, 1
#: Acidosis: pH < 7.0 or total CO2 < 5 mmol/L -> 6 points; pH 7.0-7.28 or total CO2 5-16.9 -> 2.
PH_ACIDOSIS_SEVERE_BELOW, PH_ACIDOSIS_BELOW = 7.0, 7.29
TOTAL_CO2_ACIDOSIS_SEVERE_BELOW, TOTAL_CO2_ACIDOSIS_BELOW = 5.0, 17.0
#: pH alkalosis: > 7.55 -> 3 points, 7.48-7.55 -> 2 points.
PH_ALKALOSIS_SEVERE_ABOVE, PH_ALKALOSIS_AT_LEAST = 7.55, 7.48
#: PCO2 (mmHg): > 75 -> 3 points, 50-75 -> 1 point.
PCO2_SEVERE_ABOVE, PCO2_AT_LEAST = 75.0, 50.0
#: Total CO2 (mmol/L): > 34 -> 4 points.
TOTAL_CO2_ABOVE: float = 34.0
#: PaO2 (mmHg): < 42 -> 6 points, 42-49.9 -> 3 points.
PAO2_SEVERE_BELOW, PAO2_BELOW = 42.0, 50.0
#: Glucose (mg/dL): > 200 -> 2 points. Potassium (mmol/L): > 6.9 -> 3 points.
GLUCOSE_ABOVE: float = 200
POTASSIUM_ABOVE: float = 6.9
#: WBC (/mm3): < 3000 -> 4 points.
WBC_BELOW_PER_MM3: float = 3000
#: Platelets (/mm3): < 50 000 -> 5, 50 000-99 999 -> 4, 100 000-200 000 -> 2 points.
PLATELETS_SEVERE_BELOW_PER_MM3, PLATELETS_BELOW_PER_MM3 = 50_000, 100_000
PLATELETS_AT_MOST_PER_MM3 = 200_000
#: The native unit of WBC and platelets (§7.2: /mm3; factor from vocabulary/units.csv).
CELLS_NATIVE_UNIT = "/mm3"


def _by_age(t: ir.Table, values: dict[str, object], dtype: str = "float64") -> ir.Value:
    """Per-age-group value straight from completed days (§7.1), without nesting the group
    expression, so the compiled query stays small."""
    days = t.age_days.floor()
    branches = [(days <= AGE_GROUP_MAX_DAYS[g], ibis.literal(values[g], type=dtype))
                for g in ("neonate", "infant", "child")]
    branches.append((days.notnull(), ibis.literal(values["adolescent"], type=dtype)))
    return ibis.cases(*branches, else_=ibis.null(dtype))


def age_group(t: ir.Table) -> ir.StringValue:
    """PRISM III age group from completed days at the evaluation time (§7.1, §12.14)."""
    return _by_age(t, {g: g for g in ("neonate", "infant", "child", "adolescent")}, "string")


def _points(*bands: tuple[ir.BooleanValue, int]) -> ir.IntegerValue:
    """First matching band's points; 0 when none matches or the input is NULL (§7.3)."""
    return typed(ibis.cases(*[(cond, ibis.literal(p, type="int64")) for cond, p in bands],
                            else_=ibis.literal(0, type="int64")), "int64")


def _native(t: ir.Table, spec: FeatureSpec, digits_key: str, unit: str | None = None):
    """The input in the PRISM III unit (None: canonical) at its reporting precision."""
    return native(t[spec.column], spec.variable, unit, NATIVE_DIGITS[digits_key])


def item_points(t: ir.Table) -> dict[str, ir.IntegerValue]:
    """Points of each of the 17 items (§7.2) as integer expressions over the wide table."""
    sbp = _native(t, SBP_MIN, "sbp")
    hr = _native(t, HEART_RATE_MAX, "heart_rate")
    temp_min = _native(t, TEMPERATURE_MIN, "temperature")
    temp_max = _native(t, TEMPERATURE_MAX, "temperature")
    gcs = _native(t, GCS_MIN, "gcs_total")
    pupils_count = t[PUPILS_FIXED_COUNT_MAX.column]
    pupils_both = t[PUPILS_FIXED_BILATERAL_MAX.column]
    ph_min = _native(t, PH_MIN, "ph")
    ph_max = _native(t, PH_MAX, "ph")
    tco2_min = _native(t, TOTAL_CO2_MIN, "bicarbonate")
    tco2_max = _native(t, TOTAL_CO2_MAX, "bicarbonate")
    paco2 = _native(t, PACO2_MAX, "paco2")
    pao2 = _native(t, PAO2_MIN, "pao2")
    glucose = _native(t, GLUCOSE_MAX, "glucose")
    potassium = _native(t, POTASSIUM_MAX, "potassium")
    creatinine = _native(t, CREATININE_MAX, "creatinine")
    bun = _native(t, BUN_MAX, "bun")
    wbc = _native(t, WBC_MIN, "wbc_per_mm3", CELLS_NATIVE_UNIT)
    pt = _native(t, PT_MAX, "pt")
    ptt = _native(t, APTT_MAX, "aptt")
    platelets = _native(t, PLATELETS_MIN, "platelets_per_mm3", CELLS_NATIVE_UNIT)

    sbp_low = _by_age(t, {g: b[0] for g, b in SBP_BANDS.items()})
    sbp_high = _by_age(t, {g: b[1] for g, b in SBP_BANDS.items()})
    hr_3 = _by_age(t, {g: b[0] for g, b in HEART_RATE_BANDS.items()})
    hr_4 = _by_age(t, {g: b[1] for g, b in HEART_RATE_BANDS.items()})
    return {
        "sbp": _points((sbp < sbp_low, 7), (sbp < sbp_high, 3)),
        "heart_rate": _points((hr > hr_4, 4), (hr >= hr_3, 3)),
        "temperature": _points(((temp_min < TEMPERATURE_BELOW_CEL)
                                | (temp_max > TEMPERATURE_ABOVE_CEL), 3)),
        "mental_status": _points((gcs < GCS_BELOW, 5)),
        "pupils": _points(((pupils_count >= PUPILS_FIXED_BOTH) | pupils_both, 11),
                          (pupils_count >= PUPILS_FIXED_ONE, 7)),
        "acidosis": _points(((ph_min < PH_ACIDOSIS_SEVERE_BELOW)
                             | (tco2_min < TOTAL_CO2_ACIDOSIS_SEVERE_BELOW), 6),
                            ((ph_min < PH_ACIDOSIS_BELOW) | (tco2_min < TOTAL_CO2_ACIDOSIS_BELOW), 2)),
        "ph_alkalosis": _points((ph_max > PH_ALKALOSIS_SEVERE_ABOVE, 3),
                                (ph_max >= PH_ALKALOSIS_AT_LEAST, 2)),
        "pco2": _points((paco2 > PCO2_SEVERE_ABOVE, 3), (paco2 >= PCO2_AT_LEAST, 1)),
        "total_co2": _points((tco2_max > TOTAL_CO2_ABOVE, 4)),
        "pao2": _points((pao2 < PAO2_SEVERE_BELOW, 6), (pao2 < PAO2_BELOW, 3)),
        "glucose": _points((glucose > GLUCOSE_ABOVE, 2)),
        "potassium": _points((potassium > POTASSIUM_ABOVE, 3)),
        "creatinine": _points((creatinine > _by_age(t, CREATININE_ABOVE), 2)),
        "bun": _points((bun > _by_age(t, BUN_ABOVE), 3)),
        "wbc": _points((wbc < WBC_BELOW_PER_MM3, 4)),
        "pt_ptt": _points(((pt > PT_ABOVE) | (ptt > _by_age(t, PTT_ABOVE)), 3)),
        "platelets": _points((platelets < PLATELETS_SEVERE_BELOW_PER_MM3, 5),
                             (platelets < PLATELETS_BELOW_PER_MM3, 4),
                             (platelets <= PLATELETS_AT_MOST_PER_MM3, 2)),
    }


def evaluate(t: ir.Table) -> dict[str, ibis.Value]:
    """PRISM III points per item, neurologic / non-neurologic / total, and missing inputs (§7)."""
    items = item_points(t)
    out: dict[str, ibis.Value] = {f"{NAME}_age_group": age_group(t)}
    for item, points in items.items():
        out[f"{NAME}_{item}_points"] = points
    neurologic = sum((items[i] for i in NEUROLOGIC_ITEMS), ibis.literal(0, type="int64"))
    non_neurologic = sum((p for i, p in items.items() if i not in NEUROLOGIC_ITEMS),
                         ibis.literal(0, type="int64"))
    out[f"{NAME}_neurologic_points"] = neurologic
    out[f"{NAME}_nonneurologic_points"] = non_neurologic
    out[f"{NAME}_points"] = neurologic + non_neurologic

    assumed_normal = ibis.literal(0, type="int64")
    for specs in ITEMS.values():
        none_measured = ibis.and_(*[t[s.column].isnull() for s in specs])
        assumed_normal = assumed_normal + none_measured.cast("int64")
    out[f"{NAME}_n_assumed_normal"] = assumed_normal
    # One name per input variable (temperature min and max come from the same measurements); the
    # two pupil inputs are alternatives, so "pupils" is missing only when both are.
    pupil_specs = (PUPILS_FIXED_COUNT_MAX, PUPILS_FIXED_BILATERAL_MAX)
    missing_inputs: dict[str, ibis.Value] = {}
    for spec in INPUTS:
        if spec in pupil_specs:
            missing_inputs.setdefault("pupils", ibis.coalesce(
                *[t[s.column].cast("float64") for s in pupil_specs]))
        else:
            missing_inputs.setdefault(spec.variable, t[spec.column])
    out[f"{NAME}_missing"] = missing_list(missing_inputs)
    out[f"{NAME}_window_complete"] = t.hours_since_admit >= WINDOW_HOURS
    return out
