"""HScore for reactive haemophagocytic syndrome (clinical reference §2; §12.9-§12.13, §12.16,
§12.20, §12.30).

Primary publication: Fardet L, Galicier L, Lambotte O, et al. *Development and validation of the
HScore, a score for the diagnosis of reactive hemophagocytic syndrome.* Arthritis Rheumatol
2014;66(9):2613-2620. doi:10.1002/art.38690. **Adult derivation**: used in paediatrics but not
validated there (§2.1); reports must say so.

Points per variable are those of §2.2. Missing items (§2.4, Fardet's own handling: VERIFY):
``hscore_points`` scores an absent item 0 as clinical calculators do, ``hscore_max_possible`` scores
it at its maximum, and ``hscore_missing`` / ``hscore_n_missing`` name and count the missing inputs.
``hscore_ge_169`` is 'met' if points >= 169, 'not_met' if the maximum possible < 169, else
'unknown' (§2.4 calls this state "indeterminate"; the engine contract reserves that word for count
rules).

Native units (§2.2 notes, §12.11): triglycerides in mmol/L rounded to 2 dp, fibrinogen in g/L
rounded to 2 dp (factors from vocabulary/units.csv); Hb in g/dL, temperature in °C, ferritin ng/mL,
AST IU/L, WBC and platelets 10⁹/L are the canonical units, compared as loaded.
Band edges are as printed in §2.2 (temperature 38.4 and 39.4 both in the 33-point band).

Probability (§2.3, §12.30): the published table band is the result
(``hscore_probability_band``); the project's logistic fit to that table is only a labelled
approximation (``hscore_probability_fit_approx_pct``). The unsourced calculator formula
``1/(1+exp(-(-4.3+0.03·HScore)))`` is deliberately not used.
"""

from __future__ import annotations

import ibis

from hyperinflam.criteria._toolkit import (
    MET, NOT_MET, UNKNOWN, count_null, count_true, missing_list, native, typed)
from hyperinflam.features import FeatureSpec

NAME = "hscore"
TITLE = "HScore (Fardet 2014; adult derivation, not validated in children)"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "hscore_ge_169"
#: Criterion group (screening.meets): the hyperinflammatory phenotype.
GROUP = "phenotype"
#: No validated age range is declared: the phenotype criteria are evaluated at every age (their
#: populations are in the clinical reference; HScore is an adult derivation, §2.1).
VALIDATED_AGE_MONTHS = None
REFERENCE = ("clinical reference §2; Fardet L et al. Arthritis Rheumatol 2014;66(9):2613-2620, "
             "doi:10.1002/art.38690")

# -- named settings ---------------------------------------------------------------------------
#: Worst lab value in the preceding 72 h (§12.10).
LAB_LOOKBACK_HOURS: float | None = 72
#: Clinical findings (temperature maximum, organomegaly, immunosuppression, marrow) over the stay
#: up to the evaluation time (§12.10, §12.15).
CLINICAL_LOOKBACK_HOURS: float | None = None
#: "Positive" HScore cutoff (§2.2: sensitivity 93 %, specificity 86 %).
CUTOFF = 169
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = f"HScore >= {CUTOFF}"
#: Native units of §2.2 (their factors: vocabulary/units.csv, §11.1) and their reporting
#: precision (§12.11).
TG_NATIVE_UNIT = "mmol/L"
TG_MMOL_L_DIGITS = 2
FIBRINOGEN_NATIVE_UNIT = "g/L"
FIBRINOGEN_G_L_DIGITS = 2

#: §2.2 points.
IMMUNOSUPPRESSION_POINTS = 18
TEMPERATURE_LOW_CEL, TEMPERATURE_HIGH_CEL = 38.4, 39.4          # 38.4 <= T <= 39.4 -> 33
TEMPERATURE_POINTS = (0, 33, 49)
ORGANOMEGALY_POINTS = (0, 23, 38)                                # none / liver or spleen / both
HEMOGLOBIN_AT_MOST_G_DL = 9.2
WBC_AT_MOST_10_9_L = 5.0
PLATELETS_AT_MOST_10_9_L = 110.0
CYTOPENIA_POINTS = {0: 0, 1: 0, 2: 24, 3: 34}                   # by number of lineages
FERRITIN_LOW_NG_ML, FERRITIN_HIGH_NG_ML = 2000.0, 6000.0         # 2000 <= F <= 6000 -> 35
FERRITIN_POINTS = (0, 35, 50)
TG_LOW_MMOL_L, TG_HIGH_MMOL_L = 1.5, 4.0                         # 1.5 <= TG <= 4 -> 44
TG_POINTS = (0, 44, 64)
FIBRINOGEN_AT_MOST_G_L = 2.5
FIBRINOGEN_POINTS = 30
AST_AT_LEAST_IU_L = 30.0
AST_POINTS = 19
MARROW_HEMOPHAGOCYTOSIS_POINTS = 35

