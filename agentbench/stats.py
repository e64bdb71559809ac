"""Statistics every report shares: rates with Wilson intervals (statsmodels)."""

from __future__ import annotations

from dataclasses import dataclass


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
