"""Hyperferritinaemic sepsis and MAS-like features in sepsis: phenotype flags (clinical reference
§4; §12.9, §12.11, §12.27).

None of these is a validated paediatric diagnostic criterion; they are reported as phenotype
flags, each tri-state ('met' / 'not_met' / 'unknown', §4.4: unknown when a required input was not
measured in the window, never "no").

* Hyperferritinaemic sepsis (Carcillo JA et al. Crit Care 2023;27:347,
  doi:10.1186/s13054-023-04628-x; §4.3): sepsis with ferritin > 500 ng/mL. "Sepsis" is taken here
  as a documented suspected infection (event 'infection'); combine with the Phoenix / IPSCC
  outputs for a sepsis definition proper.
* HBD + DIC, "MAS-like features" (Shakoory B et al. Crit Care Med 2016;44(2):275-281,
  doi:10.1097/CCM.0000000000001402; §4.1); also "MAS" in PHENOMS (§4.3). The numeric HBD and DIC
  definitions are **provisional project defaults, VERIFY** (§4.1, §12.27): HBD = total
  bilirubin >= 2.0 mg/dL and (ALT or AST) > 2 x ULN; DIC = platelets < 100 x 10⁹/L and INR > 1.5.
* MALS (Kyriazopoulou E et al. BMC Med 2017;15:172, doi:10.1186/s12916-017-0930-5; §4.2): HScore
  positive and/or HBD + DIC; the HScore cutoff used for "positive" is a setting (169; some report
  151, VERIFY). ``ferritin_gt_4420`` (strict >) is the adult-derived MALS ferritin flag.
* PRECISE/TRIPS allocation pattern (CPCCRN Protocol 90 v1.07; §4.3): ferritin >= 500 ng/mL or
  CRP >= 4 mg/dL (reported for information; the protocol applies it in sepsis-induced MODS).

Carcillo's IPMOF, TAMOF and SMOF phenotypes (§4.3) need research assays (ex vivo TNF response,
ADAMTS13 activity, soluble Fas ligand) that are not vocabulary variables: not implemented.

Window (§4.4): worst value in the preceding 24 h (highest ferritin, CRP, bilirubin, ALT, AST, INR;
lowest platelets).
"""

from __future__ import annotations

import ibis

from hyperinflam.criteria import hscore
from hyperinflam.criteria._toolkit import missing_list, native, tristate
from hyperinflam.features import FeatureSpec

NAME = "hyperferritinemic_sepsis"
TITLE = "Hyperferritinaemic sepsis and MAS-like features (HBD + DIC, MALS): phenotype flags"
#: Short name of the criterion (of its RESULT where it has one) for tables and the census.
LABEL = "Hyperferritinaemic sepsis"
#: The column holding this criterion's overall tri-state result (met / not_met / unknown or
#: indeterminate); the screen's "meets any criterion" reads it.
RESULT = "hyperferritinemic_sepsis_result"
#: Criterion group (screening.meets): the hyperinflammatory phenotype.
GROUP = "phenotype"
#: No validated age range is declared: the phenotype criteria are evaluated at every age (their
#: populations are in the clinical reference; HScore is an adult derivation, §2.1).
VALIDATED_AGE_MONTHS = None
REFERENCE = ("clinical reference §4; Carcillo JA et al. Crit Care 2023;27:347; Shakoory B et al. "
             "Crit Care Med 2016;44(2):275-281; Kyriazopoulou E et al. BMC Med 2017;15:172")

# -- named settings -------------------------------------------------------------------------
#: Worst value in the preceding 24 h (§4.4).
LAB_LOOKBACK_HOURS: float | None = 24
#: Suspected infection: from admission - 48 h to the evaluation time (features contract).
INFECTION_LOOKBACK_HOURS: float | None = None
#: Carcillo 2023: ferritin > 500 ng/mL (strict, §4.5 example C).
HYPERFERRITINEMIA_ABOVE_NG_ML = 500.0
#: Kyriazopoulou 2017: ferritin > 4420 ng/mL (strict, adult-derived).
MALS_FERRITIN_ABOVE_NG_ML = 4420.0
#: MALS "HScore positive" cutoff (§4.2: 169 by default; some report 151, VERIFY).
MALS_HSCORE_CUTOFF = 169
#: Provisional HBD (§4.1, VERIFY): bilirubin >= 2.0 mg/dL and (ALT or AST) > 2 x ULN.
HBD_BILIRUBIN_AT_LEAST_MG_DL = 2.0
HBD_ULN_MULTIPLE = 2.0
#: Upper limits of normal (U/L). ALT 40 follows the §4.5 example B; AST 40 is a project choice
#: (adult-style, not age-specific): VERIFY and configure per laboratory.
ALT_ULN_U_L = 40.0
AST_ULN_U_L = 40.0
#: Provisional DIC (§4.1, VERIFY): platelets < 100 x 10⁹/L and INR > 1.5.
DIC_PLATELETS_BELOW_10_9_L = 100.0
DIC_INR_ABOVE = 1.5
#: PRECISE allocation (§4.3): ferritin >= 500 ng/mL or CRP >= 4 mg/dL (native mg/dL, 2 dp).
PRECISE_FERRITIN_AT_LEAST_NG_ML = 500.0
PRECISE_CRP_AT_LEAST_MG_DL = 4.0
CRP_NATIVE_UNIT = "mg/dL"  # factor: vocabulary/units.csv (§11.1)
CRP_MG_DL_DIGITS = 2

