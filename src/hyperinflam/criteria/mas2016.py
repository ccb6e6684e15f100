"""2016 EULAR/ACR/PRINTO classification criteria for MAS in systemic JIA (clinical reference §3.1;
§12.10, §12.11, §12.12, §12.15).

Primary publication: Ravelli A, Minoia F, Davì S, et al. *2016 Classification Criteria for
Macrophage Activation Syndrome Complicating Systemic Juvenile Idiopathic Arthritis.* Ann Rheum Dis
2016;75(3):481-489, doi:10.1136/annrheumdis-2015-208982 (also Arthritis Rheumatol
2016;68(3):566-576, doi:10.1002/art.39332).

Rule: a febrile patient with known or suspected sJIA is classified as MAS if ferritin > 684 ng/mL
and any 2 or more of platelets <= 181 x 10⁹/L, AST > 48 U/L, triglycerides > 156 mg/dL,
fibrinogen <= 360 mg/dL. Evaluated in the native units mg/dL (§11.1, §12.11).

Missing values (engine rule of §3.1; the authors state none, VERIFY):

* ``mas2016_lab_pattern``: ferritin missing -> 'indeterminate'; ferritin <= 684 -> 'not_met';
  ferritin > 684 -> 'met' if >= 2 of 4 met, 'not_met' if met + unknown < 2, else
  'indeterminate'.
* ``mas2016_result`` (classification) additionally requires fever and known/suspected sJIA; they
  are 'unknown' when not documented, and the classification is then 'indeterminate' with the lab
  pattern still reported. Outside known/suspected sJIA a present pattern is reported as "criteria
  pattern present (population outside validation)" (``mas2016_note``).
"""

from __future__ import annotations

import ibis

from hyperinflam.criteria._toolkit import (
    INDETERMINATE, MET, NOT_MET, at_least, count_null, count_true, missing_list, tristate)
from hyperinflam.features import FeatureSpec

NAME = "mas2016"
TITLE = "MAS in systemic JIA, 2016 EULAR/ACR/PRINTO classification criteria (Ravelli 2016)"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "MAS-2016"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "mas2016_result"
#: Criterion group (screening.meets): the hyperinflammatory phenotype.
GROUP = "phenotype"
#: No validated age range is declared: the phenotype criteria are evaluated at every age (their
#: populations are in the clinical reference; HScore is an adult derivation, §2.1).
VALIDATED_AGE_MONTHS = None
REFERENCE = ("clinical reference §3.1; Ravelli A et al. Ann Rheum Dis 2016;75(3):481-489, "
             "doi:10.1136/annrheumdis-2015-208982")

# -- named settings -------------------------------------------------------------------------
#: Worst lab value in the preceding 72 h (§12.10).
LAB_LOOKBACK_HOURS: float | None = 72
#: Fever and sJIA status over the stay up to the evaluation time (§12.10, §12.15).
CLINICAL_LOOKBACK_HOURS: float | None = None
#: "Febrile" = maximum temperature >= 38.0 °C (§12.15: project choice, VERIFY).
FEVER_THRESHOLD_CEL = 38.0
#: §3.1 thresholds in native units.
FERRITIN_ABOVE_NG_ML = 684.0
PLATELETS_AT_MOST_10_9_L = 181.0
AST_ABOVE_U_L = 48.0
TRIGLYCERIDES_ABOVE_MG_DL = 156.0
FIBRINOGEN_AT_MOST_MG_DL = 360.0
LAB_COMPONENTS_REQUIRED = 2
OUTSIDE_POPULATION_NOTE = "criteria pattern present (population outside validation)"

# -- inputs ---------------------------------------------------------------------------------
TEMPERATURE = FeatureSpec("temperature", "max", CLINICAL_LOOKBACK_HOURS)
SYSTEMIC_JIA = FeatureSpec("systemic_jia", "any", CLINICAL_LOOKBACK_HOURS, "condition")
FERRITIN = FeatureSpec("ferritin", "max", LAB_LOOKBACK_HOURS)
PLATELETS = FeatureSpec("platelets", "min", LAB_LOOKBACK_HOURS)
AST = FeatureSpec("ast", "max", LAB_LOOKBACK_HOURS)
TRIGLYCERIDES = FeatureSpec("triglycerides", "max", LAB_LOOKBACK_HOURS)
FIBRINOGEN = FeatureSpec("fibrinogen", "min", LAB_LOOKBACK_HOURS)

