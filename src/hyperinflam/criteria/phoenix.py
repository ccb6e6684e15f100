"""Phoenix Sepsis Score, Phoenix sepsis and Phoenix septic shock.

Clinical reference §5.1-§5.5 and §12.9, §12.10, §12.14, §12.22, §12.24-§12.26; Schlapbach LJ et
al., JAMA 2024;331(8):665-674 and Sanchez-Pinto LN et al., JAMA 2024;331(8):675-686. Every rule
follows the authors' reference implementation ``phoenix-sepsis`` 1.1.3, against which it is tested
row by row.

Scoring (§5.2):

* respiratory 0-3: ``imv * [(pf<100 or sf<148) + (pf<200 or sf<220)] + ors * (pf<400 or sf<292)``,
  where ``ors`` (any respiratory support) is IMV or a charted FiO2 ``> 0.21`` in the look-back
  (§5.2: "FiO2 > 0.21 implies support"). S/F only exists where SpO2 <= 97 % (hyperinflam.features.derived).
* cardiovascular 0-6: distinct vasoactive agents (1 -> 1, >= 2 -> 2) + lactate (``>= 5`` -> 1,
  ``>= 11`` -> 2) + MAP by age band in months (0-2; ``144 <= age <= 216`` inclusive as in the code).
* coagulation 0-2: platelets ``< 100``, INR ``> 1.3``, D-dimer ``> 2`` mg/L FEU, fibrinogen
  ``< 100`` mg/dL, one point each, capped at 2.
* neurologic 0-2: GCS ``<= 10`` -> 1, bilaterally fixed pupils -> 2, capped at 2.

Missing inputs score 0, as the authors do (§5.4), using the reference code's substitutions
(P/F, S/F 500; lactate, INR, D-dimer 0; platelets, fibrinogen 1000; GCS 15; pupils 0; MAP 100 and
age 222). Every substituted input is named in ``phoenix_missing`` and counted in
``phoenix_n_assumed_normal``. IMV and vasoactives come from the organ-support record, where
absence means "not given" (FALSE / 0), not missing.

Sepsis (§5.1) = score >= 2 **and** suspected infection. The infection feature is TRUE or NULL
(absence of a recorded infection is not "no infection"), so ``phoenix_sepsis`` is 'met'
(score >= 2, infection recorded), 'not_met' (score < 2) or 'unknown' (score >= 2, no infection
recorded). ``phoenix_score_ge_2`` is the reference code's ``phoenix_sepsis`` (no infection check).

Values are the worst in each variable's look-back window (§12.10: worst value within the
authors' look-back windows of §5.4, :data:`LOOKBACK_HOURS`).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.features import FeatureSpec

NAME = "phoenix"
TITLE = "Phoenix Sepsis Score (Schlapbach 2024, Sanchez-Pinto 2024)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "Phoenix sepsis"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "phoenix_sepsis"
#: Criterion group (screening.meets): organ dysfunction and severity.
GROUP = "severity"
#: Ages (months, [low, high)) the authors validated the score in; outside them the screen flags
#: the evaluation (``phoenix_outside_validated_ages``). §5.1: developed and validated in children <
#: 18 years (< 216 months) at encounter start (Schlapbach 2024, Sanchez-Pinto 2024).
VALIDATED_AGE_MONTHS = (0, 216)
#: Phoenix Sepsis Score at or above which a child with suspected infection has sepsis (§5.1).
SEPSIS_SCORE_THRESHOLD = 2
REFERENCE = (
    "clinical reference §5.1-§5.5; Schlapbach LJ et al. JAMA 2024;331(8):665-674; "
    "Sanchez-Pinto LN et al. JAMA 2024;331(8):675-686; phoenix-sepsis 1.1.3"
)

#: Look-back (hours) of each input: the authors' last-observation-carried-forward limits (§5.4).
LOOKBACK_HOURS: dict[str, float] = {
    "pf_ratio": 6, "sf_ratio": 6, "fio2": 6, "invasive_ventilation": 6,
    "lactate": 6, "map_any": 6, "pupils_fixed_bilateral": 6,
    "vasoactive": 12, "gcs_total": 12, "glucose": 12,
    "platelets": 24, "inr": 24, "d_dimer": 24, "fibrinogen": 24,
    "anc": 24, "alc": 24, "creatinine": 24, "bilirubin_total": 24, "alt": 24,
}

#: FiO2 above this fraction means "other respiratory support" (§5.2, authors' EHR notes).
ROOM_AIR_FIO2: float = 0.21


def _spec(variable: str, agg: str, source: str = "measurement") -> FeatureSpec:
    return FeatureSpec(variable, agg, LOOKBACK_HOURS[variable], source)


PF_RATIO = _spec("pf_ratio", "min")
SF_RATIO = _spec("sf_ratio", "min")
FIO2 = _spec("fio2", "max")
IMV = _spec("invasive_ventilation", "any", "organ_support")
VASOACTIVES = _spec("vasoactive", "count", "organ_support")
LACTATE = _spec("lactate", "max")
MAP = _spec("map_any", "min")
PLATELETS = _spec("platelets", "min")
INR = _spec("inr", "max")
D_DIMER = _spec("d_dimer", "max")
FIBRINOGEN = _spec("fibrinogen", "min")
GCS = _spec("gcs_total", "min")
#: Bilaterally fixed pupils: a condition concept of vocabulary/concepts.csv (TRUE; FALSE when
#: 'pupils_reactive' was recorded; NULL = not documented, scored 0 and named as missing).
PUPILS_FIXED = _spec("pupils_fixed_bilateral", "any", "condition")
#: Suspected infection (contract: TRUE or NULL = not recorded).
INFECTION = FeatureSpec("infection", "any", None, "event")

#: (name shown in ``phoenix_missing``, spec) of every input replaced by a normal value if missing.
SCORED_INPUTS: list[tuple[str, FeatureSpec]] = [
    ("pf_ratio", PF_RATIO), ("sf_ratio", SF_RATIO), ("fio2", FIO2),
    ("invasive_ventilation", IMV), ("vasoactive", VASOACTIVES), ("lactate", LACTATE),
    ("map", MAP), ("platelets", PLATELETS), ("inr", INR), ("d_dimer", D_DIMER),
    ("fibrinogen", FIBRINOGEN), ("gcs", GCS), ("pupils", PUPILS_FIXED),
]

INPUTS: list[FeatureSpec] = [spec for _, spec in SCORED_INPUTS] + [INFECTION]


def _int(cond: ir.BooleanValue) -> ir.IntegerValue:
    """1 where ``cond`` is true, else 0 (inputs are already NULL-filled)."""
    return cond.cast("int64")


def respiratory_points(t: ir.Table) -> ir.IntegerValue:
    """Respiratory subscore 0-3 (§5.2), with the reference code's substitutions (§5.4)."""
    pf = t[PF_RATIO.column].fill_null(500)
    sf = t[SF_RATIO.column].fill_null(500)
    imv = t[IMV.column].fill_null(False)
    ors = imv | (t[FIO2.column] > ROOM_AIR_FIO2).fill_null(False)
    severe = _int((pf < 100) | (sf < 148)) + _int((pf < 200) | (sf < 220))
    return _int(imv) * severe + _int(ors) * _int((pf < 400) | (sf < 292))


