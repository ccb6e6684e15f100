"""The network statistics on their own: the moments and the pooled paired t-test, the
meta-analysis, and the suppression algorithm on small tables whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from hyperinflam.study.network.meta import meta_analysis, restricted_log_likelihood
from hyperinflam.study.network.paired import Moments, PairedSummary
from hyperinflam.study.network.suppression import (
    COMPLEMENTARY,
    COST_COHORT,
    PUBLISHED,
    SMALL,
    Cell,
    Relation,
    SuppressionError,
    check_min_cell,
    protect,
    recoverable,
)

REL = 1e-9


def test_moments_combine_like_the_union():
    rng = np.random.default_rng(3)
    groups = [rng.lognormal(9.5, 0.8, n) for n in (5, 17, 1, 40)]  # ferritin-like, ng/mL
    whole = np.concatenate(groups)
    m = Moments.combine(Moments.of(g) for g in groups)
    assert m.n == whole.size
    assert m.mean == pytest.approx(whole.mean(), rel=REL)
    assert m.sd == pytest.approx(whole.std(ddof=1), rel=REL)
    assert m.sum_sq == pytest.approx(np.square(whole).sum(), rel=REL)
    assert Moments.combine([]).n == 0 and math.isnan(Moments.of([]).mean)


def test_paired_t_test_cases():
    b, f = [250.0, 180.0, 120.0, 300.0], [60.0, 40.0, 90.0, 30.0]  # the founding toy check
    test = PairedSummary.of(b, f).t_test()
    ref = stats.ttest_rel(b, f)
    assert test.t_statistic == pytest.approx(ref.statistic, rel=REL)
    assert test.p_value == pytest.approx(ref.pvalue, rel=REL)
    ci = stats.ttest_rel(f, b).confidence_interval()
    assert (test.ci_low, test.ci_high) == pytest.approx((ci.low, ci.high), rel=REL)
    assert PairedSummary.of([1.0], [2.0]).t_test().reason == "not computed: n = 1, needs n >= 2"
    same = PairedSummary.of([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]).t_test()
    assert math.isnan(same.p_value) and "no variance" in same.reason
    assert PairedSummary.of(b, f).pct_change_of_means == pytest.approx(
        100 * (np.mean(f) - np.mean(b)) / np.mean(b), rel=REL)


def test_meta_analysis_by_hand():
    y = np.array([-100.0, -80.0, -130.0, -60.0, -200.0])
    v = np.array([400.0, 900.0, 300.0, 1600.0, 2500.0])
    m = meta_analysis(y, v)
    w = 1 / v
    assert m.fixed.estimate == pytest.approx(np.sum(w * y) / w.sum(), rel=REL)
    assert m.fixed.se == pytest.approx(1 / math.sqrt(w.sum()), rel=REL)
    q = np.sum(w * (y - m.fixed.estimate) ** 2)
    tau2 = (q - 4) / (w.sum() - np.sum(w ** 2) / w.sum())
    assert m.q == pytest.approx(q, rel=REL)
    assert m.dersimonian_laird.tau2 == pytest.approx(tau2, rel=REL)
    assert m.i2 == pytest.approx((q - 4) / q, rel=REL)
    best = optimize.minimize_scalar(lambda t: -restricted_log_likelihood(t, y, v),
                                    bounds=(0, 1e5), method="bounded",
                                    options={"xatol": 1e-10})
    assert m.reml.tau2 == pytest.approx(best.x, rel=1e-6)
    assert m.reml_converged
    assert sum(m.reml.weights) == pytest.approx(1.0)


def test_meta_analysis_homogeneous_truncates_tau2_and_needs_two_sites():
    y = np.array([1.0, 1.01, 0.99])
    v = np.array([1.0, 2.0, 1.5])
    m = meta_analysis(y, v)
    assert m.dersimonian_laird.tau2 == 0.0 and m.reml.tau2 == 0.0
    assert m.dersimonian_laird.estimate == pytest.approx(m.fixed.estimate, rel=REL)
    assert m.i2 == 0.0
    assert meta_analysis([1.0], [1.0]) is None
    assert meta_analysis([1.0, 2.0], [1.0, 0.0]) is None  # a site without variance is not weighed


def _two_by_two(values: dict[str, int]):
    cells = [Cell(k, x, COST_COHORT if k == "T" else 2.0) for k, x in values.items()]
    rel = [Relation("r1", (("a", 1), ("b", 1), ("ra", -1))),
           Relation("r2", (("c", 1), ("d", 1), ("rc", -1))),
           Relation("c1", (("a", 1), ("c", 1), ("ca", -1))),
           Relation("c2", (("b", 1), ("d", 1), ("cb", -1))),
           Relation("t", (("ra", 1), ("rc", 1), ("T", -1)))]
    return cells, rel


def test_complementary_suppression_of_a_two_by_two_table():
    cells, rel = _two_by_two(dict(a=3, b=20, c=15, d=30, ra=23, rc=45, ca=18, cb=50, T=68))
    p = protect(cells, rel, 10)
    assert p.status["a"] == SMALL
    # one small cell of a table with margins: the classic answer hides a rectangle of 4 cells
    assert {k for k, s in p.status.items() if s == COMPLEMENTARY} == {"b", "c", "d"}
    assert p.status["T"] == PUBLISHED and recoverable(cells, rel, p) == []
    # suppressing the small cell alone is recoverable from either margin
    alone = type(p)(10, {k: (SMALL if k == "a" else PUBLISHED) for k in p.status})
    assert recoverable(cells, rel, alone) == ["a"]


def test_bounds_disclosure_is_protected():
    # two '< 10' cells adding up to 2 are both 1: the total must go too
    cells = [Cell("x", 1), Cell("y", 1), Cell("t", 2, COST_COHORT)]
    rel = [Relation("s", (("x", 1), ("y", 1), ("t", -1)))]
    assert protect(cells, rel, 10).status == {"x": SMALL, "y": SMALL, "t": SMALL}
    # x < 10 and y >= 10 with x + y = 11: x is 1; hiding y does not help, hiding t does
    cells = [Cell("x", 1), Cell("y", 10), Cell("t", 11, COST_COHORT)]
    p = protect(cells, rel, 10)
    assert p.status == {"x": SMALL, "y": PUBLISHED, "t": COMPLEMENTARY}
    assert recoverable(cells, rel, p) == []


def test_zero_is_published_and_min_cell_is_checked():
    cells = [Cell("x", 0), Cell("y", 25), Cell("t", 25)]
    rel = [Relation("s", (("x", 1), ("y", 1), ("t", -1)))]
    assert protect(cells, rel, 11).status == {"x": PUBLISHED, "y": PUBLISHED, "t": PUBLISHED}
    for ok in (5, 10, 11):
        assert check_min_cell(ok) == ok
    with pytest.raises(SuppressionError, match="whole number >= 5"):
        check_min_cell(3)
    with pytest.raises(SuppressionError, match="does not hold"):
        protect([Cell("x", 1), Cell("t", 5)], [Relation("bad", (("x", 1), ("t", -1)))], 10)
