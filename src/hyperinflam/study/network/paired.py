"""Sufficient statistics of a paired before/after comparison, and their exact pooling.

A site shares, per marker and follow-up timepoint, for the baseline values, the follow-up values
and the per-patient differences (follow-up - baseline): n, the sum, the sum of squares and the
**centred** sum of squares (sum of squared deviations from the site's own mean). The pooled
paired t-test is computed from these alone and equals ``scipy.stats.ttest_rel`` on all the
sites' patients together:

* the pooled mean is the sum of the sums over the sum of the n;
* the pooled centred sum of squares is the parallel-variance combination (Chan, Golub & LeVeque
  1979; the k-group form of the law of total variance):
  ``M2 = sum_s M2_s + sum_s n_s (mean_s - mean)^2``. Both terms are sums of squared deviations,
  so nothing cancels: ``sum x^2 - (sum x)^2 / n`` on ferritin values of 10^4-10^5 ng/mL loses
  about half the digits of a double; this formula loses none. The raw sums of squares are
  shared as the issue asks, and checked against the centred ones, never used for the variance;
* t = mean(baseline - follow-up) / (SD / sqrt(n)) with df = n - 1: the sign of
  ``scipy.stats.ttest_rel(baseline, follow_up)`` (t > 0 when values fall), as in the site's own
  results (study.analysis).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Moments:
    """n, sum, sum of squares and centred sum of squares of one variable."""

    n: int
    total: float
    sum_sq: float
    sum_sq_dev: float

    @classmethod
    def of(cls, values) -> Moments:
        x = np.asarray(values, dtype="float64")
        if x.size == 0:
            return cls(0, 0.0, 0.0, 0.0)
        total = float(x.sum())
        mean = total / x.size
        return cls(int(x.size), total, float(np.square(x).sum()),
                   float(np.square(x - mean).sum()))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def sd(self) -> float:
        return math.sqrt(self.sum_sq_dev / (self.n - 1)) if self.n >= 2 else math.nan

    @classmethod
    def combine(cls, parts: Iterable[Moments]) -> Moments:
        """The moments of the union of disjoint groups (parallel-variance formula)."""
        parts = [p for p in parts if p.n > 0]
        if not parts:
            return cls(0, 0.0, 0.0, 0.0)
        n = sum(p.n for p in parts)
        total = math.fsum(p.total for p in parts)
        mean = total / n
        between = math.fsum(p.n * (p.mean - mean) ** 2 for p in parts)
        return cls(n, total, math.fsum(p.sum_sq for p in parts),
                   math.fsum(p.sum_sq_dev for p in parts) + between)


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test computed from moments (NaN with a reason when it cannot be)."""

    n: int
    mean_difference: float  # follow-up - baseline
    sd_difference: float
    se_difference: float
    t_statistic: float  # of baseline - follow-up (scipy.stats.ttest_rel(baseline, follow_up))
    df: float
    p_value: float
    ci_low: float  # 95% CI of the mean difference (t distribution, df = n - 1)
    ci_high: float
    reason: str | None = None


def _p_value(t: float, df: float, alternative: str) -> float:
    if alternative == "less":
        return float(stats.t.cdf(t, df))
    if alternative == "greater":
        return float(stats.t.sf(t, df))
    return float(2.0 * stats.t.sf(abs(t), df))


@dataclass(frozen=True)
class PairedSummary:
    """The sufficient statistics of one marker at one follow-up timepoint (one site or pooled)."""

    baseline: Moments
    followup: Moments
    difference: Moments

    @classmethod
    def of(cls, baseline: Sequence[float], followup: Sequence[float]) -> PairedSummary:
        b = np.asarray(baseline, dtype="float64")
        f = np.asarray(followup, dtype="float64")
        return cls(Moments.of(b), Moments.of(f), Moments.of(f - b))

    @classmethod
    def combine(cls, parts: Iterable[PairedSummary]) -> PairedSummary:
        parts = list(parts)
        return cls(Moments.combine(p.baseline for p in parts),
                   Moments.combine(p.followup for p in parts),
                   Moments.combine(p.difference for p in parts))

    @property
    def n(self) -> int:
        return self.difference.n

    @property
    def pct_change_of_means(self) -> float:
        """100 x (mean follow-up - mean baseline) / mean baseline (the founding paper's way,
        study.analysis); exact from the sums."""
        mb = self.baseline.mean
        return 100.0 * (self.followup.mean - mb) / mb if self.n and mb != 0 else math.nan

    def t_test(self, alternative: str = "two-sided", *, confidence: float = 0.95) -> PairedTest:
        d = self.difference
        n = d.n
        mean = d.mean
        if n < 2:
            return PairedTest(n, mean, math.nan, math.nan, math.nan, math.nan, math.nan,
                              math.nan, math.nan, f"not computed: n = {n}, needs n >= 2")
        sd = d.sd
        # no variance: every difference equal (a centred sum of squares of rounding size only)
        if d.sum_sq_dev <= 1e-24 * max(d.sum_sq, 1e-300):
            return PairedTest(n, mean, sd, math.nan, math.nan, float(n - 1), math.nan,
                              math.nan, math.nan,
                              "not computed: all paired differences are equal (no variance)")
        se = sd / math.sqrt(n)
        df = float(n - 1)
        t = -mean / se
        half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
        return PairedTest(n, mean, sd, se, t, df, _p_value(t, df, alternative),
                          mean - half, mean + half)