INPUTS: list[FeatureSpec] = [TEMPERATURE, SYSTEMIC_JIA, FERRITIN, PLATELETS, AST, TRIGLYCERIDES,
                             FIBRINOGEN]


def lab_components(t: ibis.Table) -> dict[str, ibis.Value]:
    """The four "2 of" components of §3.1 as nullable booleans."""
    return {
        "platelets": t[PLATELETS.column] <= PLATELETS_AT_MOST_10_9_L,
        "ast": t[AST.column] > AST_ABOVE_U_L,
        "triglycerides": t[TRIGLYCERIDES.column] > TRIGLYCERIDES_ABOVE_MG_DL,
        "fibrinogen": t[FIBRINOGEN.column] <= FIBRINOGEN_AT_MOST_MG_DL,
    }


def lab_pattern(t: ibis.Table) -> ibis.Value:
    """Nullable boolean: ferritin > 684 and >= 2 of 4 (§3.1 engine rule for missing values)."""
    ferritin = t[FERRITIN.column] > FERRITIN_ABOVE_NG_ML
    return ferritin & at_least(list(lab_components(t).values()), LAB_COMPONENTS_REQUIRED)


def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
    """MAS-2016 outputs, every column prefixed ``mas2016_`` (§3.1).

    * ``mas2016_ferritin`` (> 684, mandatory), ``mas2016_platelets``, ``mas2016_ast``,
      ``mas2016_triglycerides``, ``mas2016_fibrinogen``: 'met' / 'not_met' / 'unknown';
    * ``mas2016_lab_met_count`` / ``mas2016_lab_unknown_count``: of the four "2 of" components;
    * ``mas2016_lab_pattern``: 'met' / 'not_met' / 'indeterminate';
    * ``mas2016_fever`` (max temperature >= 38.0 °C), ``mas2016_sjia``: 'met' / 'not_met' /
      'unknown';
    * ``mas2016_result``: classification, 'met' only with fever and sJIA documented; 'not_met'
      when the pattern is absent or the patient is documented afebrile / not sJIA; else
      'indeterminate';
    * ``mas2016_note``: the "population outside validation" note when the pattern is present
      but sJIA is not documented; '' otherwise;
    * ``mas2016_missing``: comma-separated missing inputs.
    """
    components = lab_components(t)
    values = list(components.values())
    ferritin = t[FERRITIN.column] > FERRITIN_ABOVE_NG_ML
    pattern = lab_pattern(t)
    fever = t[TEMPERATURE.column] >= FEVER_THRESHOLD_CEL
    sjia = t[SYSTEMIC_JIA.column]
    classification = pattern & fever & sjia
    out: dict[str, ibis.Value] = {f"{NAME}_ferritin": tristate(ferritin)}
    out.update({f"{NAME}_{k}": tristate(v) for k, v in components.items()})
    out[f"{NAME}_lab_met_count"] = count_true(values)
    out[f"{NAME}_lab_unknown_count"] = count_null(values)
    out[f"{NAME}_lab_pattern"] = ibis.cases((pattern, MET), (~pattern, NOT_MET),
                                            else_=INDETERMINATE)
    out[f"{NAME}_fever"] = tristate(fever)
    out[f"{NAME}_sjia"] = tristate(sjia)
    out[f"{NAME}_result"] = ibis.cases((classification, MET), (~classification, NOT_MET),
                                       else_=INDETERMINATE)
    out[f"{NAME}_note"] = (pattern.fill_null(False) & ~sjia.fill_null(False)).ifelse(
        OUTSIDE_POPULATION_NOTE, "")
    out[f"{NAME}_missing"] = missing_list({s.variable: t[s.column] for s in INPUTS})
    return out
