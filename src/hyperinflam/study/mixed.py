"""The repeated-measures model over baseline and every timepoint of a marker.

A linear mixed model (statsmodels ``MixedLM``), fitted by restricted maximum likelihood:

    value_ij = b0 + sum_k b_k [timepoint_ij = k] + u_i + e_ij,
    u_i ~ N(0, s2_patient) (a random intercept per patient), e_ij ~ N(0, s2_residual),

with timepoint a fixed factor whose reference level is baseline, so ``b_k`` is the mean change
from baseline to timepoint k. Every value chosen for the analysis (the baseline and each
timepoint's value, by the window rules) enters; a patient with some values missing still
contributes the values they have (valid when values are missing at random given the observed
ones). Assumptions, stated in the report's Methods: values normal on the scale analysed,
one variance for every timepoint and the same correlation between any two values of a patient
(compound symmetry, implied by the random intercept alone), patients independent.

Reported per timepoint: the estimate, its standard error, the 95% Wald confidence interval and
the Wald z-test p; overall: the Wald chi-square test that every timepoint equals baseline. These
are large-sample tests; with few patients they are approximate (the Methods say so).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

#: The fitted model, in the notation of R's lme4 (stated in Methods).
FORMULA = "value ~ timepoint + (1 | patient), timepoint a factor with baseline as reference"
#: Fewest patients with a value for the model to be fitted.
MIN_PATIENTS = 2


def fit(values: pd.DataFrame, timepoints: list[str],
        labels: dict[str, str] | None = None) -> dict:
    """Fit the model to one marker.

    ``values``: columns patient, timepoint ('baseline' or a name in ``timepoints``), value;
    ``labels``: the words of each timepoint name (for the messages).
    Returns ``{"n_patients", "n_observations", "per_timepoint": {name: {...}}, "means":
    {"baseline" or name: {"mixed_mean", "mixed_mean_se"}}, "overall": {...}, "warning": str,
    "error": str}``; on ``error`` the estimates are absent. ``means`` are the model's mean at
    each timepoint (intercept + difference) with their standard errors.
    """
    v = values.dropna(subset=["value"])
    v = v[v["timepoint"].isin(["baseline", *timepoints])]
    out: dict = {"n_patients": int(v["patient"].nunique()), "n_observations": int(len(v)),
                 "per_timepoint": {}, "means": {}, "overall": {}, "warning": "", "error": ""}
    words = labels or {}
    observed = [t for t in timepoints if (v["timepoint"] == t).any()]
    absent = [t for t in timepoints if t not in observed]
    notes = []
    if absent:
        notes.append(f"no values at {', '.join(words.get(t, t) for t in absent)}: left out of "
                     f"the model")
    repeated = int((v.groupby("patient").size() >= 2).sum()) if len(v) else 0
    if out["n_patients"] < MIN_PATIENTS:
        out["error"] = (f"not fitted: {out['n_patients']} patient(s) with values, needs at "
                        f"least {MIN_PATIENTS}")
        return out
    if not (v["timepoint"] == "baseline").any() or not observed:
        out["error"] = "not fitted: needs values at baseline and at one timepoint at least"
        return out
    if repeated == 0:
        out["error"] = "not fitted: no patient has more than one value"
        return out
    if v["value"].nunique() == 1:
        out["error"] = "not fitted: all values are equal"
        return out
    n_fixed = 1 + len(observed)
    if out["n_observations"] < n_fixed + out["n_patients"]:
        # fewer values than the means and patient intercepts to estimate: no residual variance
        out["error"] = (f"not fitted: {out['n_observations']} values are too few for "
                        f"{n_fixed} timepoint means and {out['n_patients']} patients (needs at "
                        f"least {n_fixed + out['n_patients']})")
        return out

    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    exog = np.column_stack([np.ones(len(v))]
                           + [(v["timepoint"] == t).to_numpy(dtype="float64") for t in observed])
    names = ["baseline", *observed]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = MixedLM(v["value"].to_numpy(dtype="float64"), exog,
                            groups=v["patient"].to_numpy(), exog_re=np.ones((len(v), 1)))
            result = model.fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as exc:
            out["error"] = f"not fitted: {exc}"
            return out
    messages = sorted({str(w.message).split("\n")[0] for w in caught
                       if issubclass(w.category, (ConvergenceWarning, RuntimeWarning))})
    if not result.converged:
        notes.append("the fit did not converge; estimates are unreliable")
    if messages:
        notes.append("; ".join(messages))
    params = np.asarray(result.fe_params, dtype="float64")
    cov = np.asarray(result.cov_params(), dtype="float64")[: len(params), : len(params)]
    se = np.sqrt(np.diag(cov))
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(se))):
        out["error"] = "not fitted: the estimates are not finite (the data cannot identify them)"
        return out
    z_crit = stats.norm.ppf(0.975)
    out["means"]["baseline"] = {"mixed_mean": float(params[0]), "mixed_mean_se": float(se[0])}
    for k, name in enumerate(names[1:], start=1):
        z = params[k] / se[k] if se[k] > 0 else math.nan
        mean_se = math.sqrt(max(cov[0, 0] + cov[k, k] + 2 * cov[0, k], 0.0))
        out["means"][name] = {"mixed_mean": float(params[0] + params[k]), "mixed_mean_se": mean_se}
        out["per_timepoint"][name] = {
            "mixed_difference": float(params[k]), "mixed_se": float(se[k]),
            "mixed_ci_low": float(params[k] - z_crit * se[k]),
            "mixed_ci_high": float(params[k] + z_crit * se[k]),
            "p_mixed": float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan,
        }
    b = params[1:]
    c = cov[1:, 1:]
    try:
        chi2 = float(b @ np.linalg.solve(c, b))
        df = len(b)
        out["overall"] = {"mixed_wald_chi2": chi2, "mixed_wald_df": float(df),
                          "p_mixed_overall": float(stats.chi2.sf(chi2, df))}
    except np.linalg.LinAlgError:
        notes.append("the joint Wald test could not be computed (singular covariance)")
    var_patient = float(np.asarray(result.cov_re)[0, 0])
    out["overall"]["mixed_var_patient"] = var_patient
    out["overall"]["mixed_var_residual"] = float(result.scale)
    if var_patient <= 1e-8 * max(float(result.scale), 1e-300):
        notes.append("between-patient variance estimated at 0 (the values of a patient are no "
                     "more alike than values of different patients)")
    out["warning"] = "; ".join(notes)
    return out
