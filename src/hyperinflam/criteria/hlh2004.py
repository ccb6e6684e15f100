"""HLH-2004 diagnostic criteria (clinical reference §1; §12.10-§12.12, §12.15, §12.16, §12.19,
§12.21, §12.38).

Primary publication: Henter JI, Horne A, Aricó M, et al. *HLH-2004: Diagnostic and therapeutic
guidelines for hemophagocytic lymphohistiocytosis.* Pediatr Blood Cancer 2007;48(2):124-131.
doi:10.1002/pbc.21039.

HLH is diagnosed by (A) a molecular diagnosis or (B) at least 5 of 8 criteria (§1.1). (A) shows a
predisposition, not active hyperinflammation, so it is a separate output (``hlh2004_molecular``),
and ``hlh2004_result`` is the 5-of-8 rule (B).

Tri-state (§1.4): each criterion is 'met' / 'not_met' / 'unknown'; the 5-of-8 result is 'met' when
``met_count >= 5``, 'not_met' when ``met_count + unknown_count < 5``, otherwise 'indeterminate'.
An unperformed test is never "not met".

Native units (§12.11): triglycerides in mmol/L rounded to 2 dp, fibrinogen in g/L rounded to
2 dp, haemoglobin in g/L rounded to 0 dp (factors from vocabulary/units.csv), then compared with the Henter 2007 edges (>=, <=, >=, >=;
§1.2 notes and §12.12).

Not implemented here (reported elsewhere or needing inputs the engine lacks): the "fasting" TG
co-exposure warning (propofol / parenteral lipid, §12.19) needs those drugs in
vocabulary/drugs.csv; ANC derived from WBC x differential (§11.1, §12.17) belongs to derived
measurements.
"""

from __future__ import annotations

import ibis

from hyperinflam.criteria._toolkit import (
    at_least, count_null, count_result, count_true, missing_list, native, tristate)
from hyperinflam.features import FeatureSpec

NAME = "hlh2004"
TITLE = "HLH-2004 diagnostic criteria (Henter 2007)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "HLH-2004"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "hlh2004_result"
#: Criterion group (screening.meets): the hyperinflammatory phenotype.
GROUP = "phenotype"
#: No validated age range is declared: the phenotype criteria are evaluated at every age (their
#: populations are in the clinical reference; HScore is an adult derivation, §2.1).
VALIDATED_AGE_MONTHS = None
REFERENCE = ("clinical reference §1; Henter JI et al. Pediatr Blood Cancer 2007;48(2):124-131, "
             "doi:10.1002/pbc.21039")

# -- named settings (clinical reference §1.2, §1.3, §12) -----------------------------------------
#: Worst lab value in the preceding 72 h (§1.3, §12.10).
LAB_LOOKBACK_HOURS: float | None = 72
#: Clinical findings (fever, splenomegaly, haemophagocytosis, NK, molecular) count if documented in
#: the stay up to the evaluation time (§1.3): lookback None = from PICU admission.
CLINICAL_LOOKBACK_HOURS: float | None = None
#: Criterion 1: Henter 2007 prints "fever" without a number; Jordan 2011 and implementations use
#: >= 38.5 °C (§1.2 criterion 1, §12.15; VERIFY). Compared with the maximum temperature.
FEVER_THRESHOLD_CEL = 38.5
#: Criterion 3 (§1.2): Hb < 90 g/L; infants younger than 4 weeks Hb < 100 g/L.
HEMOGLOBIN_BELOW_G_L = 90.0
HEMOGLOBIN_BELOW_G_L_UNDER_4_WEEKS = 100.0
#: "< 4 weeks" read as age in completed days < 28 at the evaluation time (§12.14).
NEONATE_AGE_DAYS_BELOW = 28
PLATELETS_BELOW_10_9_L = 100.0
ANC_BELOW_10_9_L = 1.0
CYTOPENIA_LINEAGES_REQUIRED = 2
#: Criterion 4 (§1.2): TG >= 3.0 mmol/L and/or fibrinogen <= 1.5 g/L.
TRIGLYCERIDES_AT_LEAST_MMOL_L = 3.0
FIBRINOGEN_AT_MOST_G_L = 1.5
#: Criterion 7: ferritin >= 500 ng/mL; criterion 8: sCD25 >= 2400 U/mL.
FERRITIN_AT_LEAST_NG_ML = 500.0
SCD25_AT_LEAST_U_ML = 2400.0
CRITERIA_REQUIRED = 5
#: Native units of Henter 2007 (their factors: vocabulary/units.csv, §11.1) and their reporting
#: precision (§12.11).
TG_NATIVE_UNIT = "mmol/L"
TG_MMOL_L_DIGITS = 2
FIBRINOGEN_NATIVE_UNIT = "g/L"
FIBRINOGEN_G_L_DIGITS = 2
HEMOGLOBIN_NATIVE_UNIT = "g/L"
HEMOGLOBIN_G_L_DIGITS = 0
#: Criterion 5 sites (§12.38): bone marrow, spleen, lymph nodes (Henter 2007). Some later
#: reproductions add liver; add "hemophagocytosis_liver" here only if a site configures it.
HEMOPHAGOCYTOSIS_CONCEPTS: tuple[str, ...] = (
    "hemophagocytosis_bone_marrow", "hemophagocytosis_spleen", "hemophagocytosis_lymph_node")