#: §2.3 published table: (HScore row, P(HPS) % as printed). The first row means "<= 90 -> < 1 %",
#: the last ">= 250 -> > 99 %".
PROBABILITY_TABLE: tuple[tuple[int, str], ...] = (
    (90, "<1"), (100, "1"), (110, "3"), (120, "5"), (130, "9"), (140, "16"), (150, "25"),
    (160, "40"), (170, "54"), (180, "70"), (190, "80"), (200, "88"), (210, "93"), (220, "96"),
    (230, "98"), (240, "99"), (250, ">99"),
)
#: Project fit to the table (§2.3): logit(p) = intercept + slope x HScore. Not a published formula.
FIT_INTERCEPT = -10.538
FIT_SLOPE = 0.06283

# -- inputs -----------------------------------------------------------------------------------
IMMUNOSUPPRESSION = FeatureSpec("immunosuppression", "any", CLINICAL_LOOKBACK_HOURS, "condition")
TEMPERATURE = FeatureSpec("temperature", "max", CLINICAL_LOOKBACK_HOURS)
HEPATOMEGALY = FeatureSpec("hepatomegaly", "any", CLINICAL_LOOKBACK_HOURS, "condition")
SPLENOMEGALY = FeatureSpec("splenomegaly", "any", CLINICAL_LOOKBACK_HOURS, "condition")
HEMOGLOBIN = FeatureSpec("hemoglobin", "min", LAB_LOOKBACK_HOURS)
WBC = FeatureSpec("wbc", "min", LAB_LOOKBACK_HOURS)
PLATELETS = FeatureSpec("platelets", "min", LAB_LOOKBACK_HOURS)
FERRITIN = FeatureSpec("ferritin", "max", LAB_LOOKBACK_HOURS)
TRIGLYCERIDES = FeatureSpec("triglycerides", "max", LAB_LOOKBACK_HOURS)
FIBRINOGEN = FeatureSpec("fibrinogen", "min", LAB_LOOKBACK_HOURS)
AST = FeatureSpec("ast", "max", LAB_LOOKBACK_HOURS)
MARROW_HEMOPHAGOCYTOSIS = FeatureSpec("hemophagocytosis_bone_marrow", "any",
                                      CLINICAL_LOOKBACK_HOURS, "condition")

INPUTS: list[FeatureSpec] = [
    IMMUNOSUPPRESSION, TEMPERATURE, HEPATOMEGALY, SPLENOMEGALY, HEMOGLOBIN, WBC, PLATELETS,
    FERRITIN, TRIGLYCERIDES, FIBRINOGEN, AST, MARROW_HEMOPHAGOCYTOSIS,
]

_NULL_INT = ibis.null("int64")


def _banded(value, low: float, high: float, points: tuple[int, int, int]):
    """Three bands ``< low``, ``low <= v <= high``, ``> high``; NULL when the value is missing."""
    return ibis.cases((value < low, points[0]), (value <= high, points[1]),
                      (value > high, points[2]), else_=_NULL_INT)


def _flag(condition, points: int):
    """``points`` when TRUE, 0 when FALSE, NULL when unknown."""
    return ibis.cases((condition, points), (~condition, 0), else_=_NULL_INT)


def _cytopenia_points(lineages: ibis.Value):
    return ibis.cases(*((lineages == n, p) for n, p in CYTOPENIA_POINTS.items()),
                      else_=_NULL_INT)


def triglycerides_mmol_l(t: ibis.Table) -> ibis.Value:
    """Worst (highest) TG in mmol/L rounded to 2 dp (§2.2 notes, §12.11)."""
    return native(t[TRIGLYCERIDES.column], TRIGLYCERIDES.variable, TG_NATIVE_UNIT,
                  TG_MMOL_L_DIGITS)


