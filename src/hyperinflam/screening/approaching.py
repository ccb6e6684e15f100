"""Which criteria a stay meets, and which it is approaching, from the screen's own columns.

No new clinical number lives here: every threshold is a named constant of the criterion module
(clinical reference §1.1 HLH-2004 5 of 8, §2.2 HScore cutoff 169, §5.1 Phoenix sepsis >= 2 points),
and the margins below are counted in the criterion's own units (one item, one criterion, one
point). The web census and the JSON API read these columns; the web layer adds no rule.

"Approaching" (documented in docs/web.md) means: not met, and within the margin of the threshold:

* HScore: observed points >= ``hscore.CUTOFF`` - the smallest non-zero item weight of §2.2
  (``HSCORE_MARGIN_POINTS`` = 18, immunosuppression): one more abnormal finding could reach 169;
* HLH-2004: ``met_count >= hlh2004.CRITERIA_REQUIRED - HLH2004_MARGIN_CRITERIA`` (4 of 8);
* Phoenix: ``phoenix_score >= PHOENIX_SEPSIS_POINTS - PHOENIX_MARGIN_POINTS`` (1 point) while
  ``phoenix_sepsis`` is not met.

"Meets" is the one rule of :mod:`hyperinflam.screening.meets` (each criterion's RESULT column
'met', by group: phenotype, and organ dysfunction and severity); "approaching" is shown for a
stay that meets no phenotype criterion.

Missing inputs and what they could change (``missing_input_notes``) are read from the criteria's
outputs (``hscore_<item>_points`` NULL, ``hlh2004_<criterion>`` 'unknown', ``<name>_missing``) and
the points tables of the criterion modules.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from hyperinflam.criteria import hlh2004, hscore, phoenix
from hyperinflam.screening import meets

MET = "met"
#: §2.2: the smallest non-zero item weight (immunosuppression 18 points).
HSCORE_ITEM_MAXIMA: dict[str, int] = {
    "immunosuppression": hscore.IMMUNOSUPPRESSION_POINTS,
    "temperature": max(hscore.TEMPERATURE_POINTS),
    "organomegaly": max(hscore.ORGANOMEGALY_POINTS),
    "cytopenias": max(hscore.CYTOPENIA_POINTS.values()),
    "ferritin": max(hscore.FERRITIN_POINTS),
    "triglycerides": max(hscore.TG_POINTS),
    "fibrinogen": hscore.FIBRINOGEN_POINTS,
    "ast": hscore.AST_POINTS,
    "marrow_hemophagocytosis": hscore.MARROW_HEMOPHAGOCYTOSIS_POINTS,
}
HSCORE_MARGIN_POINTS: int = min(HSCORE_ITEM_MAXIMA.values())
HSCORE_MET_COLUMN = f"hscore_ge_{hscore.CUTOFF}"
#: One criterion short of HLH-2004's 5 of 8 (§1.1).
HLH2004_MARGIN_CRITERIA: int = 1
#: Phoenix sepsis: score >= 2 with suspected infection (§5.1), from the criterion module.
PHOENIX_SEPSIS_POINTS: int = phoenix.SEPSIS_SCORE_THRESHOLD
PHOENIX_MARGIN_POINTS: int = 1


#: Human labels of the HScore items (§2.2) and HLH-2004 criteria (§1.2) for missing-input notes.
HSCORE_ITEM_LABELS = {
    "immunosuppression": "known immunosuppression", "temperature": "temperature",
    "organomegaly": "organomegaly (liver / spleen)", "cytopenias": "cytopenias (Hb, WBC, platelets)",
    "ferritin": "ferritin", "triglycerides": "triglycerides", "fibrinogen": "fibrinogen",
    "ast": "AST", "marrow_hemophagocytosis": "bone marrow haemophagocytosis (marrow not examined)",
}
HLH2004_LABELS = {
    "fever": "fever", "splenomegaly": "splenomegaly", "cytopenias": "cytopenias (Hb, platelets, ANC)",
    "tg_or_fibrinogen": "triglycerides or fibrinogen", "hemophagocytosis":
    "haemophagocytosis (marrow, spleen or lymph node)", "low_nk_activity": "NK-cell activity",
    "ferritin": "ferritin", "scd25": "soluble CD25",
}


#: Labels of the inputs a criterion names in ``<name>_missing`` that are not variables of
#: vocabulary/variables.csv (derived values, condition concepts, supports, drug doses); a variable
#: takes its label from the dictionary (the ``labels`` given to :func:`missing_input_notes`).
INPUT_LABELS = {
    "pf_ratio": "PaO2/FiO2 ratio", "sf_ratio": "SpO2/FiO2 ratio",
    "gcs": "Glasgow coma scale total", "pupils": "pupil reaction (bilaterally fixed pupils)",
    "pupils_fixed_bilateral": "pupil reaction (bilaterally fixed pupils)",
    "vasoactive": "vasoactive medication", "invasive_ventilation": "invasive ventilation",
    "age_months": "age", "dopamine_dose": "dopamine dose", "epinephrine_dose":
    "epinephrine dose", "norepinephrine_dose": "norepinephrine dose",
    "glucose_max": "glucose (highest)", "glucose_min": "glucose (lowest)",
    "infection": "suspected infection", "immunosuppression": "known immunosuppression",
    "hemophagocytosis_bone_marrow": "haemophagocytosis in bone marrow",
    "hemophagocytosis_spleen": "haemophagocytosis in spleen",
    "hemophagocytosis_lymph_node": "haemophagocytosis in lymph node",
    "low_nk_activity": "NK-cell activity", "hlh_gene_variant": "HLH gene variant",
    "hemorrhagic_manifestations": "haemorrhagic manifestations",
    "cns_involvement": "CNS involvement", "systemic_jia": "systemic JIA",
    "active_arthritis": "active arthritis",
}


def input_label(name: str, labels: dict[str, str] | None = None) -> str:
    """A missing input as people name it: the dictionary's label of a variable, else
    :data:`INPUT_LABELS`, else the name with spaces (never an internal name with underscores)."""
    labels = labels or {}
    return labels.get(name) or INPUT_LABELS.get(name) or name.replace("_", " ")


def status_columns(t: ir.Table) -> dict[str, ir.Value]:
    """The census status over a screen table (ibis, set-based): the one "meets" rule of
    :mod:`hyperinflam.screening.meets` (``meets_phenotype``, ``phenotype_met``,
    ``meets_severity``, ``severity_met``), and ``approaching_any`` / ``approaching`` (NAMEs,
    comma-separated): a criterion within its margin and not met, for a stay meeting no phenotype
    criterion."""
    cols = list(t.columns)
    out = meets.status_columns(t)
    near: list[tuple[str, ir.BooleanValue]] = []
    if {"hscore_points", HSCORE_MET_COLUMN} <= set(cols):
        near.append(("hscore", (t[HSCORE_MET_COLUMN] != MET)
                     & (t.hscore_points >= hscore.CUTOFF - HSCORE_MARGIN_POINTS)))
    if {"hlh2004_met_count", "hlh2004_result"} <= set(cols):
        near.append(("hlh2004", (t.hlh2004_result != MET) & (
            t.hlh2004_met_count >= hlh2004.CRITERIA_REQUIRED - HLH2004_MARGIN_CRITERIA)))
    if {"phoenix_score", "phoenix_sepsis"} <= set(cols):
        near.append(("phoenix", (t.phoenix_sepsis != MET) & (
            t.phoenix_score >= PHOENIX_SEPSIS_POINTS - PHOENIX_MARGIN_POINTS)))
    approaching_any = ibis.literal(False)
    near_names = ibis.literal("")
    for name, cond in near:
        cond = cond.fill_null(False)
        approaching_any = approaching_any | cond
        near_names = near_names + cond.ifelse("," + name, "")
    out.update(approaching_any=approaching_any & ~out["meets_phenotype"],
               approaching=near_names.substr(1))
    return out


def missing_input_notes(row: dict, labels: dict[str, str] | None = None) -> list[dict]:
    """What each missing input could change, for one evaluated row (a dict of screen columns).

    Returns dicts with ``criterion``, ``input`` and ``effect``; numbers come from the criteria
    (HScore §2.2 item maxima, HLH-2004 §1.1 count, Phoenix/pSOFA §12.9 assumed normal).
    """
    labels = labels or {}
    notes: list[dict] = []
    if "hscore_points" in row:
        for item, top in HSCORE_ITEM_MAXIMA.items():
            if _is_null(row.get(f"hscore_{item}_points")):
                notes.append({"criterion": "HScore", "input": HSCORE_ITEM_LABELS[item],
                              "effect": f"up to {top} HScore points unknown"})
        gap = _num(row.get("hscore_max_possible")) - _num(row.get("hscore_points"))
        if gap and gap > 0:
            notes.append({"criterion": "HScore", "input": "all missing items together",
                          "effect": f"observed {int(_num(row['hscore_points']))}, up to "
                                    f"{int(_num(row['hscore_max_possible']))} possible "
                                    f"(cutoff {hscore.CUTOFF})"})
    if "hlh2004_met_count" in row:
        unknown = [k for k in HLH2004_LABELS if row.get(f"hlh2004_{k}") == "unknown"]
        for k in unknown:
            notes.append({"criterion": "HLH-2004", "input": HLH2004_LABELS[k],
                          "effect": "1 of 8 criteria unknown"})
        if unknown:
            notes.append({"criterion": "HLH-2004", "input": "all unknown criteria together",
                          "effect": f"{int(_num(row['hlh2004_met_count']))} met + {len(unknown)} "
                                    f"unknown of the {hlh2004.CRITERIA_REQUIRED} needed"})
    for name, title in (("phoenix", "Phoenix"), ("psofa", "pSOFA")):
        for var in _split(row.get(f"{name}_missing")):
            notes.append({"criterion": title, "input": input_label(var, labels),
                          "effect": "not measured: scored as normal (0 points), as the authors "
                                    "specify; the score may be higher"})
    return notes


def _split(text) -> list[str]:
    if _is_null(text) or not text:
        return []
    return [p for p in str(text).split(",") if p]


def _is_null(value) -> bool:
    try:
        return value is None or value != value  # NaN / NA
    except (TypeError, ValueError):  # pandas NA comparisons
        import pandas as pd

        return bool(pd.isna(value))


def _num(value) -> float:
    return 0.0 if _is_null(value) else float(value)

