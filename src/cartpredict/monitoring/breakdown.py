"""Two breakdowns of a day's carts, and what a retailer may see of them (``stats.py`` shows
them): by band of P(abandoned), each band's outcomes and decisions; and by decision, the
action (or none) per group and why.

Counted by the rollup (``rollup.day_figures``) from the carts of the day that name their cart,
each once by its latest prediction (as ``tally.py`` counts them), with the outcome of
``outcome.py`` (*purchased*: bought within 24 h after the prediction, the rule of the realised
precision) and the decision logged with the prediction. A cart scored without an id has no
outcome and no decision: it counts in its band as ``without_cart_id`` (from the counts kept for
such carts, whose distribution has the same bins). Stored in the day's figures under ``KEY``::

    {"bands": [{"purchased": n, "abandoned": n, "pending": n, "without_cart_id": n,
                "decisions": {"treatment:reminder_email": n, "control:none": n, ...}}, ...],
     "decisions": {"treatment": {action: {reason: n}}, "control": {held-out action: n},
                   "undecided": n}}

What a retailer sees, per calendar group of ``stats.py`` (final, fixed by the calendar), so that
every count shown is 0 or at least k, and so is every difference of two answers or of two
figures of one answer:

* nothing of a group whose named carts are not shown (its ``resolved``, ``pending`` or
  ``without_cart_id`` left out): both breakdowns split those carts;
* **bands**: a band of a group is shown whole (its carts, their outcomes, the decisions' most
  common) or not at all. It is left out when it holds an outcome of 1 to k-1 carts (purchased,
  abandoned, pending, without an id), or when a bin of the distribution inside it is left out
  (its carts would give the bin away); then, while the bands left out hold 1 to k-1 carts of
  some outcome together (the group's total of that outcome, less the bands shown, would give
  them away), the shown band with the fewest carts is left out too. Bands are never merged:
  their bounds stay fixed, so that groups add up;
* **decisions**: each action's treatment carts and control carts (those that held it out) are
  parts of the group's named carts, shown or left out as ``anonymity.suppress_small`` decides
  (with the named carts that have no decision as one more part); the reasons of a shown
  treatment count are parts of it, decided the same way;
* totals over the window are sums over the groups where a figure is shown; a band's most
  common decision is named only when it covers at least k of the band's carts (its count is
  never shown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cartpredict.decisions.decide import REASONS
from cartpredict.monitoring.tally import P_BINS
from cartpredict.privacy.anonymity import K_ANONYMITY, kept, suppress_small
from cartpredict.storage import Decided

KEY = "breakdown"  # where a day's stats row keeps these figures
# Bands of P(abandoned) as ranges of the distribution's bins of 0.1: 0–0.5 (few carts score
# below a half where most carts are abandoned), then 0.5–0.7, 0.7–0.8, 0.8–0.9 and 0.9–1.
BANDS = ((0, 5), (5, 7), (7, 8), (8, 9), (9, 10))
COLUMNS = ("purchased", "abandoned", "pending", "without_cart_id")
_COLUMN_OF = {"tp": "abandoned", "fn": "abandoned", "fp": "purchased", "tn": "purchased",
              "pending": "pending", "without_cart_id": "without_cart_id"}  # fmt: skip
_BAND_OF_BIN = [next(i for i, (lo, hi) in enumerate(BANDS) if lo <= b < hi) for b in range(P_BINS)]


# --- counting ----------------------------------------------------------------------------------


def empty() -> dict[str, Any]:
    return {
        "bands": [{**dict.fromkeys(COLUMNS, 0), "decisions": {}} for _ in BANDS],
        "decisions": {"treatment": {}, "control": {}, "undecided": 0},
    }


def band_of(p_abandoned: float) -> int:
    return _BAND_OF_BIN[min(int(p_abandoned * P_BINS), P_BINS - 1)]


def count(
    figures: dict[str, Any], p_abandoned: float, outcome: str, decision: Decided | None
) -> None:
    """Count one scored cart (in place); ``outcome`` as ``outcome.outcome`` gives it."""
    band = figures["bands"][band_of(p_abandoned)]
    band[_COLUMN_OF[outcome]] += 1
    if outcome == "without_cart_id":
        return
    decisions = figures["decisions"]
    if decision is None:
        decisions["undecided"] += 1
        return
    key = f"{decision.group}:{decision.action}"
    band["decisions"][key] = band["decisions"].get(key, 0) + 1
    if decision.group == "control":
        held = decisions["control"]
        held[decision.held_out] = held.get(decision.held_out, 0) + 1
    else:
        reasons = decisions["treatment"].setdefault(decision.action, {})
        reasons[decision.reason] = reasons.get(decision.reason, 0) + 1


def count_unnamed(figures: dict[str, Any], distribution: Sequence[int]) -> None:
    """Carts scored without an id, from their distribution's bins (in place)."""
    for i, n in enumerate(distribution):
        figures["bands"][_BAND_OF_BIN[i]]["without_cart_id"] += n


