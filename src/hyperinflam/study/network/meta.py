"""Meta-analysis of the sites' mean paired differences (one estimate and its variance per site).

* **Fixed effect** (inverse variance) and **random effects, DerSimonian-Laird**:
  ``statsmodels.stats.meta_analysis.combine_effects(..., method_re="dl")``. statsmodels returns
  the DerSimonian-Laird tau^2 = (Q - df) / c untruncated; a negative value is set to 0, as in
  DerSimonian & Laird (1986), and the random-effects estimate recomputed with it.
* **Random effects, REML**: statsmodels 0.14-0.15 offers DerSimonian-Laird and Paule-Mandel
  (``method_re="iterated"``) in ``combine_effects`` but no REML, and ``MixedLM`` cannot hold
  each site's sampling variance fixed, so tau^2 is the maximiser of the restricted likelihood of
  the normal-normal model, ``l_R(tau2) = -1/2 [sum log(v_i + tau2) + log sum w_i
  + sum w_i (y_i - mu_hat)^2]`` with ``w_i = 1 / (v_i + tau2)``, found by Fisher scoring from the
  DerSimonian-Laird value (Viechtbauer 2005, J Educ Behav Stat 30:261-293, the algorithm of
  metafor's ``rma(method = "REML")``), truncated at 0, to a change below 1e-12 (relative).
  tests/test_network_meta.py checks it against a direct numerical maximisation of ``l_R``.
* Estimates, standard errors ``1 / sqrt(sum w)`` and 95% confidence intervals use the normal
  distribution (no Knapp-Hartung adjustment); Cochran's Q with k - 1 df; I^2 = max(0, (Q - df) /
  Q) (Higgins & Thompson 2002).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

REML_TOLERANCE = 1e-12
REML_MAX_ITERATIONS = 200

FIXED = "fixed effect (inverse variance)"
DL = "random effects, DerSimonian-Laird"
REML = "random effects, REML"


@dataclass(frozen=True)
class Pooled:
    method: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    tau2: float | None
    weights: tuple[float, ...]  # relative weights of the sites, summing to 1


@dataclass(frozen=True)
class MetaAnalysis:
    k: int
    fixed: Pooled
    dersimonian_laird: Pooled
    reml: Pooled
    q: float
    q_df: int
    q_p_value: float
    i2: float  # 0-1
    reml_iterations: int
    reml_converged: bool

    @property
    def estimates(self) -> tuple[Pooled, Pooled, Pooled]:
        return self.fixed, self.dersimonian_laird, self.reml


def _pooled(method: str, estimate: float, se: float, tau2: float | None, w: np.ndarray,
            alpha: float) -> Pooled:
    crit = float(stats.norm.isf(alpha / 2))
    z = estimate / se
    return Pooled(method, float(estimate), float(se), estimate - crit * se, estimate + crit * se,
                  z, float(2 * stats.norm.sf(abs(z))), tau2,
                  tuple(float(x) for x in w / w.sum()))


def _random(method: str, y: np.ndarray, v: np.ndarray, tau2: float, alpha: float) -> Pooled:
    w = 1.0 / (v + tau2)
    return _pooled(method, float(np.sum(w * y) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w))),
                   tau2, w, alpha)


def restricted_log_likelihood(tau2: float, y: Sequence[float], v: Sequence[float]) -> float:
    """The REML log-likelihood of the normal-normal random-effects model (up to a constant)."""
    y = np.asarray(y, dtype="float64")
    w = 1.0 / (np.asarray(v, dtype="float64") + tau2)
    mu = np.sum(w * y) / np.sum(w)
    return float(-0.5 * (np.sum(np.log(1.0 / w)) + math.log(np.sum(w))
                         + np.sum(w * (y - mu) ** 2)))


def reml_tau2(y: np.ndarray, v: np.ndarray, start: float) -> tuple[float, int, bool]:
    """tau^2 maximising the restricted likelihood, truncated at 0: Fisher scoring (Viechtbauer
    2005). Returns (tau^2, iterations, converged)."""
    tau2 = max(0.0, start)
    for iteration in range(1, REML_MAX_ITERATIONS + 1):
        w = 1.0 / (v + tau2)
        sw, sw2 = w.sum(), np.sum(w ** 2)
        mu = np.sum(w * y) / sw
        score = 0.5 * (np.sum(w ** 2 * (y - mu) ** 2) - (sw - sw2 / sw))
        information = 0.5 * (sw2 - 2 * np.sum(w ** 3) / sw + sw2 ** 2 / sw ** 2)
        new = max(0.0, tau2 + score / information)
        if abs(new - tau2) <= REML_TOLERANCE * max(1.0, tau2):
            return new, iteration, True
        tau2 = new
    return tau2, REML_MAX_ITERATIONS, False


def meta_analysis(effects: Sequence[float], variances: Sequence[float], *,
                  alpha: float = 0.05) -> MetaAnalysis | None:
    """Fixed and random effects of ``effects`` with sampling ``variances`` (None when fewer than
    two sites have an estimate with a positive variance)."""
    y = np.asarray(effects, dtype="float64")
    v = np.asarray(variances, dtype="float64")
    keep = np.isfinite(y) & np.isfinite(v) & (v > 0)
    y, v = y[keep], v[keep]
    k = int(y.size)
    if k < 2:
        return None
    res = combine_effects(y, v, method_re="dl", alpha=alpha)
    q, df = float(res.q), k - 1
    fixed = _pooled(FIXED, float(res.mean_effect_fe), float(res.sd_eff_w_fe), None,
                    np.asarray(res.weights_fe, dtype="float64"), alpha)
    if float(res.tau2) >= 0:
        tau2_dl = float(res.tau2)
        dl = _pooled(DL, float(res.mean_effect_re), float(res.sd_eff_w_re), tau2_dl,
                     np.asarray(res.weights_re, dtype="float64"), alpha)
    else:  # statsmodels does not truncate: tau^2 = 0, the random-effects model is the fixed one
        tau2_dl = 0.0
        dl = _random(DL, y, v, 0.0, alpha)
    tau2_reml, iterations, converged = reml_tau2(y, v, tau2_dl)
    tau2_reml = float(tau2_reml)
    return MetaAnalysis(
        k=k, fixed=fixed, dersimonian_laird=dl, reml=_random(REML, y, v, tau2_reml, alpha),
        q=q, q_df=df, q_p_value=float(stats.chi2.sf(q, df)),
        i2=max(0.0, (q - df) / q) if q > 0 else 0.0,
        reml_iterations=iterations, reml_converged=converged)
