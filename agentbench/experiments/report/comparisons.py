"""Statistics the report adds from k and n (the run's own tests come from results.json): the
difference of two rates with its Newcombe interval and Fisher p, the minimum detectable
difference and the power for the teacher's gap.

Errors: `ReportError` for a stored p-value outside [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentbench.experiments.report.checked import Cell, Rate, ReportError, arm_rate

ALPHA = 0.05


@dataclass(frozen=True)
class Diff:
    treated: Rate
    control: Rate
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None

    @property
    def testable(self) -> bool:
        return self.difference is not None and self.p_value is not None

    @property
    def significant(self) -> bool:
        """p < 0.05 and the 95 % interval of the difference excludes 0."""
        if not self.testable or self.low is None or self.high is None:
            return False
        assert self.p_value is not None
        return self.p_value < ALPHA and (self.low > 0 or self.high < 0)

    def difference_text(self) -> str:
        if self.difference is None:
            return "n/a"
        text = f"{self.difference * 100:+.0f} pp"
        if self.low is not None and self.high is not None:
            text += f" [{self.low * 100:+.0f}, {self.high * 100:+.0f}]"
        return text

    def p_text(self) -> str:
        return "n/a" if self.p_value is None else f"{self.p_value:.3g}"

    def reading(self) -> str:
        if not self.testable:
            return "n/a (n=0)"
        return "significant difference" if self.significant else "no significant difference"


def compare(treated: Rate, control: Rate, p_value: float | None = None) -> Diff:
    """Difference with a Newcombe 95 % interval; Fisher's exact p (computed unless given)."""
    if not treated.n or not control.n:
        return Diff(treated, control, None, None, None, None)
    from statsmodels.stats.proportion import confint_proportions_2indep

    from agentbench.experiments.metrics import RateRecord, fisher_exact

    diff = treated.k / treated.n - control.k / control.n
    low, high = confint_proportions_2indep(
        treated.k, treated.n, control.k, control.n, method="newcomb", compare="diff", alpha=ALPHA
    )
    if p_value is None:
        records = [RateRecord(r.k, r.n, r.value, r.low, r.high) for r in (treated, control)]
        p_value = fisher_exact(records[0], records[1]).p_value
    return Diff(treated, control, diff, float(low), float(high), p_value)


def stored_p(
    cell: Any, metric: str, where: str, arms: tuple[str, str] = ("student", "control-student")
) -> float | None:
    """The run's Fisher p for `metric` between `arms` (None when the run did not record one)."""
    for comparison in cell.comparisons:
        if comparison.metric == metric and (comparison.treated_arm, comparison.control_arm) == arms:
            p = comparison.p_value
            if p is not None and not 0.0 <= p <= 1.0:
                raise ReportError(f"{where}: comparisons[{metric}].p_value {p} is not in [0, 1]")
            return p
    return None


def teacher_gap(
    cell: Cell, teacher: str, reference: str, metric: str | None = None
) -> float | None:
    """teacher - reference on `metric` (the headline by default); None where an arm is empty."""
    t, r = arm_rate(cell, teacher, metric), arm_rate(cell, reference, metric)
    if not t.n or not r.n or t.value is None or r.value is None:
        return None
    return t.value - r.value


def mde_text(treated: Rate, control: Rate, gap: float | None) -> str:
    """The minimum detectable difference towards the teacher's trait, in points."""
    from agentbench.stats import min_detectable_difference

    if not treated.n or not control.n or control.value is None:
        return "n/a (n=0)"
    direction = -1 if gap is not None and gap < 0 else 1
    mde = min_detectable_difference(treated.n, control.n, control.value, direction=direction)
    if mde is None:
        return "none reachable at this n"
    return f"{mde * 100:+.0f} pp"


def power_text(treated: Rate, control: Rate, gap: float | None) -> str:
    """The power to see a student that inherited the teacher's whole gap."""
    from agentbench.stats import power_two_rates

    if gap is None or not treated.n or not control.n or control.value is None:
        return "n/a"
    target = min(1.0, max(0.0, control.value + gap))
    power = power_two_rates(target, control.value, treated.n, control.n)
    return "n/a" if power is None else f"{power:.2f} (gap {gap * 100:+.0f} pp)"