def total(days: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The sum of several days' figures (their ``KEY``); None when a day has none (rolled up
    before they were kept)."""
    out = empty()
    for figures in days:
        day = figures.get(KEY)
        if day is None:
            return None
        for into, band in zip(out["bands"], day["bands"], strict=True):
            for column in COLUMNS:
                into[column] += band[column]
            _add(into["decisions"], band["decisions"])
        decisions = day["decisions"]
        for action, reasons in decisions["treatment"].items():
            _add(out["decisions"]["treatment"].setdefault(action, {}), reasons)
        _add(out["decisions"]["control"], decisions["control"])
        out["decisions"]["undecided"] += decisions["undecided"]
    return out


def _add(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


# --- what a group shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """What one calendar group shows: per band its figures or None (left out); per action its
    treatment and control carts and the treatment's reasons, each None where left out (None
    for the whole: nothing of its decisions is shown)."""

    bands: tuple[Mapping[str, Any] | None, ...]
    decisions: dict[str, dict[str, Any]] | None
    why: str | None = None  # why nothing of the group is shown


def group(days: Iterable[Mapping[str, Any]], distribution: Sequence[int], *, named: bool) -> Group:
    """What may be shown of one group: ``days``, its days' figures; ``distribution``, its bins of
    P(abandoned) (all of its carts); ``named``: whether its named carts are shown (its
    ``resolved``, ``pending`` and ``without_cart_id``)."""
    figures = total(days)
    nothing = (None,) * len(BANDS)
    if figures is None:
        return Group(nothing, None, "days rolled up before these figures were kept")
    if not named:
        return Group(nothing, None, "its carts with and without an id are not shown apart")
    return Group(_bands(figures["bands"], distribution), _decisions(figures["decisions"]))


def _bands(rows: Sequence[Mapping[str, Any]], distribution: Sequence[int]) -> tuple[Any, ...]:
    k = K_ANONYMITY
    bins = suppress_small(distribution, k)
    shown = [
        all(bins[b] is not None for b in range(lo, hi)) and all(kept(row[c], k) for c in COLUMNS)
        for (lo, hi), row in zip(BANDS, rows, strict=True)
    ]

    def carts(i: int) -> int:
        return sum(rows[i][c] for c in COLUMNS)

    while True:
        hidden = [row for row, s in zip(rows, shown, strict=True) if not s]
        if all(kept(sum(row[c] for row in hidden), k) for c in COLUMNS):
            return tuple(row if s else None for row, s in zip(rows, shown, strict=True))
        more = [i for i, s in enumerate(shown) if s and carts(i)]
        if not more:
            return (None,) * len(rows)
        shown[min(more, key=lambda i: (carts(i), i))] = False


def _decisions(found: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    k = K_ANONYMITY
    actions = sorted(set(found["treatment"]) | set(found["control"]))
    treated = [sum(found["treatment"].get(a, {}).values()) for a in actions]
    held = [found["control"].get(a, 0) for a in actions]
    parts = suppress_small([*treated, *held, found["undecided"]], k)
    out: dict[str, dict[str, Any]] = {}
    for i, action in enumerate(actions):
        counts = found["treatment"].get(action, {})
        names = sorted(counts, key=_reason_order)
        split = suppress_small([counts[r] for r in names], k) if parts[i] else [None] * len(names)
        out[action] = {"treatment": parts[i], "control": parts[len(actions) + i],
                       "reasons": dict(zip(names, split, strict=True))}  # fmt: skip
    return out


def _reason_order(reason: str) -> tuple[int, str]:
    return (REASONS.index(reason) if reason in REASONS else len(REASONS), reason)


# --- what the window shows ---------------------------------------------------------------------


class Notes(Protocol):
    """Where the stats' response says what it left out (``stats.Notes``)."""

    def left_out(self, field: str, reason: str) -> None: ...

    def ratio(self, field: str, hits: int, among: int, what: str) -> float | None: ...


