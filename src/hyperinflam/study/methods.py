"""The Methods of a study, in plain sentences built from its definition.

Every number and word comes from the study file (index drug, ages, calendar window,
requirement, baseline window, each timepoint's target and tolerance, co-therapy classes,
follow-up); the rules are those the cohort and the analysis apply (clinical reference §10.4,
§12). Tests are named in words; the software behind each is given once, in ``software``, for the
report's footnotes. Citations use the clinical reference's scheme (§N.N) and the report lists the
sections they name.
"""

from __future__ import annotations

from hyperinflam.study import labels as words
from hyperinflam.study.definition import StudyDefinition
from hyperinflam.study.mixed import FORMULA
from hyperinflam.vocabulary import Vocabulary


def hours(value: float, *, signed: bool = False) -> str:
    """"−24 h", "+12 h", "168 h" with a true minus sign."""
    text = f"{value:+g}" if signed and value != 0 else f"{value:g}"
    return text.replace("-", "−") + " h"


def _in_sentence(label: str) -> str:
    """A label inside a sentence: "Systemic corticosteroids" -> "systemic corticosteroids",
    "JAK inhibitors" and "IVIG" unchanged."""
    return label[:1].lower() + label[1:] if label[1:2].islower() else label


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def timepoint_sentence(t) -> str:
    return (f"{words.capitalised(t.label)}: the value closest to {hours(t.target_hours)} after "
            f"time 0 within ± {hours(t.tolerance_hours)} ({hours(t.from_hours)} to "
            f"{hours(t.to_hours)}), both edges included; of two values equally close, the "
            f"earlier (§12.2).")


def cohort_sentence(study: StudyDefinition) -> str:
    c = study.cohort
    if c.admitted_from and c.admitted_to:
        calendar = f"admitted from {c.admitted_from.isoformat()} to {c.admitted_to.isoformat()}"
    elif c.admitted_from:
        calendar = f"admitted on or after {c.admitted_from.isoformat()}"
    elif c.admitted_to:
        calendar = f"admitted on or before {c.admitted_to.isoformat()}"
    else:
        calendar = "no calendar limit"
    req = c.required_criterion
    if req is None:
        requirement = "no entry requirement"
    elif req.is_marker:
        var = Vocabulary().variables[req.variable]
        op = {">=": "≥", "<=": "≤", "==": "="}.get(req.operator, req.operator)
        requirement = (f"entry requirement: {var.label} {op} {req.threshold:g} "
                       f"{var.canonical_unit} at baseline (no baseline value: not met)")
    else:
        requirement = (f"entry requirement: {req} at the first {study.index_drug} dose "
                       f"(unknown: not met)")
    stays = ("the first qualifying PICU stay of each patient (§12.32)"
             if c.first_qualifying_stay_only else "every qualifying PICU stay")
    return (f"Patients aged {c.age_min_years}–{c.age_max_years} completed years at PICU admission "
            f"(both ends included); {calendar}; {requirement}; {stays}.")