# -- inputs ---------------------------------------------------------------------------------------
TEMPERATURE = FeatureSpec("temperature", "max", CLINICAL_LOOKBACK_HOURS)
SPLENOMEGALY = FeatureSpec("splenomegaly", "any", CLINICAL_LOOKBACK_HOURS, "condition")
HEMOGLOBIN = FeatureSpec("hemoglobin", "min", LAB_LOOKBACK_HOURS)
PLATELETS = FeatureSpec("platelets", "min", LAB_LOOKBACK_HOURS)
ANC = FeatureSpec("anc", "min", LAB_LOOKBACK_HOURS)
TRIGLYCERIDES = FeatureSpec("triglycerides", "max", LAB_LOOKBACK_HOURS)
FIBRINOGEN = FeatureSpec("fibrinogen", "min", LAB_LOOKBACK_HOURS)
HEMOPHAGOCYTOSIS = tuple(FeatureSpec(c, "any", CLINICAL_LOOKBACK_HOURS, "condition")
                         for c in HEMOPHAGOCYTOSIS_CONCEPTS)
LOW_NK_ACTIVITY = FeatureSpec("low_nk_activity", "any", CLINICAL_LOOKBACK_HOURS, "condition")
FERRITIN = FeatureSpec("ferritin", "max", LAB_LOOKBACK_HOURS)
SCD25 = FeatureSpec("scd25", "max", LAB_LOOKBACK_HOURS)
HLH_GENE_VARIANT = FeatureSpec("hlh_gene_variant", "any", CLINICAL_LOOKBACK_HOURS, "condition")

INPUTS: list[FeatureSpec] = [
    TEMPERATURE, SPLENOMEGALY, HEMOGLOBIN, PLATELETS, ANC, TRIGLYCERIDES, FIBRINOGEN,
    *HEMOPHAGOCYTOSIS, LOW_NK_ACTIVITY, FERRITIN, SCD25, HLH_GENE_VARIANT,
]


def hemoglobin_g_l(t: ibis.Table) -> ibis.Value:
    """Worst Hb in g/L (native unit of HLH-2004), rounded to 0 dp (§12.11)."""
    return native(t[HEMOGLOBIN.column], HEMOGLOBIN.variable, HEMOGLOBIN_NATIVE_UNIT,
                  HEMOGLOBIN_G_L_DIGITS)


def triglycerides_mmol_l(t: ibis.Table) -> ibis.Value:
    """Worst (highest) TG in mmol/L rounded to 2 dp (§1.2 criterion 4, §12.11)."""
    return native(t[TRIGLYCERIDES.column], TRIGLYCERIDES.variable, TG_NATIVE_UNIT,
                  TG_MMOL_L_DIGITS)


def fibrinogen_g_l(t: ibis.Table) -> ibis.Value:
    """Worst (lowest) fibrinogen in g/L rounded to 2 dp (§1.2 criterion 4, §12.11)."""
    return native(t[FIBRINOGEN.column], FIBRINOGEN.variable, FIBRINOGEN_NATIVE_UNIT,
                  FIBRINOGEN_G_L_DIGITS)


