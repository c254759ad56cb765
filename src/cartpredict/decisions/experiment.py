"""Treatment against control: the difference of two purchase rates, with its interval.

Newcombe's hybrid score interval (R. G. Newcombe, "Interval estimation for the difference
between independent proportions: comparison of eleven methods", Statistics in Medicine 17,
1998, method 10) is built from the two groups' Wilson score intervals. Unlike the plain Wald
interval it stays inside [-1, 1] and keeps its coverage with few carts and with rates near 0
or 1, which is where small stores' experiments live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion of ``k`` in ``n`` (n > 0)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError("need 0 <= k <= n and n > 0")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """The 95 % interval of p1 − p2 (p1 = k1/n1, p2 = k2/n2), Newcombe's method 10."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))  # fmt: skip


@dataclass(frozen=True)
class Arm:
    carts: int
    purchased: int
    revenue: float  # the bought carts' values
    margin: float  # what the retailer kept of them: value x (margin - discount given)
    cost: float  # the actions' costs (treatment only)
    margin_sq: float | None = None  # the sum of each cart's margin squared (None: not kept)

    @property
    def rate(self) -> float | None:
        return None if self.carts == 0 else self.purchased / self.carts


@dataclass(frozen=True)
class Comparison:
    uplift: float
    ci95: tuple[float, float]
    incremental_purchases: float
    incremental_margin: float
    margin_ci95: tuple[float, float] | None = None


def compare(treatment: Arm, control: Arm) -> Comparison:
    """Intent to treat: the uplift in purchase rate, purchases and margin it added over the
    treatment group (margin: what treatment earned, less what its carts would have earned at
    the control group's margin per cart, less the actions' costs)."""
    if treatment.carts == 0 or control.carts == 0:
        raise ValueError("both groups need carts")
    uplift = treatment.purchased / treatment.carts - control.purchased / control.carts
    ci = newcombe(treatment.purchased, treatment.carts, control.purchased, control.carts)
    margin = treatment.margin - control.margin / control.carts * treatment.carts - treatment.cost
    return Comparison(uplift, ci, uplift * treatment.carts, margin,
                      margin_interval(treatment, control, margin))  # fmt: skip


def margin_interval(
    treatment: Arm, control: Arm, estimate: float, z: float = Z95
) -> tuple[float, float] | None:
    """The 95 % interval of the margin added: n_T × (mean_T − mean_C) of the carts' margins,
    with the normal approximation of the difference of two means (Welch's standard error,
    from each arm's sum and sum of squares; the costs are known, not drawn). None when an arm
    does not keep its sum of squares or has a single cart."""
    if treatment.margin_sq is None or control.margin_sq is None:
        return None
    if treatment.carts < 2 or control.carts < 2:
        return None

    def variance(arm: Arm) -> float:
        mean = arm.margin / arm.carts
        assert arm.margin_sq is not None
        return max(arm.margin_sq / arm.carts - mean * mean, 0.0) * arm.carts / (arm.carts - 1)

    se = treatment.carts * math.sqrt(
        variance(treatment) / treatment.carts + variance(control) / control.carts
    )
    return estimate - z * se, estimate + z * se