def _band_points(age, value, bands) -> ir.IntegerValue:
    """Sum over age bands [lo, hi) (last band closed) of points for ``value`` below thresholds."""
    total = ibis.literal(0, type="int64")
    for lo, hi, closed, two, one in bands:
        in_band = (age >= lo) & ((age <= hi) if closed else (age < hi))
        total = total + _int(in_band) * (_int(value < two) + _int(value < one))
    return total


#: MAP bands (§5.2): (age lo, age hi, hi inclusive, MAP for 2 points "<", MAP for 1 point "<").
MAP_BANDS_MONTHS = [
    (0, 1, False, 17, 31),
    (1, 12, False, 25, 39),
    (12, 24, False, 31, 44),
    (24, 60, False, 32, 45),
    (60, 144, False, 36, 49),
    (144, 216, True, 38, 52),
]


def cardiovascular_points(t: ir.Table) -> ir.IntegerValue:
    """Cardiovascular subscore 0-6 (§5.2): vasoactive count + lactate + MAP by age in months."""
    vaso = t[VASOACTIVES.column].fill_null(0)
    lactate = t[LACTATE.column].fill_null(0)
    age = t.age_months.fill_null(222)
    map_mmhg = t[MAP.column].fill_null(100)
    return (
        _int(vaso > 1) + _int(vaso > 0)
        + _int(lactate >= 11) + _int(lactate >= 5)
        + _band_points(age, map_mmhg, MAP_BANDS_MONTHS)
    )


