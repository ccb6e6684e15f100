"""The synthetic cohort's parameters, as data: the groups and their mix, the CSV layout, the
founding paper's marker targets (clinical reference §10.1, §10.3) and the clinical choices of the
generator (normal values, illness peaks, panels, lab systems and their units, therapies,
infections). Every choice is documented in :mod:`hyperinflam.synth.generator`; none is used by any
score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GROUPS: tuple[str, ...] = ("treated", "untreated_phenotype", "sepsis", "other")
TREATED, UNTREATED, SEPSIS, OTHER = range(4)
PHENOTYPE = (TREATED, UNTREATED)

#: The CSV layout (column order) written for each canonical table, plus the truth manifest.
LAYOUT: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "birth_date", "sex"),
    "stay": ("stay_id", "person_id", "admit_time", "discharge_time", "admission_reason", "weight_kg"),
    "measurement": ("person_id", "stay_id", "time", "variable", "value", "unit"),
    "drug_administration": ("person_id", "stay_id", "drug", "dose", "dose_unit", "route",
                            "start_time", "end_time", "weight_kg"),
    "organ_support": ("person_id", "stay_id", "support", "start_time", "end_time", "dose",
                      "dose_unit"),
    "condition": ("person_id", "stay_id", "condition", "code_system", "code", "onset_time",
                  "is_underlying"),
    "event": ("person_id", "stay_id", "event_type", "time", "detail"),
    "truth": ("stay_id", "person_id", "group", "index_time", "ventilated", "vasoactive",
              "previously_healthy"),
}

TIME_FORMAT = "%Y-%m-%d %H:%M"


# --------------------------------------------------------------------------------------------
# Founding paper targets (clinical reference §10.1 and §10.3)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedMarker:
    """Baseline (start of anakinra) and day-7 distribution of one marker in the treated group.

    Means and SDs in the canonical unit; a bivariate lognormal with the given correlation of the
    logs (per-patient correlated baseline and day 7).
    """

    baseline_mean: float
    baseline_sd: float
    day7_mean: float
    day7_sd: float
    log_correlation: float
    clip_low: float
    clip_high: float
    source: str


#: Clinical reference §10.1/10.3. CRP: means and SD = SEM x sqrt(8) for both time points.
#: Ferritin: baseline mean 8867 (derived, 10.3); baseline SD not reported: 15 000 ng/mL chosen,
#: heavy-tailed (log-SD 1.16), because 10.3 derives an SD of paired differences of ~14 300 ng/mL
#: from p = 0.30, which with the day-7 SD 3332 and a log-correlation of 0.3-0.5 needs a baseline
#: SD of 15 000-15 700. Fibrinogen: baseline mean 272.4 (derived, 10.3); baseline SD not reported:
#: 130 mg/dL chosen (CV 0.48, close to the day-7 CV ~0.7 of a consumptive phenotype). ANC/ALC: the
#: paper gives no values, only "no significant change": equal means at both time points (chosen).
FOUNDING_MARKERS: dict[str, PairedMarker] = {
    "crp": PairedMarker(206.0, 141.0, 68.0, 102.0, 0.3, 0.5, 950.0,
                        "10.1: 206 +/- 50 -> 68 +/- 36 mg/L (SEM, n=8); SD = SEM x sqrt(8), 10.3"),
    "ferritin": PairedMarker(8867.0, 15000.0, 3210.0, 3332.0, 0.4, 150.0, 500000.0,
                             "10.3: baseline 3210/(1-0.638); day-7 SD 1178 x sqrt(8); "
                             "baseline SD chosen"),
    "fibrinogen": PairedMarker(272.4, 130.0, 158.0, 116.0, 0.5, 40.0, 1200.0,
                               "10.3: baseline 158/0.58; day-7 SD 41 x sqrt(8); baseline SD chosen"),
    "anc": PairedMarker(3.5, 3.0, 3.5, 2.8, 0.5, 0.05, 60.0, "10.1: no significant change (chosen)"),
    "alc": PairedMarker(1.1, 0.9, 1.1, 0.8, 0.5, 0.05, 20.0, "10.1: no significant change (chosen)"),
}


# --------------------------------------------------------------------------------------------
# Clinical parameters (synthetic realism; see module docstring)
# --------------------------------------------------------------------------------------------
#: (age in years, kg): approximate sex-averaged WHO (0-2 y) / CDC (2-20 y) 50th centile weights.
GROWTH_CURVE_KG = ((0, 3.4), (0.25, 6.0), (0.5, 7.8), (1, 9.8), (2, 12.4), (3, 14.3), (4, 16.2),
                   (5, 18.3), (6, 20.6), (8, 25.6), (10, 32.0), (12, 40.5), (14, 50.0), (16, 58.0),
                   (18, 63.5), (21, 67.0))

#: Approximate median vitals by age (years): heart rate, respiratory rate, systolic BP.
VITAL_NORMS = {
    "age": (0, 1, 3, 6, 10, 14, 18, 21),
    "heart_rate": (140, 125, 110, 100, 88, 80, 75, 74),
    "resp_rate": (42, 32, 26, 22, 19, 17, 16, 16),
    "sbp": (70, 90, 95, 100, 107, 115, 120, 120),
}

#: Lab normals in canonical units: (median, SD of log between children, assay CV, clip low, high).
#: The clip bounds keep every value well inside variables.csv (clinical reference §11.2).
LAB_MODEL: dict[str, tuple[float, float, float, float, float]] = {
    "crp": (2.0, 0.8, 0.05, 0.3, 950),
    "ferritin": (60, 0.5, 0.05, 5, 500000),
    "fibrinogen": (280, 0.2, 0.05, 40, 1200),
    "triglycerides": (100, 0.35, 0.04, 20, 2500),
    "platelets": (280, 0.3, 0.04, 3, 900),
    "wbc": (9.0, 0.3, 0.03, 0.2, 80),
    "anc": (4.5, 0.4, 0.05, 0.02, 60),
    "alc": (3.0, 0.35, 0.05, 0.02, 25),
    "hemoglobin": (12.0, 0.1, 0.02, 4.5, 19),
    "ast": (35, 0.3, 0.05, 8, 9000),
    "alt": (25, 0.4, 0.05, 5, 9000),
    "ldh": (260, 0.25, 0.05, 90, 15000),
    "bilirubin_total": (0.5, 0.4, 0.05, 0.1, 25),
    "creatinine": (0.5, 0.2, 0.04, 0.1, 10),
    "lactate": (1.2, 0.3, 0.06, 0.3, 20),
    "glucose": (100, 0.15, 0.03, 40, 600),
    "bun": (12, 0.35, 0.04, 2, 150),
    "potassium": (4.2, 0.08, 0.03, 2.5, 7.0),
    "inr": (1.05, 0.06, 0.03, 0.8, 6),
    "pt": (13.0, 0.06, 0.03, 10, 80),
    "aptt": (32, 0.1, 0.04, 20, 150),
    "d_dimer": (0.4, 0.6, 0.06, 0.1, 60),
    "scd25": (600, 0.4, 0.05, 100, 60000),
    "ph": (7.39, 0.004, 0.002, 6.95, 7.6),
    "pao2": (90, 0.2, 0.05, 40, 450),
    "paco2": (40, 0.08, 0.04, 22, 90),
    "bicarbonate": (23, 0.08, 0.03, 8, 40),
}

#: Illness peaks per group (canonical units): (median of the peak value, SD of log).
_PHENO_PEAKS = {
    "crp": (150, 0.6), "ferritin": (4500, 1.0), "fibrinogen": (170, 0.45),
    "triglycerides": (330, 0.4), "platelets": (65, 0.55), "wbc": (4.0, 0.6), "anc": (2.0, 0.8),
    "alc": (0.8, 0.6), "hemoglobin": (8.3, 0.12), "ast": (300, 0.9), "alt": (220, 0.9),
    "ldh": (1400, 0.6), "bilirubin_total": (2.2, 0.8), "creatinine": (0.9, 0.4),
    "lactate": (2.6, 0.4), "glucose": (130, 0.2), "bun": (26, 0.4), "potassium": (4.3, 0.1),
    "inr": (1.6, 0.2), "pt": (17.5, 0.15), "aptt": (43, 0.2), "d_dimer": (7.0, 0.7),
    "scd25": (7000, 0.6), "ph": (7.32, 0.01), "pao2": (78, 0.25), "paco2": (44, 0.12),
    "bicarbonate": (20, 0.12),
}
LAB_PEAKS: dict[int, dict[str, tuple[float, float]]] = {
    TREATED: _PHENO_PEAKS,
    UNTREATED: _PHENO_PEAKS,
    SEPSIS: {
        "crp": (170, 0.6), "ferritin": (380, 0.6), "fibrinogen": (420, 0.4),
        "triglycerides": (160, 0.35), "platelets": (95, 0.6), "wbc": (16, 0.5), "anc": (12, 0.55),
        "alc": (1.0, 0.5), "hemoglobin": (9.6, 0.12), "ast": (70, 0.6), "alt": (45, 0.6),
        "ldh": (420, 0.4), "bilirubin_total": (1.2, 0.6), "creatinine": (0.9, 0.45),
        "lactate": (5.2, 0.45), "glucose": (150, 0.3), "bun": (24, 0.45), "potassium": (4.4, 0.12),
        "inr": (1.6, 0.18), "pt": (17.5, 0.15), "aptt": (42, 0.2), "d_dimer": (5.0, 0.7),
        "scd25": (2500, 0.5), "ph": (7.25, 0.012), "pao2": (72, 0.25), "paco2": (42, 0.15),
        "bicarbonate": (17, 0.15),
    },
    OTHER: {  # a mild acute illness around the normal values
        "crp": (8.0, 1.1), "ferritin": (90, 0.5), "fibrinogen": (320, 0.25),
        "triglycerides": (120, 0.35), "platelets": (250, 0.35), "wbc": (11, 0.35), "anc": (7, 0.45),
        "alc": (2.2, 0.4), "hemoglobin": (11.2, 0.12), "ast": (45, 0.5), "alt": (30, 0.5),
        "ldh": (300, 0.3), "bilirubin_total": (0.6, 0.5), "creatinine": (0.55, 0.3),
        "lactate": (1.8, 0.4), "glucose": (120, 0.2), "bun": (14, 0.4), "potassium": (4.1, 0.1),
        "inr": (1.15, 0.08), "pt": (14, 0.08), "aptt": (34, 0.12), "d_dimer": (0.9, 0.7),
        "scd25": (900, 0.4), "ph": (7.36, 0.008), "pao2": (85, 0.25), "paco2": (42, 0.1),
        "bicarbonate": (22, 0.1),
    },
}

#: Lab panels: name -> variables, and per group the probability of ordering the panel on a
#: routine daily draw (the admission draw uses the ``admission`` column, index/day-7 draws of the
#: treated group order the inflammatory markers and the CBC with differential).
PANELS: dict[str, tuple[str, ...]] = {
    "cbc": ("wbc", "hemoglobin", "platelets"),
    "diff": ("anc", "alc"),
    "bmp": ("potassium", "bicarbonate", "bun", "creatinine", "glucose"),
    "lft": ("ast", "alt", "bilirubin_total"),
    "ldh": ("ldh",),
    "coag": ("pt", "inr", "aptt"),
    "fibrinogen": ("fibrinogen",),
    "d_dimer": ("d_dimer",),
    "crp": ("crp",),
    "ferritin": ("ferritin",),
    "triglycerides": ("triglycerides",),
    "gas": ("ph", "pao2", "paco2", "lactate"),
}
#: panel -> (treated, untreated, sepsis, other) probability on a daily draw; admission draw.
PANEL_DAILY: dict[str, tuple[float, float, float, float]] = {
    "cbc": (0.97, 0.95, 0.9, 0.45), "diff": (0.95, 0.9, 0.85, 0.3), "bmp": (0.95, 0.95, 0.9, 0.5),
    "lft": (0.85, 0.8, 0.5, 0.12), "ldh": (0.6, 0.5, 0.2, 0.03), "coag": (0.8, 0.75, 0.7, 0.1),
    "fibrinogen": (0.75, 0.7, 0.5, 0.05), "d_dimer": (0.6, 0.55, 0.4, 0.03),
    "crp": (0.85, 0.8, 0.75, 0.15), "ferritin": (0.6, 0.6, 0.15, 0.01),
    "triglycerides": (0.35, 0.35, 0.05, 0.005), "gas": (0.6, 0.55, 0.6, 0.25),
}
PANEL_ADMISSION: dict[str, tuple[float, float, float, float]] = {
    "cbc": (0.99, 0.99, 0.98, 0.85), "diff": (0.97, 0.95, 0.95, 0.6), "bmp": (0.98, 0.98, 0.97, 0.85),
    "lft": (0.95, 0.9, 0.75, 0.3), "ldh": (0.7, 0.6, 0.3, 0.08), "coag": (0.9, 0.9, 0.9, 0.3),
    "fibrinogen": (0.85, 0.8, 0.75, 0.12), "d_dimer": (0.7, 0.6, 0.6, 0.06),
    "crp": (0.95, 0.9, 0.9, 0.45), "ferritin": (0.85, 0.8, 0.35, 0.03),
    "triglycerides": (0.6, 0.5, 0.1, 0.01), "gas": (0.85, 0.8, 0.9, 0.5),
}
#: Probability that each ordered component is actually resulted (haemolysed, lost, ...).
COMPONENT_RESULTED = 0.97
#: Treated group: probability that the index (start of anakinra) and day-7 panels were drawn.
INDEX_PANEL_DRAWN = 0.92
DAY7_PANEL_DRAWN = 0.85

#: Hospital lab systems: per variable (unit spelling from units.csv, decimals reported).
_COMMON = {
    "wbc": ("10*3/uL", 1), "anc": ("10*3/uL", 2), "alc": ("10*3/uL", 2), "platelets": ("10*3/uL", 0),
    "ferritin": ("ng/mL", 0), "ast": ("U/L", 0), "alt": ("U/L", 0), "ldh": ("U/L", 0),
    "lactate": ("mmol/L", 1), "potassium": ("mmol/L", 1), "inr": ("{INR}", 2), "pt": ("s", 1),
    "aptt": ("s", 1), "d_dimer": ("mg/L{FEU}", 2), "scd25": ("U/mL", 0), "ph": ("[pH]", 2),
    "pao2": ("mm[Hg]", 0), "paco2": ("mm[Hg]", 0), "bicarbonate": ("mmol/L", 0),
    "heart_rate": ("/min", 0), "resp_rate": ("/min", 0), "sbp": ("mm[Hg]", 0),
    "dbp": ("mm[Hg]", 0), "map": ("mm[Hg]", 0), "spo2": ("%", 0), "fio2": ("1", 2),
    "gcs_total": ("{score}", 0), "temperature": ("Cel", 1),
}
LAB_SYSTEMS: dict[str, dict[str, tuple[str, int]]] = {
    "us_conventional": {**_COMMON,
                        "crp": ("mg/dL", 1), "fibrinogen": ("mg/dL", 0), "triglycerides": ("mg/dL", 0),
                        "hemoglobin": ("g/dL", 1), "bilirubin_total": ("mg/dL", 1),
                        "creatinine": ("mg/dL", 2), "glucose": ("mg/dL", 0), "bun": ("mg/dL", 0),
                        "potassium": ("mEq/L", 1), "bicarbonate": ("mEq/L", 0),
                        "d_dimer": ("ug/mL FEU", 2), "pao2": ("mmHg", 0), "paco2": ("mmHg", 0),
                        "temperature": ("[degF]", 1), "fio2": ("%", 0), "sbp": ("mmHg", 0),
                        "dbp": ("mmHg", 0), "map": ("mmHg", 0)},
    "us_cell_counts": {**_COMMON,
                       "crp": ("mg/L", 1), "fibrinogen": ("mg/dL", 0), "triglycerides": ("mg/dL", 0),
                       "hemoglobin": ("g/dL", 1), "bilirubin_total": ("mg/dL", 1),
                       "creatinine": ("mg/dL", 2), "glucose": ("mg/dL", 0), "bun": ("mg/dL", 0),
                       "platelets": ("/uL", -3), "anc": ("cells/uL", 0), "alc": ("cells/uL", 0),
                       "d_dimer": ("ng/mL FEU", 0), "temperature": ("[degF]", 1)},
    "si": {**_COMMON,
           "crp": ("mg/L", 0), "ferritin": ("ug/L", 0), "fibrinogen": ("g/L", 2),
           "triglycerides": ("mmol/L", 2), "platelets": ("10*9/L", 0), "wbc": ("10^9/L", 1),
           "anc": ("10^9/L", 2), "alc": ("10^9/L", 2), "hemoglobin": ("g/L", 0),
           "bilirubin_total": ("umol/L", 0), "creatinine": ("umol/L", 0),
           "glucose": ("mmol/L", 1), "bun": ("mmol/L", 1), "pao2": ("kPa", 1),
           "paco2": ("kPa", 1)},
}
LAB_SYSTEM_WEIGHTS = (0.45, 0.2, 0.35)

ADMISSION_REASONS: dict[int, tuple[tuple[str, float], ...]] = {
    # The founding paper (10.1): respiratory distress 4/8, cardiovascular instability 3/8, chest pain 1/8.
    TREATED: (("respiratory distress", 0.5), ("cardiovascular instability", 0.375),
              ("chest pain", 0.125)),
    UNTREATED: (("respiratory distress", 0.45), ("cardiovascular instability", 0.35),
                ("fever and altered mental status", 0.15), ("chest pain", 0.05)),
    SEPSIS: (("sepsis", 0.45), ("septic shock", 0.25), ("respiratory distress", 0.2),
             ("cardiovascular instability", 0.1)),
    OTHER: (("respiratory distress", 0.34), ("post-operative care", 0.22),
            ("neurological", 0.12), ("trauma", 0.09), ("cardiovascular instability", 0.06),
            ("diabetic ketoacidosis", 0.06), ("ingestion / poisoning", 0.05),
            ("chest pain", 0.02), ("other", 0.04)),
}

#: (p ventilated, p vasoactive) per group. Treated: 5/8 and 5/8 (clinical reference §10.1).
SUPPORT_PROBABILITY = {TREATED: (0.625, 0.625), UNTREATED: (0.5, 0.5), SEPSIS: (0.55, 0.65),
                       OTHER: (0.22, 0.07)}
VASOACTIVES = ("epinephrine", "norepinephrine", "dopamine", "dobutamine", "milrinone", "vasopressin")
VASOACTIVE_WEIGHTS = (0.34, 0.26, 0.1, 0.06, 0.14, 0.10)
#: Dose ranges (low, high) in ug/kg/min (vasopressin in U/kg/min).
VASOACTIVE_DOSE = {"epinephrine": (0.02, 0.3), "norepinephrine": (0.03, 0.3),
                   "dopamine": (3.0, 12.0), "dobutamine": (3.0, 10.0), "milrinone": (0.25, 0.75),
                   "vasopressin": (0.0002, 0.002)}

UNDERLYING_CONDITIONS = (  # (name, code_system, code)
    ("systemic_jia", "ICD-10-CM", "M08.20"),
    ("immunosuppression", "ICD-10-CM", "D84.821"),
    ("acute lymphoblastic leukaemia in remission", "ICD-10-CM", "C91.01"),
    ("systemic lupus erythematosus", "ICD-10-CM", "M32.9"),
    ("sickle cell disease", "ICD-10-CM", "D57.1"),
    ("trisomy 21", "ICD-10-CM", "Q90.9"),
)
OTHER_UNDERLYING = (
    ("congenital heart disease", "ICD-10-CM", "Q24.9"),
    ("chronic lung disease of prematurity", "ICD-10-CM", "P27.1"),
    ("asthma", "ICD-10-CM", "J45.909"),
    ("cerebral palsy", "ICD-10-CM", "G80.9"),
    ("epilepsy", "ICD-10-CM", "G40.909"),
    ("immunosuppression", "ICD-10-CM", "D84.821"),
)
FINDINGS = (("splenomegaly", "ICD-10-CM", "R16.1", 0.45),
            ("hepatomegaly", "ICD-10-CM", "R16.0", 0.45),
            ("hemophagocytosis_bone_marrow", "", "", 0.3))
TRIGGER_INFECTIONS = ("Epstein-Barr virus viraemia", "influenza A", "adenovirus",
                      "cytomegalovirus viraemia", "Streptococcus pyogenes bacteraemia",
                      "SARS-CoV-2")
SEPSIS_INFECTIONS = ("blood culture: Streptococcus pneumoniae", "blood culture: Staphylococcus aureus",
                     "urine culture: Escherichia coli", "pneumonia (clinical)",
                     "respiratory viral panel: influenza A", "blood culture: Neisseria meningitidis",
                     "intra-abdominal infection (clinical)")
HOSPITAL_INFECTIONS = ("CLABSI: coagulase-negative staphylococcus",
                       "ventilator-associated pneumonia: Pseudomonas aeruginosa",
                       "catheter-associated UTI: Klebsiella pneumoniae",
                       "blood culture: Candida albicans")


@dataclass(frozen=True)
class SynthParams:
    """Named settings of the generator (defaults documented in the module docstring)."""

    mix: tuple[float, float, float, float] = (0.03, 0.02, 0.20, 0.75)
    readmission_fraction: float = 0.06
    ed_labs_fraction: float = 0.25
    #: charting interval (hours) of the routine vitals and its probabilities.
    vitals_interval_h: tuple[int, ...] = (1, 2, 3, 4)
    vitals_interval_p: tuple[float, ...] = (0.03, 0.17, 0.3, 0.5)
    #: Stay length: (median hours, SD of log, minimum hours) per group.
    los: dict = field(default_factory=lambda: {
        TREATED: (96.0, 0.6, 24.0), UNTREATED: (200.0, 0.55, 24.0),
        SEPSIS: (110.0, 0.75, 12.0), OTHER: (52.0, 0.85, 8.0)})
    max_los_h: float = 75 * 24.0
    #: Admissions fall uniformly in [admitted_from, admitted_to] (dates, UTC). A short window makes
    #: a busy ward: e.g. 600 stays in 30 days keep several dozen children in the PICU at a time,
    #: which is what the bedside census needs; stays may then run past admitted_to.
    admitted_from: str = "2011-01-01"
    admitted_to: str = "2024-12-31"

    def __post_init__(self):
        if len(self.mix) != 4 or any(p < 0 for p in self.mix) or not math.isclose(sum(self.mix), 1.0):
            raise ValueError(f"mix must be four non-negative shares summing to 1 "
                             f"({', '.join(GROUPS)}); got {self.mix}.")
