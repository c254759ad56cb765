"""Stats answers read as a client that subtracts them would read them: every count figure,
keyed so that two answers compare figure by figure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cartpredict.monitoring.tally import P_BINS
from cartpredict.privacy.anonymity import K_ANONYMITY

GROUP_COUNTS = ("carts", "predictions", "predicted_abandoned")
OUTCOME_COUNTS = ("resolved", "pending", "without_cart_id")


def _group(group: Mapping[str, Any], prefix: str) -> dict[str, int | None]:
    """A group's counts, and what its splits leave out (its carts minus the parts shown),
    which a client gets by subtraction within the answer."""
    counts = {f"{prefix}.{name}": group[name] for name in GROUP_COUNTS}
    outcomes = group["outcomes"]
    counts |= {f"{prefix}.outcomes.{name}": outcomes[name] for name in OUTCOME_COUNTS}
    carts, flagged = group["carts"], group["predicted_abandoned"]
    counts[f"{prefix}.not_predicted_abandoned"] = None if flagged is None else carts - flagged
    shown = [outcomes[name] for name in OUTCOME_COUNTS if outcomes[name] is not None]
    counts[f"{prefix}.outcomes.left_out"] = carts - sum(shown)
    return counts


def count_figures(answer: Mapping[str, Any]) -> dict[str, int | None]:
    """Every count an answer shows: totals, distribution bins by [lower, upper) (a bin not
    listed holds 0), drift carts by drift window, and each period's figures by its start."""
    figures: dict[str, int | None] = {}
    if answer["totals"] is not None:
        figures |= _group(answer["totals"], "totals")
    bins = {(b["lower"], b["upper"]): b["carts"] for b in answer["distribution"]}
    for i in range(P_BINS):
        lower, upper = i / P_BINS, (i + 1) / P_BINS
        figures[f"distribution[{lower:g}, {upper:g})"] = bins.pop((lower, upper), 0)
    assert bins == {}, f"bins other than the fixed ones: {bins}"
    if answer["totals"] is not None:
        binned = sum(b["carts"] for b in answer["distribution"])
        figures["distribution.left_out"] = answer["totals"]["carts"] - binned
    figures |= _bands(answer)
    figures |= _decisions(answer)
    drift = answer["drift"]
    if drift.get("carts") is not None:
        window = drift["window"]
        figures[f"drift[{window['start']}..{window['end']}].carts"] = drift["carts"]
    for period in answer["periods"]:
        figures |= _group(period, f"periods[{period['start']}]")
    return figures


def _bands(answer: Mapping[str, Any]) -> dict[str, int | None]:
    """Each band's counts, what its carts leave out of those of the distribution's bins in it,
    and what all bands leave out of the totals."""
    figures: dict[str, int | None] = {}
    bins = {round(b["lower"] * P_BINS): b["carts"] for b in answer["distribution"]}
    for band in answer["bands"]:
        key = f"bands[{band['lower']:g}, {band['upper']:g})"
        for name in ("carts", "resolved", "purchased"):
            figures[f"{key}.{name}"] = band[name]
        if band["carts"] is None:
            continue
        figures[f"{key}.unresolved"] = band["carts"] - band["resolved"]
        figures[f"{key}.unpurchased"] = band["resolved"] - band["purchased"]
        inside = range(round(band["lower"] * P_BINS), round(band["upper"] * P_BINS))
        figures[f"{key}.rest_of_its_bins"] = sum(bins.get(i, 0) for i in inside) - band["carts"]
    if answer["totals"] is not None:
        banded = [b for b in answer["bands"] if b["carts"] is not None]
        figures["bands.left_out"] = answer["totals"]["carts"] - sum(b["carts"] for b in banded)
        resolved = answer["totals"]["outcomes"]["resolved"]
        if resolved is not None:
            figures["bands.resolved_left_out"] = resolved - sum(b["resolved"] for b in banded)
    return figures


def _decisions(answer: Mapping[str, Any]) -> dict[str, int | None]:
    """Each action's counts, what its reasons leave out of its treatment carts, and what the
    actions leave out of the named carts."""
    figures: dict[str, int | None] = {}
    decided = 0
    for action, found in answer["decisions"].items():
        key = f"decisions[{action}]"
        figures[f"{key}.treatment"] = found["treatment"]
        figures[f"{key}.control"] = found["control"]
        for reason, n in found["reasons"].items():
            figures[f"{key}.reasons.{reason}"] = n
        if found["treatment"] is not None:
            shown = [n for n in found["reasons"].values() if n is not None]
            figures[f"{key}.reasons.left_out"] = found["treatment"] - sum(shown)
        decided += (found["treatment"] or 0) + (found["control"] or 0)
    totals = answer["totals"]
    if totals is not None and None not in (totals["outcomes"]["resolved"],
                                           totals["outcomes"]["pending"]):  # fmt: skip
        named = totals["outcomes"]["resolved"] + totals["outcomes"]["pending"]
        figures["decisions.left_out"] = named - decided
    return figures


def small_figures(answer: Mapping[str, Any]) -> dict[str, int]:
    """The counts of 1 to k-1 carts an answer shows (there must be none)."""
    return {
        key: n for key, n in count_figures(answer).items() if n is not None and 0 < n < K_ANONYMITY
    }


def periods(answer: Mapping[str, Any]) -> set[str]:
    return {p["start"] for p in answer["periods"]}


def nested(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether the groups one answer sums are among those of the other, or the reverse: then
    subtracting them isolates the groups in between."""
    return periods(one) <= periods(other) or periods(other) <= periods(one)


def small_differences(
    one: Mapping[str, Any], other: Mapping[str, Any]
) -> list[tuple[str, int, int]]:
    """The figures shown in both answers that differ by 1 to k-1 carts."""
    a, b = count_figures(one), count_figures(other)
    return [
        (key, n, b[key])
        for key, n in a.items()
        if n is not None and b.get(key) is not None and 0 < abs(n - b[key]) < K_ANONYMITY  # type: ignore[operator]
    ]