def coagulation_points(t: ir.Table) -> ir.IntegerValue:
    """Coagulation subscore 0-2 (§5.2): platelets, INR, D-dimer, fibrinogen, capped at 2."""
    raw = (
        _int(t[PLATELETS.column].fill_null(1000) < 100)
        + _int(t[INR.column].fill_null(0) > 1.3)
        + _int(t[D_DIMER.column].fill_null(0) > 2)
        + _int(t[FIBRINOGEN.column].fill_null(1000) < 100)
    )
    return ibis.least(raw, 2)


def neurologic_points(t: ir.Table) -> ir.IntegerValue:
    """Neurologic subscore 0-2 (§5.2): GCS <= 10 -> 1, bilaterally fixed pupils -> 2, cap 2."""
    gcs = t[GCS.column].fill_null(15)
    fixed = t[PUPILS_FIXED.column].fill_null(False)
    return ibis.least(2 * _int(fixed) + _int(gcs <= 10), 2)


def missing_list(t: ir.Table, inputs: list[tuple[str, FeatureSpec]],
                 extra: list[tuple[str, ir.Value]] = ()) -> tuple[ir.StringValue, ir.IntegerValue]:
    """(comma-separated names of NULL inputs, their count)."""
    items = [(name, t[spec.column]) for name, spec in inputs] + list(extra)
    text = ibis.literal("", type="string")
    count = ibis.literal(0, type="int64")
    for name, col in items:
        text = text + col.isnull().ifelse(ibis.literal(name + ","), ibis.literal(""))
        count = count + _int(col.isnull())
    return text.re_replace(",$", ""), count


def tri_state(met: ir.BooleanValue, not_met: ir.BooleanValue) -> ir.StringValue:
    """'met' / 'not_met' / 'unknown' (never NULL)."""
    return ibis.cases((met, "met"), (not_met, "not_met"), else_="unknown")


def evaluate(t: ir.Table) -> dict[str, ir.Value]:
    """Phoenix output columns over the wide feature table ``t`` (§5)."""
    resp = respiratory_points(t)
    cardio = cardiovascular_points(t)
    coag = coagulation_points(t)
    neuro = neurologic_points(t)
    score = resp + cardio + coag + neuro
    ge_2 = score >= SEPSIS_SCORE_THRESHOLD
    infection = t[INFECTION.column]
    sepsis_met = ge_2 & infection.fill_null(False)
    sepsis_not_met = ~ge_2 | (infection == False).fill_null(False)  # noqa: E712
    missing, n_missing = missing_list(t, SCORED_INPUTS, [("age_months", t.age_months)])
    return {
        "phoenix_respiratory_points": resp,
        "phoenix_cardiovascular_points": cardio,
        "phoenix_coagulation_points": coag,
        "phoenix_neurologic_points": neuro,
        "phoenix_score": score,
        "phoenix_score_ge_2": ge_2,
        "phoenix_sepsis": tri_state(sepsis_met, sepsis_not_met),
        "phoenix_septic_shock": tri_state(sepsis_met & (cardio >= 1),
                                          sepsis_not_met | (cardio < 1)),
        "phoenix_age_eligible": (t.age_months_at_admit < 216).fill_null(False),
        "phoenix_missing": missing,
        "phoenix_n_assumed_normal": n_missing,
    }