# -- inputs ---------------------------------------------------------------------------------
FERRITIN = FeatureSpec("ferritin", "max", LAB_LOOKBACK_HOURS)
CRP = FeatureSpec("crp", "max", LAB_LOOKBACK_HOURS)
BILIRUBIN = FeatureSpec("bilirubin_total", "max", LAB_LOOKBACK_HOURS)
ALT = FeatureSpec("alt", "max", LAB_LOOKBACK_HOURS)
AST = FeatureSpec("ast", "max", LAB_LOOKBACK_HOURS)
PLATELETS = FeatureSpec("platelets", "min", LAB_LOOKBACK_HOURS)
INR = FeatureSpec("inr", "max", LAB_LOOKBACK_HOURS)
INFECTION = FeatureSpec("infection", "any", INFECTION_LOOKBACK_HOURS, "event")

OWN_INPUTS = [FERRITIN, CRP, BILIRUBIN, ALT, AST, PLATELETS, INR, INFECTION]
#: MALS also needs the HScore inputs.
INPUTS: list[FeatureSpec] = list(dict.fromkeys(OWN_INPUTS + hscore.INPUTS))


def hbd(t: ibis.Table) -> ibis.Value:
    """Provisional hepatobiliary dysfunction (§4.1) as a nullable boolean."""
    transaminase = ((t[ALT.column] > HBD_ULN_MULTIPLE * ALT_ULN_U_L)
                    | (t[AST.column] > HBD_ULN_MULTIPLE * AST_ULN_U_L))
    return (t[BILIRUBIN.column] >= HBD_BILIRUBIN_AT_LEAST_MG_DL) & transaminase


def dic(t: ibis.Table) -> ibis.Value:
    """Provisional disseminated intravascular coagulation (§4.1) as a nullable boolean."""
    return ((t[PLATELETS.column] < DIC_PLATELETS_BELOW_10_9_L)
            & (t[INR.column] > DIC_INR_ABOVE))


def evaluate(t: ibis.Table) -> dict[str, ibis.Value]:
    """Phenotype flags, every column prefixed ``hyperferritinemic_sepsis_`` (§4):

    ``_ferritin_gt_500``, ``_infection``, ``_result`` (hyperferritinaemic sepsis = ferritin > 500
    with suspected infection), ``_ferritin_gt_4420``, ``_hbd``, ``_dic``, ``_hbd_dic``,
    ``_hscore_positive`` (at :data:`MALS_HSCORE_CUTOFF`), ``_mals``,
    ``_precise_ferritin_or_crp``, ``_missing`` (own inputs only; HScore inputs are listed by
    ``hscore_missing``).
    """
    ferritin = t[FERRITIN.column]
    ferritin_gt_500 = ferritin > HYPERFERRITINEMIA_ABOVE_NG_ML
    infection = t[INFECTION.column]
    hbd_dic = hbd(t) & dic(t)
    observed, maximum = hscore.totals(t)
    hscore_positive = ibis.cases((observed >= MALS_HSCORE_CUTOFF, True),
                                 (maximum < MALS_HSCORE_CUTOFF, False),
                                 else_=ibis.null("boolean"))
    crp_mg_dl = native(t[CRP.column], CRP.variable, CRP_NATIVE_UNIT, CRP_MG_DL_DIGITS)
    precise = ((ferritin >= PRECISE_FERRITIN_AT_LEAST_NG_ML)
               | (crp_mg_dl >= PRECISE_CRP_AT_LEAST_MG_DL))
    return {
        f"{NAME}_ferritin_gt_500": tristate(ferritin_gt_500),
        f"{NAME}_infection": tristate(infection),
        f"{NAME}_result": tristate(ferritin_gt_500 & infection),
        f"{NAME}_ferritin_gt_4420": tristate(ferritin > MALS_FERRITIN_ABOVE_NG_ML),
        f"{NAME}_hbd": tristate(hbd(t)),
        f"{NAME}_dic": tristate(dic(t)),
        f"{NAME}_hbd_dic": tristate(hbd_dic),
        f"{NAME}_hscore_positive": tristate(hscore_positive),
        f"{NAME}_mals": tristate(hscore_positive | hbd_dic),
        f"{NAME}_precise_ferritin_or_crp": tristate(precise),
        f"{NAME}_missing": missing_list({s.variable: t[s.column] for s in OWN_INPUTS}),
    }
