"""The stats' bands of P(abandoned) and decisions by action, in words and charts: on the
Overview, the actions recommended by type; on the Targeting page, what became of each band's
carts and the decision they got most often.

Every figure is one the stats answer shows (``StatsService.report``'s ``bands`` and
``decisions``, k-anonymous as in ``GET /retailer/{id}/stats``); nothing here counts carts. The
pages call these functions on the ``stats`` answer they already have (``render.py`` makes them
the templates' globals).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from cartpredict.api.pages import charts
from cartpredict.api.pages.figures import Chart, pct
from cartpredict.decisions.policy import NO_ACTION

REASONS = {
    "gain": "expected to pay",
    "budget": "would pay, but the budget keeps actions for carts that pay more",
    "no_gain": "no action pays",
    "not_contactable": "only a message would pay, and the shopper did not consent",
    "no_policy": "the policy has no actions",
}


@dataclass(frozen=True)
class Count:
    """A count as the stats show it: ``value`` None when left out; ``partial`` when summed over
    some of the window's periods only (the others left it out, so the window holds more: at
    least one cart, as a count left out is never 0)."""

    value: int | None
    partial: bool = False

    @property
    def shown(self) -> int | None:
        return None if self.partial and not self.value else self.value

    def __str__(self) -> str:
        if self.shown is None:
            return "not shown"
        return f"at least {self.shown:,}" if self.partial else f"{self.shown:,}"


def _partial(stats: Mapping[str, Any]) -> set[str]:
    """The fields the stats list as left out: where a value is shown, it is a partial sum."""
    return {note["field"] for note in stats["suppressed"]}


def _drawn(draw: Callable[[int], Markup]) -> Chart:
    return Chart(draw(charts.WIDE), draw(charts.NARROW))


def action_words(action: str) -> str:
    return "no action" if action == NO_ACTION else action


# --- Overview: actions recommended by type --------------------------------------------------


@dataclass(frozen=True)
class Recommended:
    action: str  # as the policy names it, or "none"
    treated: Count  # carts of the treatment group it was decided for
    held_out: Count  # carts of the control group that held it out
    reasons: list[tuple[str, Count]]  # (reason in words, treated carts)

    @property
    def words(self) -> str:
        return action_words(self.action)


def recommended(stats: Mapping[str, Any]) -> list[Recommended]:
    """Per action (no action last), the carts it was decided for, as the stats show them."""
    partial = _partial(stats)
    out = []
    for action, found in stats["decisions"].items():
        field = f"decisions.{action}"

        def counted(name: str, value: int | None, field: str = field) -> Count:
            return Count(value, f"{field}.{name}" in partial)

        reasons = [(REASONS.get(r, r), counted(f"reasons.{r}", n))
                   for r, n in found["reasons"].items()]  # fmt: skip
        out.append(Recommended(action, counted("treatment", found["treatment"]),
                               counted("control", found["control"]), reasons))  # fmt: skip
    return sorted(out, key=lambda r: (r.action == NO_ACTION, -(r.treated.shown or 0), r.action))


def recommended_chart(found: Sequence[Recommended]) -> Chart | None:
    """One bar per action: the treatment group's carts decided it; no action in grey."""
    if not any(r.treated.shown for r in found):
        return None
    bars = [charts.Bar(r.words, r.treated.shown, str(r.treated)) for r in found]
    colours = [charts.GREY if r.action == NO_ACTION else charts.BLUE for r in found]
    return _drawn(lambda width: charts.columns(
        bars, colours=colours, title="Actions recommended by type",
        description="Carts of the treatment group per action decided for them (no action in "
        "grey); a dash where fewer than 10 carts would be shown.", width=width,
    ))  # fmt: skip


# --- Targeting: what became of each band's carts ---------------------------------------------


@dataclass(frozen=True)
class Realised:
    lower: float
    upper: float
    carts: Count
    resolved: Count
    purchased: Count
    rate: float | None  # over the periods summed
    decision: str | None  # in words: what most of its carts got

    @property
    def label(self) -> str:
        return f"{self.lower * 100:.0f}–{self.upper * 100:.0f} %"

    @property
    def empty(self) -> bool:
        """No carts in the band (in every period shown, and none left out)."""
        return self.carts.value == 0 and not self.carts.partial


def realised(stats: Mapping[str, Any]) -> list[Realised]:
    """The bands, likeliest abandoned first."""
    partial = _partial(stats)
    out = []
    for i, b in enumerate(stats["bands"]):
        some = f"bands.{i}" in partial
        out.append(Realised(b["lower"], b["upper"], Count(b["carts"], some),
                            Count(b["resolved"], some), Count(b["purchased"], some),
                            b["purchase_rate"], decision_words(b["decision"])))  # fmt: skip
    return sorted(out, key=lambda b: -b.lower)


def decision_words(decision: Mapping[str, str] | None) -> str | None:
    if decision is None:
        return None
    if decision["group"] == "control":
        return "held out (control group)"
    return action_words(decision["action"])


def realised_chart(found: Sequence[Realised]) -> Chart | None:
    """The realised purchase rate per band, lowest P(abandoned) first (so it reads as a
    scale); a dash where it is not shown."""
    if not any(b.rate is not None for b in found):
        return None
    ordered = sorted(found, key=lambda b: b.lower)
    bars = [charts.Bar(b.label, None if b.rate is None else b.rate * 100, pct(b.rate))
            for b in ordered]  # fmt: skip
    return _drawn(lambda width: charts.columns(
        bars, colour=charts.GREEN, unit=" %", title="Bought within 24 h, per band of P(abandoned)",
        description="The share of each band's carts with a known outcome that were bought "
        "within 24 hours of their prediction.", width=width,
    ))  # fmt: skip
