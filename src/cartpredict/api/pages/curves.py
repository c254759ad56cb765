"""Curves the pages draw from what training kept: on the Model page, the model's and the baseline
rule's precision-recall curves and calibration on the retailer's own held-out carts (the model
info's ``curves``); on the Experiments page, per action served by a learnt recovery model, the
cross-fitted Qini curves of that model and of what it was compared with (the model info's
``recovery.actions[].last_training.heldout.qini_curve``).

Every point was computed at training in steps of at least 10 carts; nothing here counts carts.
The charts are line charts on two numeric scales, inline SVG as in ``charts.py`` (whose
colours, Okabe–Ito, and SVG frame they share): the lines differ by dash and marker as well as
colour, each point has a tooltip, and the pages give the same figures in a table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from cartpredict.api.pages import charts
from cartpredict.api.pages.figures import Chart, money, pct

WIDE = 520  # a chart's viewBox on a screen (two side by side), and on a phone
NARROW = 360
SOLID, DASHED, DOTTED = "", "7 4", "2 4"


@dataclass(frozen=True)
class Line:
    name: str
    colour: str
    points: Sequence[tuple[float, float]]
    dash: str = SOLID
    marker: str = "circle"  # "circle" | "square" | "" (none)
    tips: Sequence[str] = ()  # one per point


@dataclass(frozen=True)
class Scale:
    label: str
    low: float
    high: float
    ticks: Sequence[float]
    tick: Callable[[float], str]


def percent_scale(label: str) -> Scale:
    return Scale(label, 0.0, 1.0, (0.0, 0.25, 0.5, 0.75, 1.0), lambda v: f"{v * 100:.0f} %")


def plot(lines: Sequence[Line], x: Scale, y: Scale, *, title: str, description: str,
         width: int, guides: Sequence[Line] = ()) -> Markup:  # fmt: skip
    """``lines`` (the first drawn last, on top) and unlabelled-point ``guides`` (a reference:
    the diagonal, random targeting) over ``x`` and ``y``, with a legend naming each."""
    legend, legend_h = _legend([*lines, *guides], width)
    left, right, top, bottom = 54, 26, legend_h + 10, 46
    height = top + min(300, int(width * 0.62)) + bottom
    plot_w, plot_h = width - left - right, height - top - bottom

    def at(px: float, py: float) -> tuple[float, float]:
        fx = (px - x.low) / (x.high - x.low)
        fy = (py - y.low) / (y.high - y.low)
        return left + fx * plot_w, top + plot_h * (1.0 - fy)

    body = list(legend)
    for value in y.ticks:
        _, ty = at(x.low, value)
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
                    'stroke="#d9d9d9" stroke-width="1"/>')  # fmt: skip
        body.append(charts._text(left - 6, ty + 4, y.tick(value), anchor="end", fill=charts.GREY))
    for value in x.ticks:
        tx, _ = at(value, y.low)
        body.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{top + plot_h}" '
                    'stroke="#eeeeee" stroke-width="1"/>')  # fmt: skip
        body.append(charts._text(tx, top + plot_h + 16, x.tick(value), anchor="middle",
                                 fill=charts.GREY))  # fmt: skip
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
                'stroke="#8c8c8c" stroke-width="1"/>')  # fmt: skip
    body.append(charts._text(left + plot_w / 2, height - 6, x.label, anchor="middle"))
    centre = top + plot_h / 2
    body.append(f'<g transform="translate(14 {centre:.1f}) rotate(-90)">'
                f"{charts._text(0, 0, y.label, anchor='middle')}</g>")  # fmt: skip
    for line in [*guides, *reversed(lines)]:
        body.extend(_drawn(line, [at(px, py) for px, py in line.points]))
    return charts._svg(width, height, title, description, body)


def _legend(lines: Sequence[Line], width: int) -> tuple[list[str], int]:
    """One key per line, left to right, onto a new row where the next would not fit."""
    body: list[str] = []
    x, y, row_h = 8.0, 14.0, 18
    for line in lines:
        room = 44 + len(line.name) * charts.FONT * 0.6
        if x > 8 and x + room > width - 8:
            x, y = 8.0, y + row_h
        body.append(f'<line x1="{x:.1f}" x2="{x + 24:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" '
                    f'stroke="{line.colour}" stroke-width="3"{_dash(line.dash)}/>')  # fmt: skip
        body.extend(_marker(line, x + 12, y - 4, ""))
        body.append(charts._text(x + 30, y, line.name))
        x += room
    return body, int(y + 6)


def _drawn(line: Line, points: Sequence[tuple[float, float]]) -> list[str]:
    if not points:
        return []
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    body = [f'<polyline points="{path}" fill="none" stroke="{line.colour}" stroke-width="2.5" '
            f'stroke-linejoin="round"{_dash(line.dash)}/>']  # fmt: skip
    for i, (px, py) in enumerate(points):
        body.extend(_marker(line, px, py, line.tips[i] if i < len(line.tips) else ""))
    return body


def _marker(line: Line, px: float, py: float, tip: str) -> list[str]:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    if line.marker == "circle":
        return [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{line.colour}">{title}'
                "</circle>"]  # fmt: skip
    if line.marker == "square":
        return [f'<rect x="{px - 3.5:.1f}" y="{py - 3.5:.1f}" width="7" height="7" fill="#fff" '
                f'stroke="{line.colour}" stroke-width="2">{title}</rect>']  # fmt: skip
    return []


def _dash(dash: str) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""


def _chart(draw: Callable[[int], Markup]) -> Chart:
    return Chart(draw(WIDE), draw(NARROW))


# --- the Model page: the model against the rule on held-out carts -----------------------------


@dataclass(frozen=True)
class BinRow:
    """A calibration bin, in P(abandoned) as the page speaks of it."""

    who: str
    lower: float
    upper: float
    snapshots: int
    predicted: float
    observed: float


@dataclass(frozen=True)
class HeldOut:
    abandoned: Chart | None  # precision-recall, abandoned the positive class
    purchased: Chart | None  # precision-recall, purchased the positive class
    calibration: Chart | None
    bins: list[BinRow]
    test_carts: int | None
    why: str | None  # no curves: why, in words

    @property
    def shown(self) -> bool:
        return self.abandoned is not None or self.calibration is not None


MODEL, RULE = "this model", "the rule"


def held_out(info: Mapping[str, Any], rule: str) -> HeldOut | None:
    """The model's and the rule's curves on the retailer's held-out carts (``rule``: the rule
    in a few words); None for the baseline rule, which has no held-out comparison."""
    if info["kind"] == "baseline":
        return None
    kept = info.get("curves")
    test_carts = (info.get("metrics") or {}).get("n_test_carts")
    if not kept:
        return HeldOut(None, None, None, [], test_carts, _why_none(info))
    model, base = kept["candidate"], kept["baseline"]
    target = info["operating_point"]["precision_target"]
    return HeldOut(
        abandoned=_pr_chart(model["pr_abandoned"], base["pr_abandoned"], "abandoned", rule,
                            target=target),
        purchased=_pr_chart(model["pr_purchased"], base["pr_purchased"], "bought", rule),
        calibration=_calibration_chart(model["calibration"], base["calibration"], rule),
        bins=_bins(MODEL, model["calibration"]) + _bins(RULE, base["calibration"]),
        test_carts=test_carts,
        why=None,
    )  # fmt: skip


def _why_none(info: Mapping[str, Any]) -> str:
    notes = {str(n["field"]): str(n["reason"]) for n in info.get("suppressed") or ()}
    if "curves" in notes:
        return notes["curves"]
    if info.get("metrics") is None and "metrics" in notes:
        return notes["metrics"]
    return ("this model version was trained before its curves were kept; the next training "
            "keeps them")  # fmt: skip


def _pr_chart(model: Mapping[str, Any] | None, base: Mapping[str, Any] | None, what: str,
              rule: str, *, target: float | None = None) -> Chart | None:  # fmt: skip
    """Precision against recall for the carts ``what`` (abandoned or bought)."""
    if model is None and base is None:
        return None
    lines = [
        _pr_line(MODEL, charts.BLUE, SOLID, "circle", model, what),
        _pr_line(f"{RULE} ({rule})", charts.ORANGE, DASHED, "square", base, what),
    ]
    shown = [line for line in lines if line.points]
    guides = []
    if target is not None:
        guides.append(Line(f"your target ({pct(target, 0)})", charts.GREY,
                           ((0.0, target), (1.0, target)), DOTTED, ""))  # fmt: skip
    found = "abandoners" if what == "abandoned" else "buyers"
    return _chart(lambda width: plot(
        shown, percent_scale(f"recall: share of the {what} carts found"),
        percent_scale("precision: share right"),
        title=f"Finding the {found}: precision against recall, the model and the rule",
        description=f"On your held-out carts: of the carts called {what}, the share that were "
        f"(precision), against the share of the {what} carts called so (recall), as the "
        "threshold moves; each point at least 10 carts from the next.",
        width=width, guides=guides,
    ))  # fmt: skip


def _pr_line(name: str, colour: str, dash: str, marker: str,
             curve: Mapping[str, Any] | None, what: str) -> Line:  # fmt: skip
    if curve is None:
        return Line(name, colour, (), dash, marker)
    points = [(r, p) for p, r in zip(curve["precision"], curve["recall"], strict=True)][::-1]
    points = [(r, p) for r, p in points if r > 0.0]  # the curve's end at recall 0: no carts
    tips = [f"{name}: {pct(r)} of the {what} carts found, {pct(p)} of those called {what} were"
            for r, p in points]  # fmt: skip
    return Line(name, colour, points, dash, marker, tips)


def _calibration_chart(model: Sequence[Mapping[str, Any]], base: Sequence[Mapping[str, Any]],
                       rule: str) -> Chart | None:  # fmt: skip
    if not model and not base:
        return None
    lines = [
        _calibration_line(MODEL, charts.BLUE, SOLID, "circle", model),
        _calibration_line(f"{RULE} ({rule})", charts.ORANGE, DASHED, "square", base),
    ]
    diagonal = Line("as predicted", charts.GREY, ((0.0, 0.0), (1.0, 1.0)), DOTTED, "")
    return _chart(lambda width: plot(
        [line for line in lines if line.points],
        percent_scale("predicted P(abandoned)"), percent_scale("share abandoned"),
        title="Calibration: predicted against realised abandonment, the model and the rule",
        description="On your held-out carts, bins of the predicted probability of abandonment "
        "(each of at least 10 carts): the mean prediction against the share of the carts that "
        "were abandoned. On the dotted diagonal, predictions come true as often as they say.",
        width=width, guides=[diagonal],
    ))  # fmt: skip


def _calibration_line(name: str, colour: str, dash: str, marker: str,
                      bins: Sequence[Mapping[str, Any]]) -> Line:  # fmt: skip
    rows = sorted(_bins(name, bins), key=lambda b: b.predicted)
    tips = [f"{name}: predicted {pct(b.predicted)}, abandoned {pct(b.observed)} "
            f"({b.snapshots:,} snapshots)" for b in rows]  # fmt: skip
    return Line(name, colour, [(b.predicted, b.observed) for b in rows], dash, marker, tips)


def _bins(who: str, bins: Sequence[Mapping[str, Any]]) -> list[BinRow]:
    """Bins of P(purchased), as training keeps them, turned into P(abandoned), highest first."""
    return [
        BinRow(who, 1.0 - b["upper"], 1.0 - b["lower"], b["count"], 1.0 - b["mean_predicted"],
               1.0 - b["observed_rate"])
        for b in reversed(bins)
    ]  # fmt: skip


def rule_words(threshold: float, currency: str) -> str:
    return f"under {money(threshold, currency, 0)}"


# --- the Experiments page: who responds, ranked -------------------------------------------


@dataclass(frozen=True)
class QiniRow:
    share: float
    serving: float
    other: float
    random: float


@dataclass(frozen=True)
class Qini:
    action: str
    serving: str  # what serves, in words
    other: str  # what it was compared with
    chart: Chart | None
    rows: list[QiniRow]
    randomised: int | None
    coefficient: float | None  # of what serves
    coefficient_other: float | None
    why: str | None  # no chart: why


OTHERS = {"channel_prior": "the channel's prior", "pooled_model": "the pooled model"}


def qini(info: Mapping[str, Any]) -> dict[str, Qini]:
    """Per action served by a learnt recovery model (its own or the pooled one), the Qini
    curves of its last training, cross-fitted on the randomised carts."""
    out = {}
    for action in info["recovery"]["actions"]:
        if action.get("serves") in ("own", "pooled"):
            out[action["action"]] = _qini(action)
    return out


def _qini(action: Mapping[str, Any]) -> Qini:
    name = action["action"]
    training = action.get("last_training") or {}
    held = training.get("heldout") or {}
    curve = held.get("qini_curve")
    other = OTHERS.get(held.get("compared_with", "channel_prior"), "the prior")
    serving, compared = "your model", other
    model_q, other_q = held.get("qini"), held.get("qini_prior")
    if action["serves"] == "pooled" and training.get("reason") == "pooled":
        # the last training tried a model of the store's own carts against the pooled one,
        # which kept serving: the curves are of both, on the store's own randomised carts
        serving, compared = "the pooled model", "a model of your carts alone (not serving)"
        model_q, other_q = other_q, model_q
    treated, control = training.get("treated"), training.get("control")
    randomised = None if treated is None or control is None else treated + control
    if curve is None:
        why = (
            "its last training measured too few of your carts to rank them"
            if not held
            else "it was trained before its Qini curves were kept"
        )
        return Qini(name, serving, compared, None, [], randomised, model_q, other_q, why)
    first, second = curve["model"], curve["prior"]
    if serving == "the pooled model":
        first, second = second, first
    shares = curve["shares"]
    end = first[-1]
    rows = [QiniRow(s, a, b, s * end) for s, a, b in zip(shares, first, second, strict=True)]
    chart = _chart(lambda width: _qini_chart(rows, serving, compared, name, width))
    return Qini(name, serving, compared, chart, rows, randomised, model_q, other_q, None)


def _qini_chart(rows: Sequence[QiniRow], serving: str, other: str, action: str,
                width: int) -> Markup:  # fmt: skip
    values = [100 * v for r in rows for v in (r.serving, r.other, r.random)]
    y = _scale("purchases added per 100 carts", min(values), max(values))
    x = Scale("share of carts acted on, likeliest responders first", 0.0, 1.0,
              (0.0, 0.25, 0.5, 0.75, 1.0), lambda v: f"{v * 100:.0f} %")  # fmt: skip

    def line(name: str, colour: str, dash: str, marker: str, pick: str) -> Line:
        points = [(r.share, 100 * getattr(r, pick)) for r in rows]
        tips = [f"{name}: acting on the top {pct(s, 0)}, {v:+.2f} purchases per 100 carts"
                for s, v in points]  # fmt: skip
        return Line(name, colour, points, dash, marker, tips)

    return plot(
        [line(serving, charts.BLUE, SOLID, "circle", "serving"),
         line(other, charts.ORANGE, DASHED, "square", "other")],
        x, y, width=width,
        guides=[Line("random targeting", charts.GREY, [(0.0, 0.0), (1.0, 100 * rows[-1].random)],
                     DOTTED, "")],
        title=f"Who responds to {action}: Qini curves",
        description="On randomised carts each model did not learn from (cross-fitted): the "
        "purchases the action would have added, per 100 carts, acting only on the carts each "
        "ranks likeliest to respond; the straight line is random targeting.",
    )  # fmt: skip


def _scale(label: str, low: float, high: float) -> Scale:
    """A scale from round numbers at or beyond ``low`` and ``high`` (0 included), in about
    four steps."""
    low, high = min(low, 0.0), max(high, 0.0)
    span = high - low or 1.0
    magnitude = 10.0 ** math.floor(math.log10(span / 4))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= span / 4)
    bottom, top = math.floor(low / step) * step, math.ceil(high / step) * step
    if top == bottom:
        top = bottom + step
    ticks = [bottom + i * step for i in range(round((top - bottom) / step) + 1)]
    digits = next(d for d in (0, 1, 2, 3) if abs(step * 10**d - round(step * 10**d)) < 1e-9)
    return Scale(label, bottom, top, ticks, lambda v: f"{v:.{digits}f}".replace("-", "−"))
