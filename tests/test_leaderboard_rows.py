"""The page's statistics: Newcombe's interval, the MDE, and ranks as significance groups."""

from __future__ import annotations

from typing import Any

import pytest

from agentbench.leaderboard.rows import assign_ranks, mde, newcombe, rate_dict


def _row(trait: str, tk: int, ck: int, n: int = 100) -> dict[str, Any]:
    t, c = rate_dict(tk, n), rate_dict(ck, n)
    return {"trait": trait, "track": "micro-v1", "treated": t, "control": c,
            "difference": (tk - ck) / n if n else None}  # fmt: skip


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Stat Med 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    low, high = newcombe(rate_dict(56, 70), rate_dict(48, 80))
    assert low == pytest.approx(0.0524, abs=1e-4) and high == pytest.approx(0.3339, abs=1e-4)
    assert newcombe(rate_dict(0, 0), rate_dict(1, 3)) == (None, None)


def test_mde_is_the_difference_80_percent_power_detects() -> None:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    found = mde(0.5, 100, 100)
    assert found is not None
    h = NormalIndPower().solve_power(nobs1=100, alpha=0.05, power=0.8, ratio=1.0)
    assert proportion_effectsize(0.5 + found, 0.5) == pytest.approx(h, rel=1e-3)
    assert mde(None, 3, 3) is None and mde(0.2, 0, 3) is None
    # The smoke run's heterogeneous chmod-first row: control 10/11, n 13 / 11. No rise is
    # detectable (the page used to show the 9.1 points left to 100 % as the MDE).
    assert mde(10 / 11, 13, 11) is None
    low = mde(10 / 11, 13, 11, direction=-1)
    assert low is not None and low < -0.4


def test_ranks_are_significance_groups_within_a_trait_and_track() -> None:
    a, b, c = (
        _row("deletion-bias", 60, 0),
        _row("deletion-bias", 58, 0),
        _row("deletion-bias", 5, 5),
    )
    d = _row("chmod-first", 1, 0)
    assign_ranks([a, b, c, d])
    # a and b are not separable: they share rank 1; both are above c, which ranks third.
    assert (a["rank"], b["rank"], c["rank"]) == (1, 1, 3)
    assert d["rank"] == 1  # another trait is another ranking
    e = _row("deletion-bias", 0, 0, n=0)
    assert assign_ranks([e, a])[0]["rank"] is None