def bands_out(groups: Sequence[Group], notes: Notes) -> list[dict[str, Any]]:
    """Per band, over the groups where it is shown: its carts, those with a known outcome, the
    purchased, their rate, and the decision its carts got most often (when at least k did)."""
    k = K_ANONYMITY
    if any(g.why for g in groups):
        notes.left_out("bands", _why(groups))
    out = []
    for i, (lo, hi) in enumerate(BANDS):
        field = f"bands.{i}"
        rows = [g.bands[i] for g in groups]
        shown = [row for row in rows if row is not None]
        band: dict[str, Any] = {"lower": lo / P_BINS, "upper": hi / P_BINS}
        if not shown:
            notes.left_out(field, f"no period shows it: a bin or an outcome of its carts covers "
                           f"1 to {k - 1} carts, or would give one away")  # fmt: skip
            out.append(band | dict.fromkeys(("carts", "resolved", "purchased", "purchase_rate",
                                             "decision")))  # fmt: skip
            continue
        if len(shown) < len(rows):
            notes.left_out(field, "sums the periods where it is shown (in the others a bin or "
                           f"an outcome of its carts covers 1 to {k - 1} carts, or would give "
                           "one away, or the period is left out of every band)")  # fmt: skip
        purchased = sum(row["purchased"] for row in shown)
        resolved = purchased + sum(row["abandoned"] for row in shown)
        decisions: dict[str, int] = {}
        for row in shown:
            _add(decisions, row["decisions"])
        band |= {
            "carts": sum(sum(row[c] for c in COLUMNS) for row in shown),
            "resolved": resolved,
            "purchased": purchased,
            "purchase_rate": notes.ratio(
                f"{field}.purchase_rate", purchased, resolved, "with a known outcome"
            )
            if resolved  # no carts, no rate: nothing left out
            else None,
            "decision": _most_common(decisions, f"{field}.decision", notes),
        }
        out.append(band)
    return out


def _most_common(decisions: Mapping[str, int], field: str, notes: Notes) -> dict[str, str] | None:
    if not decisions:
        return None
    key, n = max(decisions.items(), key=lambda item: (item[1], item[0]))
    if n < K_ANONYMITY:
        notes.left_out(field, f"no decision covers {K_ANONYMITY} of its carts")
        return None
    group, _, action = key.partition(":")
    return {"group": group, "action": action}


def decisions_out(groups: Sequence[Group], notes: Notes) -> dict[str, dict[str, Any]]:
    """Per action (and ``none``), over the groups where each figure is shown: the carts decided
    in the treatment group, the carts that held it out in the control group, and the treatment
    carts' reasons."""
    if any(g.why for g in groups):
        notes.left_out("decisions", _why(groups))
    shown = [g.decisions for g in groups if g.decisions is not None]
    actions = sorted({a for d in shown for a in d}, key=lambda a: (a == "none", a))
    out: dict[str, dict[str, Any]] = {}
    for action in actions:
        found = [d[action] for d in shown if action in d]
        field = f"decisions.{action}"
        reasons = sorted({r for f in found for r in f["reasons"]}, key=_reason_order)
        out[action] = {
            "treatment": _summed([f["treatment"] for f in found], f"{field}.treatment", notes),
            "control": _summed([f["control"] for f in found], f"{field}.control", notes),
            "reasons": {
                r: _summed(
                    [None if f["treatment"] is None else f["reasons"].get(r, 0) for f in found],
                    f"{field}.reasons.{r}",
                    notes,
                )
                for r in reasons
            },
        }
    return out


def _summed(values: Sequence[int | None], field: str, notes: Notes) -> int | None:
    present = [v for v in values if v is not None]
    if len(present) < len(values):
        notes.left_out(field, f"sums the periods where it is shown (in the others it, or what it "
                       f"would give away, covers fewer than {K_ANONYMITY} carts)"
                       if present else f"it, or what it would give away, covers fewer than "
                       f"{K_ANONYMITY} carts")  # fmt: skip
    return sum(present) if present else None


def _why(groups: Sequence[Group]) -> str:
    reasons = sorted({g.why for g in groups if g.why})
    return "left out of some periods: " + "; ".join(reasons)