def methods_text(study: StudyDefinition) -> dict:
    """The Methods paragraphs (``paragraphs``: list of (topic, text)) and ``software``."""
    drug = study.index_drug
    w, a, ct, o = study.windows, study.analysis, study.cotherapies, study.outcomes
    points = study.timepoints
    paragraphs: list[tuple[str, str]] = []
    paragraphs.append(("index", (
        f"Time 0 is the first administration of {drug} started during the PICU stay (§10.4, "
        f"§12.7); {drug} given before the PICU stay is never time 0, and such patients are "
        f"kept and counted. " + cohort_sentence(study))))
    paragraphs.append(("windows", " ".join([
        f"Baseline: the value closest to time 0 from {hours(w.baseline_from_hours, signed=True)}"
        f" to {hours(w.baseline_to_hours, signed=True)}, both edges included; of two values "
        f"equally close, the one before time 0 (§12.1)."]
        + [timepoint_sentence(t) for t in points]
        + ["Values at the same time and distance: the lowest (a fixed choice). Measurements "
           "are linked to the patient by time, so a value drawn before PICU admission counts."])))
    paragraphs.append(("missing", (
        "Each comparison of a timepoint with baseline uses the patients with both values for "
        "that marker (complete cases); the others are left out of that comparison only and "
        "counted (§12.3).")))
    sem = ("SEM = SD / √n, with SD the sample standard deviation (divisor n − 1)"
           if a.sem_ddof == 1 else "SEM = SD / √n, with SD the population standard deviation "
                                    "(divisor n)")
    paragraphs.append(("summary", (
        f"Markers are summarised as mean ± standard error of the mean ({sem}; §12.6), other "
        f"characteristics as median with first and third quartiles (linear interpolation) or as "
        f"count and percent of the patients in the study.")))
    later = "the timepoint" if len(points) > 1 else points[0].label
    headline = ("the % change of the group means" if a.headline_change == "pct_change_of_means"
                else "the median of the per-patient % changes")
    paragraphs.append(("change", (
        f"Change from baseline: the % change of the group means, 100 × (mean at {later} − mean "
        f"at baseline) / mean at baseline, as the founding paper appears to have computed it "
        f"(§10.3, §12.4), and the median of each patient's % change (patients with a baseline "
        f"of 0 left out of it); the headline figure is {headline}.")))
    tests = []
    if "paired_t" in a.tests:
        tests.append(f"the {words.PAIRED_T}")
    if "wilcoxon" in a.tests:
        tests.append(f"the {words.WILCOXON}")
    if tests:
        wil = ""
        if "wilcoxon" in a.tests:
            zero = {"wilcox": "zero differences are dropped",
                    "pratt": "zero differences are ranked, then dropped (Pratt)",
                    "zsplit": "zero differences are split between the signs"}[
                a.wilcoxon_zero_method]
            wil = (f" The Wilcoxon signed-rank test uses the exact distribution when n ≤ "
                   f"{a.wilcoxon_exact_max_n} and no difference is zero or tied, otherwise the "
                   f"normal approximation ({'with' if a.wilcoxon_correction else 'without'} "
                   f"continuity correction); {zero}.")
        compared = ("Each timepoint is compared with baseline" if len(points) > 1
                    else f"{words.capitalised(points[0].label)} is compared with baseline")
        paragraphs.append(("tests", (
            f"{compared} by {_and(tests)} ({a.alternative}; each p-value is labelled with its "
            f"test, §12.5).{wil} A test is not computed with fewer than 2 pairs or when every "
            f"difference is the same; its reason is given instead.")))
    if study.fits_mixed_model:
        names = _and([t.label for t in points])
        paragraphs.append(("mixed", (
            f"Over baseline and {names} together, a {words.MIXED_MODEL} with a random intercept "
            f"per patient and timepoint as a fixed factor (baseline the reference level), fitted "
            f"by restricted maximum likelihood: {FORMULA}. It uses every value chosen for the "
            f"analysis, including patients with some timepoints missing. It assumes values "
            f"normally distributed around the timepoint means with one variance at every "
            f"timepoint, the same correlation between any two values of a patient (compound "
            f"symmetry), values missing at random given those observed, and independent "
            f"patients. Differences from baseline are reported with 95% Wald confidence "
            f"intervals and Wald z-test p-values, and any change over time with a Wald "
            f"chi-square test; these large-sample tests are approximate with few patients.")))
    index_class = (Vocabulary().drugs.get(drug) or {}).get("drug_class")
    classes = _and([_in_sentence(words.cotherapy_label(c, drug, index_class))
                    for c in ct.classes]) or "none"
    paragraphs.append(("cotherapies", (
        f"Co-therapies ({classes}): any administration from {hours(ct.window_from_hours, signed=True)}"
        f" to {hours(ct.window_to_hours, signed=True)} of time 0"
        + (", and any time in the PICU stay" if ct.any_time_in_stay else "") + " (§12.8).")))
    paragraphs.append(("exposure", (
        f"{words.capitalised(drug)} dose per 24-hour period from the first dose, in mg/kg with "
        f"the weight recorded with the dose, else the latest measured weight, else the admission "
        f"weight (§12.34, §12.39); a continuous infusion contributes its rate times the hours "
        f"infused within each period" + (" (§9.1)." if drug == "anakinra" else "."))))
    events = []
    if o.infections:
        events.append("infections starting after time 0")
    if o.deaths:
        events.append("deaths at or after time 0")
    if events:
        paragraphs.append(("outcomes", (
            f"Safety and outcome: {_and(events)}, in the PICU stay and within "
            f"{o.followup_days:g} days of time 0 (§12.33); PICU length of stay from admission "
            f"to discharge.")))
    if study.recognition.enabled:
        from hyperinflam.study.recognition import methods_sentence

        paragraphs.append(("recognition", methods_sentence(study)))
    paragraphs.append(("recorded", (
        "A domain the source does not record at all (not one record of it for any patient) is "
        "reported as not recorded, never as absent or 0.")))
    paragraphs.append(("numbers", (
        "Counts are whole numbers; scores are shown at their own precision; p-values to two "
        "significant digits, below 0.001 as < 0.001.")))
    software = {words.PAIRED_T: words.SOFTWARE[words.PAIRED_T]} if "paired_t" in a.tests else {}
    if "wilcoxon" in a.tests:
        software[words.WILCOXON] = words.SOFTWARE[words.WILCOXON]
    if study.fits_mixed_model:
        software[words.MIXED_MODEL] = words.SOFTWARE[words.MIXED_MODEL]
    if study.recognition.enabled:
        software[words.MANN_WHITNEY] = words.SOFTWARE[words.MANN_WHITNEY]
    return {"paragraphs": paragraphs, "software": software}