def criteria_conditions(t: ibis.Table) -> tuple[dict[str, ibis.Value], list[ibis.Value]]:
    """The eight criteria of §1.2 as nullable booleans (TRUE met, FALSE not met, NULL unknown),
    and the three cytopenia lineages of criterion 3 (Hb, platelets, ANC; §12.16)."""
    hb_threshold = (t.age_days < NEONATE_AGE_DAYS_BELOW).ifelse(
        HEMOGLOBIN_BELOW_G_L_UNDER_4_WEEKS, HEMOGLOBIN_BELOW_G_L)
    lineages = [
        hemoglobin_g_l(t) < hb_threshold,
        t[PLATELETS.column] < PLATELETS_BELOW_10_9_L,
        t[ANC.column] < ANC_BELOW_10_9_L,
    ]
    hemophagocytosis = t[HEMOPHAGOCYTOSIS[0].column]
    for spec in HEMOPHAGOCYTOSIS[1:]:
        hemophagocytosis = hemophagocytosis | t[spec.column]
    return {
        "fever": t[TEMPERATURE.column] >= FEVER_THRESHOLD_CEL,
        "splenomegaly": t[SPLENOMEGALY.column],
        "cytopenias": at_least(lineages, CYTOPENIA_LINEAGES_REQUIRED),
        "tg_or_fibrinogen": (triglycerides_mmol_l(t) >= TRIGLYCERIDES_AT_LEAST_MMOL_L)
        | (fibrinogen_g_l(t) <= FIBRINOGEN_AT_MOST_G_L),
        "hemophagocytosis": hemophagocytosis,
        "low_nk_activity": t[LOW_NK_ACTIVITY.column],
        "ferritin": t[FERRITIN.column] >= FERRITIN_AT_LEAST_NG_ML,
        "scd25": t[SCD25.column] >= SCD25_AT_LEAST_U_ML,
    }, lineages


def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
    """HLH-2004 outputs, every column prefixed ``hlh2004_`` (§1.2-§1.4).

    * ``hlh2004_<criterion>`` for the eight criteria: 'met' / 'not_met' / 'unknown';
    * ``hlh2004_cytopenia_lineages_met`` / ``..._unknown``: lineage counts of criterion 3;
    * ``hlh2004_tg_mmol_l``, ``hlh2004_fibrinogen_g_l``, ``hlh2004_hemoglobin_g_l``: the native
      values compared (rounded as in §12.11);
    * ``hlh2004_met_count``, ``hlh2004_unknown_count``;
    * ``hlh2004_result``: 5-of-8 rule (B), 'met' / 'not_met' / 'indeterminate';
    * ``hlh2004_molecular``: criterion (A), 'met' when an HLH gene variant is documented,
      'not_met' when a negating result is documented, else 'unknown' (a separate flag:
      predisposition, not "HLH now", §1.1);
    * ``hlh2004_missing``: comma-separated missing inputs.
    """
    conditions, lineages = criteria_conditions(t)
    values = list(conditions.values())
    out: dict[str, ibis.Value] = {f"{NAME}_{k}": tristate(v) for k, v in conditions.items()}
    out[f"{NAME}_cytopenia_lineages_met"] = count_true(lineages)
    out[f"{NAME}_cytopenia_lineages_unknown"] = count_null(lineages)
    out[f"{NAME}_hemoglobin_g_l"] = hemoglobin_g_l(t)
    out[f"{NAME}_tg_mmol_l"] = triglycerides_mmol_l(t)
    out[f"{NAME}_fibrinogen_g_l"] = fibrinogen_g_l(t)
    out[f"{NAME}_met_count"] = count_true(values)
    out[f"{NAME}_unknown_count"] = count_null(values)
    out[f"{NAME}_result"] = count_result(at_least(values, CRITERIA_REQUIRED))
    out[f"{NAME}_molecular"] = tristate(t[HLH_GENE_VARIANT.column])
    out[f"{NAME}_missing"] = missing_list({s.variable: t[s.column] for s in INPUTS})
    return out
