"""The human words of a study's results: statistic labels, drug classes, criterion states, test
names, and the software behind each test (named once, in a footnote, by the report).

Every output reads its words from the results dataset (``stat_label``, ``label``, ``level``) or
from here through it; none is written in a renderer. Words that depend on the study (the index
drug, the timepoints) are built from the study definition by the functions below.
"""

from __future__ import annotations

#: stat_name -> stat_label (docs/results-format.md). Timepoint-specific words are in ``label``
#: and ``comparison``, never here.
STAT_LABELS: dict[str, str] = {
    "count": "Count",
    "percent": "Percent",
    "n": "n",
    "n_excluded": "Excluded (no pair of values)",
    "mean": "Mean",
    "sd": "SD",
    "sem": "SEM",
    "median": "Median",
    "q1": "First quartile",
    "q3": "Third quartile",
    "min": "Minimum",
    "max": "Maximum",
    "pct_change_of_means": "% change of means",
    "median_pct_change": "Median of per-patient % changes",
    "mean_difference": "Mean of per-patient differences",
    "t_statistic": "t",
    "df": "Degrees of freedom",
    "p_paired_t": "p, paired t-test",
    "w_statistic": "W (Wilcoxon signed-rank statistic)",
    "p_wilcoxon": "p, Wilcoxon signed-rank test",
    "n_patients": "Patients",
    "n_observations": "Values",
    "mixed_mean": "Mean (model estimate)",
    "mixed_mean_se": "Standard error of the model mean",
    "mixed_difference": "Difference from baseline (model estimate)",
    "mixed_se": "Standard error of the difference",
    "mixed_ci_low": "95% confidence interval, lower limit",
    "mixed_ci_high": "95% confidence interval, upper limit",
    "p_mixed": "p, difference from baseline (Wald z, mixed model)",
    "mixed_wald_chi2": "Wald chi-square, all timepoints",
    "mixed_wald_df": "Degrees of freedom of the Wald test",
    "p_mixed_overall": "p, any change over time (Wald chi-square, mixed model)",
    "mixed_var_patient": "Between-patient variance (random intercept)",
    "mixed_var_residual": "Residual variance",
    "recorded": "Recorded by the source",
    "u_statistic": "U (Mann–Whitney statistic, early start group)",
    "p_mann_whitney": "p, Mann–Whitney U test",
}

#: Drug classes of vocabulary/drugs.csv as clinicians write them.
DRUG_CLASS_LABELS: dict[str, str] = {
    "corticosteroid": "Systemic corticosteroids",
    "ivig": "Intravenous immunoglobulin (IVIG)",
    "il1_blocker": "IL-1 blockers",
    "il6_blocker": "IL-6 blockers",
    "ifng_blocker": "Interferon-gamma blockers",
    "jak_inhibitor": "JAK inhibitors",
    "hlh_therapy": "HLH chemotherapy (etoposide)",
    "immunosuppressant": "Other immunosuppressants (ciclosporin)",
    "vasoactive": "Vasoactive drugs",
}

#: Tri-state criterion results (clinical reference §0) as words.
STATE_LABELS: dict[str, str] = {
    "met": "met",
    "not_met": "not met",
    "indeterminate": "indeterminate",
    "unknown": "unknown",
    "not evaluated": "not evaluated",
}

#: Route codes of drug_administration.route as words.
ROUTE_LABELS: dict[str, str] = {
    "iv": "intravenous", "sc": "subcutaneous", "po": "oral", "im": "intramuscular",
    "ng": "nasogastric", "inh": "inhaled", "pr": "rectal",
}

#: Tests named in words (the ``method`` column) and the software call behind each, which the
#: report gives once, in a footnote.
PAIRED_T = "paired t-test"
WILCOXON = "Wilcoxon signed-rank test"
MIXED_MODEL = "linear mixed model"
MANN_WHITNEY = "Mann–Whitney U test"
SOFTWARE: dict[str, str] = {
    PAIRED_T: "scipy.stats.ttest_rel(baseline, later)",
    WILCOXON: "scipy.stats.wilcoxon(later - baseline, method=..., zero_method=..., "
              "correction=...)",
    MIXED_MODEL: "statsmodels MixedLM(value, [intercept, one indicator per timepoint], "
                 "groups=patient).fit(reml=True)",
    MANN_WHITNEY: "scipy.stats.mannwhitneyu(early, late, method=..., use_continuity=False)",
    "quartiles": "numpy.quantile(..., method='linear')",
}


def drug_class_label(drug_class: str) -> str:
    return DRUG_CLASS_LABELS.get(drug_class, drug_class.replace("_", " ").capitalize())


def cotherapy_label(drug_class: str, index_drug: str, index_drug_class: str | None) -> str:
    """A co-therapy class as printed: the index drug is never its own co-therapy, so the class
    it belongs to reads "Systemic corticosteroids other than dexamethasone"."""
    label = drug_class_label(drug_class)
    return f"{label} other than {index_drug}" if drug_class == index_drug_class else label


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.replace("_", " "))


def route_label(route: str) -> str:
    return ", ".join(ROUTE_LABELS.get(r.strip(), r.strip()) for r in route.split(",") if r.strip())


def stat_label(stat_name: str) -> str:
    return STAT_LABELS.get(stat_name, stat_name.replace("_", " "))


def capitalised(text: str) -> str:
    """First letter upper-case, the rest as written ("anakinra" -> "Anakinra")."""
    return text[:1].upper() + text[1:]