def fibrinogen_g_l(t: ibis.Table) -> ibis.Value:
    """Worst (lowest) fibrinogen in g/L rounded to 2 dp (§2.2 notes, §12.11)."""
    return native(t[FIBRINOGEN.column], FIBRINOGEN.variable, FIBRINOGEN_NATIVE_UNIT,
                  FIBRINOGEN_G_L_DIGITS)


def item_points(t: ibis.Table) -> dict[str, tuple[ibis.Value, ibis.Value]]:
    """Observed and maximum possible points per §2.2 item.

    Observed points are NULL when the item is entirely unknown; organomegaly and cytopenias can be
    partly known (observed = from the documented parts, maximum = with every unknown part
    abnormal).
    """
    liver, spleen = t[HEPATOMEGALY.column], t[SPLENOMEGALY.column]
    organs = [liver, spleen]
    organs_known = count_true(organs)
    organs_max = organs_known + count_null(organs)
    organ_points = dict(enumerate(ORGANOMEGALY_POINTS))

    def organ(n):
        return ibis.cases(*((n == k, p) for k, p in organ_points.items()), else_=_NULL_INT)

    lineages = [
        t[HEMOGLOBIN.column] <= HEMOGLOBIN_AT_MOST_G_DL,
        t[WBC.column] <= WBC_AT_MOST_10_9_L,
        t[PLATELETS.column] <= PLATELETS_AT_MOST_10_9_L,
    ]
    lineages_met = count_true(lineages)
    lineages_possible = lineages_met + count_null(lineages)
    all_organs_unknown = liver.isnull() & spleen.isnull()
    all_lineages_unknown = count_null(lineages) == len(lineages)

    fully_known_items = {
        "immunosuppression": (_flag(t[IMMUNOSUPPRESSION.column], IMMUNOSUPPRESSION_POINTS),
                              IMMUNOSUPPRESSION_POINTS),
        "temperature": (_banded(t[TEMPERATURE.column], TEMPERATURE_LOW_CEL,
                                TEMPERATURE_HIGH_CEL, TEMPERATURE_POINTS),
                        max(TEMPERATURE_POINTS)),
        "ferritin": (_banded(t[FERRITIN.column], FERRITIN_LOW_NG_ML, FERRITIN_HIGH_NG_ML,
                             FERRITIN_POINTS), max(FERRITIN_POINTS)),
        "triglycerides": (_banded(triglycerides_mmol_l(t), TG_LOW_MMOL_L, TG_HIGH_MMOL_L,
                                  TG_POINTS), max(TG_POINTS)),
        "fibrinogen": (_flag(fibrinogen_g_l(t) <= FIBRINOGEN_AT_MOST_G_L, FIBRINOGEN_POINTS),
                       FIBRINOGEN_POINTS),
        "ast": (_flag(t[AST.column] >= AST_AT_LEAST_IU_L, AST_POINTS), AST_POINTS),
        "marrow_hemophagocytosis": (_flag(t[MARROW_HEMOPHAGOCYTOSIS.column],
                                          MARROW_HEMOPHAGOCYTOSIS_POINTS),
                                    MARROW_HEMOPHAGOCYTOSIS_POINTS),
    }
    items = {name: (observed, observed.coalesce(ibis.literal(top, type="int64")))
             for name, (observed, top) in fully_known_items.items()}
    items["organomegaly"] = (all_organs_unknown.ifelse(_NULL_INT, organ(organs_known)),
                             organ(organs_max))
    items["cytopenias"] = (all_lineages_unknown.ifelse(_NULL_INT,
                                                       _cytopenia_points(lineages_met)),
                           _cytopenia_points(lineages_possible))
    order = ["immunosuppression", "temperature", "organomegaly", "cytopenias", "ferritin",
             "triglycerides", "fibrinogen", "ast", "marrow_hemophagocytosis"]
    return {name: items[name] for name in order}


def totals(t: ibis.Table) -> tuple[ibis.Value, ibis.Value]:
    """(observed points with missing items scored 0, maximum possible points) (§2.4)."""
    observed = ibis.literal(0, type="int64")
    maximum = ibis.literal(0, type="int64")
    for item_observed, item_maximum in item_points(t).values():
        observed = observed + item_observed.fill_null(0)
        maximum = maximum + item_maximum
    return observed, maximum


def positive(observed: ibis.Value, maximum: ibis.Value, cutoff: float = CUTOFF) -> ibis.Value:
    """'met' if observed >= cutoff, 'not_met' if max possible < cutoff, else 'unknown' (§2.4)."""
    return ibis.cases((observed >= cutoff, MET), (maximum < cutoff, NOT_MET), else_=UNKNOWN)


