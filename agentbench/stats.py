"""Statistics every report shares (scipy and statsmodels; see docs/statistics.md).

Rates with Wilson intervals; the power of a two-rate comparison and its minimum detectable
difference; the n that reaches a wanted difference; a Cochran-Mantel-Haenszel test stratified
by seed; and a difference of two differences (homogeneous minus heterogeneous) with an interval.
Bad input (a rate outside [0, 1], k > n) raises ValueError naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rate:
    """k successes out of n, with a Wilson 95 % confidence interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def short(self) -> str:
        """`62% [41-79]`: the value and interval in whole percents, n left to a column."""
        if not self.n:
            return "n/a"
        return f"{self.value:.0%} [{self.low * 100:.0f}-{self.high * 100:.0f}]"

    def __str__(self) -> str:
        if not self.n:
            return "n/a (n=0)"
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}] (n={self.n})"


def wilson(k: int, n: int, alpha: float = 0.05) -> Rate:
    """Rate of k in n with a Wilson score interval; n=0 gives NaN bounds."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Rate(0, 0, float("nan"), float("nan"))
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return Rate(k, n, float(low), float(high))


# -- power and the minimum detectable difference ---------------------------------------------
# Two independent proportions compared on Cohen's arcsine scale, h = 2 asin(sqrt(p1)) -
# 2 asin(sqrt(p0)), with statsmodels' normal-approximation power (`NormalIndPower`). Fisher's
# exact test, which the reports run, is a little more conservative than this approximation, so
# the MDE it gives is a lower bound on what the exact test detects at that power.

ALPHA = 0.05
POWER = 0.8


def _check_p(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must be a rate in [0, 1], got {value}")


def power_two_rates(
    treated: float, control: float, n_treated: int, n_control: int, alpha: float = ALPHA
) -> float | None:
    """The power of a two-sided test at `alpha` to tell rate `treated` from rate `control`
    with these arm sizes (statsmodels `NormalIndPower` on Cohen's h); None when an arm is
    empty. Equal rates give `alpha` (the test's size)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _check_p("treated", treated)
    _check_p("control", control)
    if n_treated <= 0 or n_control <= 0:
        return None
    h = float(proportion_effectsize(treated, control))
    if h == 0.0:
        return alpha
    power = NormalIndPower().power(
        effect_size=abs(h), nobs1=n_treated, alpha=alpha, ratio=n_control / n_treated,
        alternative="two-sided",
    )  # fmt: skip
    return float(power)


def min_detectable_difference(
    n_treated: int, n_control: int, control: float, *, alpha: float = ALPHA,
    power: float = POWER, direction: int = 1,
) -> float | None:  # fmt: skip
    """The smallest difference treated - control (in rate units, signed by `direction`: +1
    up, -1 down) that a two-sided test at `alpha` detects with probability `power`, given the
    arm sizes and the control's rate. None when an arm is empty or no rate on that side of
    the control is detectable (e.g. a control at 95 % and n=5 looking upwards).

    statsmodels solves for the effect size h; the rate that h away from `control` is found
    by root-finding on `proportion_effectsize` (scipy brentq)."""
    from scipy.optimize import brentq
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _check_p("control", control)
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if not 0.0 < power < 1.0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    if n_treated <= 0 or n_control <= 0:
        return None
    h = float(
        NormalIndPower().solve_power(
            effect_size=None,
            nobs1=n_treated,
            alpha=alpha,
            power=power,
            ratio=n_control / n_treated,
            alternative="two-sided",
        )
    )
    end = 1.0 if direction > 0 else 0.0
    if abs(float(proportion_effectsize(end, control))) < h:
        return None  # even a rate of 100 % (0 %) would not be seen reliably

    def gap(p: float) -> float:
        return abs(float(proportion_effectsize(p, control))) - h

    rate = brentq(gap, control, end, xtol=1e-9)
    return float(rate - control)


def n_for_difference(
    difference: float, control: float = 0.5, *, alpha: float = ALPHA, power: float = POWER
) -> int:
    """The smallest n per arm (equal arms) at which a two-sided test at `alpha` detects
    `difference` (up from `control`, or down where up would pass 1) with `power`
    (statsmodels `NormalIndPower.solve_power`). `control` = 0.5 is the conservative choice
    when the control's rate is unknown: a given difference is hardest to see there.

    Raises ValueError for a difference outside (0, 1) or one that leaves [0, 1]."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _check_p("control", control)
    if not 0.0 < difference < 1.0:
        raise ValueError(f"the difference must be in (0, 1), got {difference}")
    treated = control + difference if control + difference <= 1.0 else control - difference
    if not 0.0 <= treated <= 1.0:
        raise ValueError(f"a difference of {difference} from {control} leaves [0, 1]")
    h = abs(float(proportion_effectsize(treated, control)))
    n = NormalIndPower().solve_power(
        effect_size=h, nobs1=None, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
    )
    return max(2, math.ceil(float(n) - 1e-9))


# -- over seeds: the Cochran-Mantel-Haenszel test stratified by seed --------------------------


@dataclass(frozen=True)
class StratifiedTest:
    """Treated vs control pooled over strata (seeds) by Mantel-Haenszel.

    p_value: the CMH test of a common odds ratio of 1 (with continuity correction);
    odds_ratio, low, high: the Mantel-Haenszel pooled odds ratio and its 95 % interval;
    homogeneity_p: Breslow-Day (Tarone-corrected) test that the odds ratio is the same in every
    stratum (a small p: seeds disagree, read them one by one). None where undefined."""

    strata: int
    p_value: float | None
    odds_ratio: float | None
    low: float | None
    high: float | None
    homogeneity_p: float | None


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def cmh_over_strata(tables: Sequence[tuple[int, int, int, int]]) -> StratifiedTest:
    """Treated vs control pooled over strata, each stratum given as (treated k, treated n,
    control k, control n); statsmodels `StratifiedTable`. Strata with an empty arm carry no
    information and are left out (counted in `strata` only when used).

    Raises ValueError for counts with k > n or negative."""
    import numpy as np
    from statsmodels.stats.contingency_tables import StratifiedTable

    used = []
    for kt, nt, kc, nc in tables:
        if not (0 <= kt <= nt and 0 <= kc <= nc):
            raise ValueError(f"need 0 <= k <= n in each stratum, got {(kt, nt, kc, nc)}")
        if nt and nc:
            used.append(np.array([[kt, nt - kt], [kc, nc - kc]], dtype=float))
    if not used:
        return StratifiedTest(0, None, None, None, None, None)
    # a stratum where every episode has the same outcome adds nothing to the statistic
    informative = [t for t in used if 0 < t[:, 0].sum() < t.sum()]
    if not informative:
        return StratifiedTest(len(used), None, None, None, None, None)
    table = StratifiedTable(np.stack(informative, axis=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = _finite(table.test_null_odds(correction=True).pvalue)
        odds = _finite(table.oddsratio_pooled)
        try:
            low, high = (_finite(v) for v in table.oddsratio_pooled_confint(alpha=ALPHA))
        except (ValueError, ZeroDivisionError, FloatingPointError):
            low = high = None
        homogeneity = (
            _finite(table.test_equal_odds(adjust=True).pvalue) if len(informative) > 1 else None
        )
    return StratifiedTest(len(used), p, odds, low, high, homogeneity)


# -- a difference of two differences (homogeneous minus heterogeneous transfer) ---------------


@dataclass(frozen=True)
class DifferenceOfDifferences:
    """(a1 - a0) - (b1 - b0) for two independent pairs of rates, with a 95 % interval by
    MOVER (Zou & Donner 2008: the two pairs' Newcombe intervals, from statsmodels, combined)."""

    first: float
    second: float
    value: float
    low: float
    high: float


def difference_of_differences(
    first: tuple[int, int, int, int], second: tuple[int, int, int, int], alpha: float = ALPHA
) -> DifferenceOfDifferences | None:
    """Each pair as (treated k, treated n, control k, control n). None when an arm is empty.

    Raises ValueError for counts with k > n."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    parts = []
    for kt, nt, kc, nc in (first, second):
        if not (0 <= kt <= nt and 0 <= kc <= nc):
            raise ValueError(f"need 0 <= k <= n, got {(kt, nt, kc, nc)}")
        if not nt or not nc:
            return None
        low, high = confint_proportions_2indep(
            kt, nt, kc, nc, method="newcomb", compare="diff", alpha=alpha
        )
        parts.append((kt / nt - kc / nc, float(low), float(high)))
    (d1, l1, u1), (d2, l2, u2) = parts
    value = d1 - d2
    low = value - math.sqrt((d1 - l1) ** 2 + (u2 - d2) ** 2)
    high = value + math.sqrt((u1 - d1) ** 2 + (d2 - l2) ** 2)
    return DifferenceOfDifferences(d1, d2, value, low, high)