def probability_band(points: ibis.Value) -> tuple[ibis.Value, ibis.Value, ibis.Value]:
    """Published §2.3 band: the table rows at or below and at or above the score.

    Returns (label, low %, high %). Labels use the printed values ('3–5%' between rows, '54%' on
    an exact row, '<1%' at or below 90, '>99%' at or above 250); for the numeric bounds '<1' is
    0–1 and '>99' is 99–100. The table rows are 10 points apart, so the bracketing rows are found
    arithmetically and looked up in an array literal (a short expression instead of one branch
    per row).
    """
    rows = [row for row, _ in PROBABILITY_TABLE]
    step = rows[1] - rows[0]
    assert rows == list(range(rows[0], rows[-1] + 1, step)), "table rows must be equally spaced"
    clamped = ibis.least(ibis.greatest(points, rows[0]), rows[-1])
    position = (clamped - rows[0]) / step
    # int32: Spark's element_at takes an INT index (BIGINT fails analysis); DuckDB accepts both.
    low_index = position.floor().cast("int32")
    high_index = position.ceil().cast("int32")
    printed = [p for _, p in PROBABILITY_TABLE]

    def lookup(index, values, type_):
        return typed(ibis.literal(values, type=f"array<{type_}>")[index], type_)

    low_text = lookup(low_index, printed, "string")
    high_text = lookup(high_index, printed, "string")
    label = (low_index == high_index).ifelse(low_text + "%", low_text + "–" + high_text + "%")
    low = lookup(low_index, [_bounds(p)[0] for p in printed], "float64")
    high = lookup(high_index, [_bounds(p)[1] for p in printed], "float64")
    return label, low, high


def _bounds(printed: str) -> tuple[float, float]:
    """Numeric (low, high) % of one printed table value: '<1' -> (0, 1), '>99' -> (99, 100)."""
    if printed.startswith("<"):
        return 0.0, float(printed[1:])
    if printed.startswith(">"):
        return float(printed[1:]), 100.0
    return float(printed), float(printed)


def probability_fit_pct(points: ibis.Value) -> ibis.Value:
    """Project approximation to the §2.3 table, in %: 100 / (1 + exp(-(−10.538 + 0.06283·s)))."""
    return 100.0 / (1.0 + (-(FIT_INTERCEPT + FIT_SLOPE * points)).exp())


def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
    """HScore outputs, every column prefixed ``hscore_`` (§2.2-§2.4).

    * ``hscore_<item>_points``: observed points per item (NULL when the item is unknown);
    * ``hscore_points``: observed total (missing items 0, as calculators do);
    * ``hscore_max_possible``: total with every missing item at its maximum;
    * ``hscore_ge_169``: 'met' / 'not_met' / 'unknown';
    * ``hscore_probability_band`` (+ ``_low_pct`` / ``_high_pct``): published table band of the
      observed total;
    * ``hscore_probability_fit_approx_pct``: project fit to the table, an approximation only;
    * ``hscore_tg_mmol_l``, ``hscore_fibrinogen_g_l``: native values compared;
    * ``hscore_missing``, ``hscore_n_missing``: missing inputs.
    """
    out: dict[str, ibis.Value] = {}
    for item, (observed, _maximum) in item_points(t).items():
        out[f"{NAME}_{item}_points"] = observed
    observed, maximum = totals(t)
    out[f"{NAME}_points"] = observed
    out[f"{NAME}_max_possible"] = maximum
    out[f"{NAME}_ge_{CUTOFF}"] = positive(observed, maximum)
    label, low, high = probability_band(observed)
    out[f"{NAME}_probability_band"] = label
    out[f"{NAME}_probability_band_low_pct"] = low
    out[f"{NAME}_probability_band_high_pct"] = high
    out[f"{NAME}_probability_fit_approx_pct"] = probability_fit_pct(observed)
    out[f"{NAME}_tg_mmol_l"] = triglycerides_mmol_l(t)
    out[f"{NAME}_fibrinogen_g_l"] = fibrinogen_g_l(t)
    inputs = {s.variable: t[s.column] for s in INPUTS}
    out[f"{NAME}_missing"] = missing_list(inputs)
    out[f"{NAME}_n_missing"] = count_null(list(inputs.values()))
    return out
