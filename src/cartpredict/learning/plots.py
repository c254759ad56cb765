"""Draw an :class:`~cartpredict.learning.evaluation.EvaluationReport`: PNGs and one HTML page.

Nothing here computes a metric; everything drawn is read from the report. matplotlib is
imported inside the functions (importing cartpredict stays light) and used without pyplot:
each figure is a ``Figure`` on an Agg canvas, so there is no global figure state to leak or
close, and the default style is applied explicitly so output does not depend on a user's
matplotlibrc. PNGs carry no software or date metadata: the same report gives the same bytes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cartpredict.learning.evaluation import (
    BASELINE,
    ORACLE,
    PREVALENCE,
    DecisionReport,
    EvaluationReport,
    ModelMetrics,
    PolicyValue,
    ScoreBand,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
TOP_WEIGHTS = 30
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")
REFERENCE_STYLES: dict[str, dict[str, Any]] = {
    BASELINE: {"color": "tab:red", "marker": "s", "markersize": 4},
    ORACLE: {"color": "black", "linestyle": ":"},
    PREVALENCE: {"color": "grey", "linestyle": "--"},
}
CLASSES = ("purchased", "abandoned")
# Decision policies, in the Okabe-Ito colours (told apart with colour blindness); the two
# references are also hatched, so the bars do not rely on colour alone.
POLICY_COLORS = {
    "no_action": "#999999",
    "uniform": "#E69F00",
    "baseline_rule": "#CC79A7",
    "product": "#0072B2",
    "oracle": "#009E73",
}
REFERENCE_POLICIES = ("no_action", "oracle")
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.85}


def write_report(report: EvaluationReport, out_dir: Path) -> dict[str, Path]:
    """Writes report.json, pr_purchased.png, pr_abandoned.png, calibration.png, weights.png
    (if weights), decisions.png (if a decisions section), index.html; returns name (file
    stem) -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": out_dir / "report.json"}
    text = json.dumps(report.to_dict(), indent=2, sort_keys=True, allow_nan=False)
    paths["report"].write_text(text + "\n", encoding="utf-8")
    drawings: dict[str, Callable[[EvaluationReport], Figure]] = {
        "pr_purchased": lambda r: pr_figure(r, "purchased"),
        "pr_abandoned": lambda r: pr_figure(r, "abandoned"),
        "calibration": calibration_figure,
    }
    if any(report.weights.values()):
        drawings["weights"] = weights_figure
    if report.decisions is not None and report.decisions.policies:
        drawings["decisions"] = decisions_figure
    with _style():
        for name, draw in drawings.items():
            paths[name] = _save(draw(report), out_dir / f"{name}.png")
    paths["index"] = out_dir / "index.html"
    images = {name: path.name for name, path in paths.items() if path.suffix == ".png"}
    paths["index"].write_text(render_html(report, images), encoding="utf-8")
    return paths


# --- figures -----------------------------------------------------------------------------------


def pr_figure(report: EvaluationReport, positive: str) -> Figure:
    """Precision-recall of one class: a step line per model, each model's operating point,
    and the chance level (a constant predictor: precision = prevalence) dashed."""
    fig = _figure(9.5, 5.5)
    ax = fig.add_subplot()
    drawn = [_draw_pr(ax, m, positive, _style_of(report, m.name)) for m in _drawable(report)]
    prevalence = _prevalence(report, positive)
    if prevalence is not None and any(drawn):
        label = f"Chance level (AUC-PR = prevalence = {prevalence:.3f})"
        ax.axhline(prevalence, label=label, **REFERENCE_STYLES[PREVALENCE])
    if not any(drawn):
        _say(ax, "AUC-PR undefined: the test rows hold a single class")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=f"Recall ({positive})")
    ax.set_ylabel(f"Precision ({positive})")
    ax.set_title(f"Precision-recall, positive class: {positive}\n{_sample_line(report)}")
    _finish(ax)
    return fig


def calibration_figure(report: EvaluationReport) -> Figure:
    """Observed purchase rate against mean predicted P(purchased) per bin, with bin counts."""
    fig = _figure(9.5, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot((0, 1), (0, 1), label="Perfectly calibrated", **REFERENCE_STYLES[PREVALENCE])
    models = [m for m in report.models if m.calibration]
    width = 0.1 / (len(models) + 1)
    for i, m in enumerate(models):
        style = _style_of(report, m.name)
        x = [b.mean_predicted for b in m.calibration]
        y = [b.observed_rate for b in m.calibration]
        top.plot(x, y, label=m.name, **{"marker": "o", **style})
        centres = [(b.lower + b.upper) / 2 + (i + 0.5) * width - 0.05 for b in m.calibration]
        counts = [b.count for b in m.calibration]
        bottom.bar(centres, counts, width=width, color=style["color"], label=m.name)
    if not models:
        _say(top, "no test rows")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Observed purchase rate")
    top.set_title(f"Calibration of P(purchased), 10 equal-width bins\n{_sample_line(report)}")
    _finish(top)
    bottom.set(xlabel="Predicted P(purchased)", ylabel="Rows per bin")
    if models:
        bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    return fig


def weights_figure(report: EvaluationReport) -> Figure:
    """Horizontal bars of each model's weights, largest |weight| on top, at most 30."""
    tops = {name: _top_weights(ws) for name, ws in report.weights.items() if ws}
    rows = max(len(t) for t in tops.values())
    fig = _figure(6.5 * len(tops), max(3.5, 1.6 + 0.3 * rows))
    for ax, (name, items) in zip(
        fig.subplots(1, len(tops), squeeze=False)[0], tops.items(), strict=True
    ):
        values = [w for _, w in items]
        colors = ["tab:blue" if w >= 0 else "tab:red" for w in values]
        ax.barh(range(len(items)), values, color=colors)
        ax.set_yticks(range(len(items)), [f for f, _ in items])
        ax.set_ylim(rows - 0.5, -0.5)
        ax.axvline(0, color="black", linewidth=0.8)
        total = sum(w is not None for w in report.weights[name].values())
        ax.set_title(f"{name}: top {len(items)} of {total} weights by |weight|")
        ax.set_xlabel("weight (blue > 0, red < 0)")
        ax.grid(axis="x", alpha=0.3)
    return fig


def decisions_figure(report: EvaluationReport) -> Figure:
    """Each decision policy's expected profit per 1,000 carts (left) and its gain over no
    action (right), as horizontal bars, the oracle's level dotted across both."""
    section = report.decisions
    assert section is not None
    policies = section.policies
    fig = _figure(12.0, 2.2 + 0.5 * len(policies))
    left, right = fig.subplots(1, 2, sharey=True)
    profit = [p.profit_per_1000 for p in policies]
    gain = [p.gain_per_1000 or 0.0 for p in policies]
    oracle = section.policy(ORACLE)
    _policy_bars(left, policies, profit, [f" {v:,.0f}" for v in profit])
    _policy_bars(right, policies, gain, [_gain_label(p) for p in policies])
    if oracle is not None:
        label = "oracle's level (the best any policy can do)"
        left.axvline(oracle.profit_per_1000, label=label, **REFERENCE_STYLES[ORACLE])
        right.axvline(oracle.gain_per_1000 or 0.0, label=label, **REFERENCE_STYLES[ORACLE])
        fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", frameon=False)
    right.axvline(0.0, color="black", linewidth=0.8)
    left.set_yticks(range(len(policies)), [p.name for p in policies])
    left.invert_yaxis()
    left.set_xlabel("Expected profit per 1,000 carts (margin − discounts − costs)")
    right.set_xlabel("Gain over no action per 1,000 carts (share of the oracle's gain)")
    for ax, values in ((left, profit), (right, gain)):
        low, high = min(0.0, *values), max(0.0, *values)
        ax.set_xlim(low - 0.05 * (high - low or 1.0), high + 0.45 * (high - low or 1.0))
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Decision policies by true expected profit\n{_decision_line(section)}")
    return fig


def _policy_bars(ax: Axes, policies: Sequence[PolicyValue], values: Sequence[float],
                 labels: Sequence[str]) -> None:  # fmt: skip
    for i, (p, value, label) in enumerate(zip(policies, values, labels, strict=True)):
        kind = p.name.split(":")[0]
        ax.barh(i, value, color=POLICY_COLORS.get(kind, "tab:blue"), edgecolor="black",
                linewidth=0.6, hatch="//" if kind in REFERENCE_POLICIES else None)  # fmt: skip
        ax.text(max(value, 0.0), i, label, va="center", fontsize=9, zorder=3, bbox=LABEL_BOX)


def _gain_label(p: PolicyValue) -> str:
    ratio = p.gain_ratio_to_oracle
    share = "" if ratio is None else f" ({round(ratio, 2) + 0.0:.0%} of the oracle's)"
    return f" {p.gain_per_1000 or 0.0:+,.0f}{share}"


def _decision_line(section: DecisionReport) -> str:
    return (
        f"{section.n_carts:,} test carts unbought after {section.decision_hours:g} h of "
        f"inactivity, {section.contactable_share:.0%} contactable, margin {section.margin:.0%}"
    )


def _draw_pr(ax: Axes, m: ModelMetrics, positive: str, style: dict[str, Any]) -> bool:
    curve = m.pr_purchased if positive == "purchased" else m.pr_abandoned
    auc = m.auc_pr_purchased if positive == "purchased" else m.auc_pr_abandoned
    if curve is None:
        return False
    line = {k: v for k, v in style.items() if k not in ("marker", "markersize")}
    ax.plot(
        curve.recall,
        curve.precision,
        drawstyle="steps-post",
        **line,
        label=f"{m.name} (AUC-PR = {_fmt(auc)})",
    )
    if m.name == BASELINE:  # a rule has few thresholds: show its points, not just the steps
        ax.plot(curve.recall, curve.precision, linestyle="none", clip_on=False, **style)
    point = _operating_point(m, positive)
    if point is not None:
        label = f"{m.name} at its threshold (P {point[1]:.2f}, R {point[0]:.2f})"
        ax.plot(
            *point,
            linestyle="none",
            marker="D",
            markersize=8,
            markeredgecolor="white",
            color=style["color"],
            label=label,
            clip_on=False,
            zorder=3,
        )
    return True


def _operating_point(m: ModelMetrics, positive: str) -> tuple[float, float] | None:
    if positive == "purchased":
        recall, precision = m.recall_purchased, m.precision_purchased
    else:
        recall, precision = m.recall_abandoned, m.precision_abandoned
    return None if recall is None or precision is None else (recall, precision)


def _drawable(report: EvaluationReport) -> list[ModelMetrics]:
    """Models first, then baseline and oracle; a model named "prevalence" is the chance line."""
    rank = {BASELINE: 1, ORACLE: 2}
    models = [m for m in report.models if m.name != PREVALENCE]
    return sorted(models, key=lambda m: rank.get(m.name, 0))


def _style_of(report: EvaluationReport, name: str) -> dict[str, Any]:
    if name in REFERENCE_STYLES:
        return dict(REFERENCE_STYLES[name])
    others = [m.name for m in report.models if m.name not in REFERENCE_STYLES]
    return {"color": PALETTE[others.index(name) % len(PALETTE)]}


def _top_weights(weights: dict[str, float | None]) -> list[tuple[str, float]]:
    known = [(f, w) for f, w in weights.items() if w is not None]
    return sorted(known, key=lambda fw: (-abs(fw[1]), fw[0]))[:TOP_WEIGHTS]


def _prevalence(report: EvaluationReport, positive: str) -> float | None:
    if positive == "purchased":
        return report.prevalence_purchased
    return report.prevalence_abandoned


def _sample_line(report: EvaluationReport) -> str:
    return (
        f"{report.n_test:,} test rows, purchased {_fmt(report.prevalence_purchased)}, "
        f"abandoned {_fmt(report.prevalence_abandoned)}"
    )


def _say(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def _finish(ax: Axes) -> None:
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).print_png(path, metadata={"Software": None})
    fig.clear()
    return path


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib.style

    with matplotlib.style.context(["default", {"font.size": 10, "axes.titlesize": 11}]):
        yield


def bands_figure(bands: Sequence[ScoreBand]) -> Figure:
    """Per band of P(abandoned): the share of carts bought within 24 h (bars) against the
    share the model expected (dots), each band labelled with its carts."""
    fig = _figure(9.5, 5.0)
    ax = fig.add_subplot()
    x = range(len(bands))
    bought = [1.0 - b.abandoned_rate for b in bands]
    expected = [1.0 - b.mean_p_abandoned for b in bands]
    ax.bar(x, bought, color=POLICY_COLORS["product"], label="Bought within 24 h (observed)")
    ax.plot(x, expected, linestyle="none", marker="D", markersize=8, markeredgecolor="black",
            color=POLICY_COLORS["uniform"], label="Expected by the model")  # fmt: skip
    for i, band in enumerate(bands):  # above both the bar and the dot
        ax.text(i, max(bought[i], expected[i]) + 0.02, f"{bought[i]:.0%}\n{band.carts:,} carts",
                ha="center", va="bottom", fontsize=9, bbox=LABEL_BOX)  # fmt: skip
    ax.set_xticks(list(x), [_band_label(b) for b in bands])
    ax.set(ylim=(0, min(1.0, max([*bought, *expected, 0.05]) * 1.3 + 0.1)),
           xlabel="Band of P(abandoned) the model gave the cart",
           ylabel="Share bought within 24 h")  # fmt: skip
    ax.set_title("What became of the carts in each score band (held-out carts; bands of at "
                 "least 10 carts)")  # fmt: skip
    _finish(ax)
    return fig


def _band_label(band: ScoreBand) -> str:
    return f"{band.lower:.0%}–{band.upper:.0%}"


# --- HTML --------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.reference td { color: #555; font-style: italic; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; }
"""
SUMMARY_COLUMNS = (
    ("AUC-PR purchased", "auc_pr_purchased", "{:.3f}"),
    ("AUC-PR abandoned", "auc_pr_abandoned", "{:.3f}"),
    ("ROC-AUC", "roc_auc", "{:.3f}"),
    ("Brier", "brier", "{:.4f}"),
    ("Threshold P(abandoned)", "threshold", "{:.3f}"),
    ("Precision abandoned", "precision_abandoned", "{:.3f}"),
    ("Lift over base rate", "lift_abandoned", "{:.2f}×"),
    ("Recall abandoned", "recall_abandoned", "{:.3f}"),
)


def render_html(report: EvaluationReport, images: dict[str, str]) -> str:
    """One self-contained page; images are referenced by relative file name."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>cartpredict evaluation report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>cartpredict evaluation report</h1>",
        _overview(report),
        _summary_table(report),
        *(_image(name, file) for name, file in images.items() if name not in OWN_SECTION),
        _decisions_section(report, images.get("decisions")),
        _retailer_section(report),
        _weights_section(report, images.get("weights")),
        _context_section(report),
        '<p class="note">All numbers: <a href="report.json">report.json</a>.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _overview(report: EvaluationReport) -> str:
    items = [
        ("Test rows", _int(report.n_test)),
        ("Test carts", _int(report.n_test_carts)),
        ("Training rows", _int(report.n_train)),
        ("Purchased (prevalence)", _fmt(report.prevalence_purchased)),
        ("Abandoned (prevalence)", _fmt(report.prevalence_abandoned)),
    ]
    return "<h2>Data</h2>\n" + _table(("", "Value"), [(_e(k), _e(v)) for k, v in items], [])


def _summary_table(report: EvaluationReport) -> str:
    rank = {BASELINE: 1, ORACLE: 2, PREVALENCE: 3}
    models = sorted(report.models, key=lambda m: rank.get(m.name, 0))
    rows = [_summary_row(m.name, vars(m)) for m in models]
    classes = ["reference" if m.name in rank else "" for m in models]
    rows.append(_summary_row("prevalence (constant predictor)", vars(report.prevalence)))
    classes.append("reference")
    header = ("Model", *(title for title, _, _ in SUMMARY_COLUMNS))
    note = (
        "<p class='note'>AUC-PR for both classes (purchased is the minority class). Precision, "
        "lift and recall of &quot;abandoned&quot; are at each model's operating point; lift = "
        "precision ÷ the abandonment rate. The constant predictor calls every cart abandoned. "
        "&mdash; = undefined.</p>"
    )
    return "<h2>Summary</h2>\n" + _table(header, rows, classes) + note


def _summary_row(name: str, values: dict[str, Any]) -> list[str]:
    cells = [_fmt(values.get(key), spec) for _, key, spec in SUMMARY_COLUMNS]
    return [_e(name), *(_e(c) for c in cells)]


OWN_SECTION = ("weights", "decisions")  # images drawn in their section, not with the models'
CAPTIONS = {
    "pr_purchased": "Precision-recall with purchased as the positive class",
    "pr_abandoned": "Precision-recall with abandoned as the positive class",
    "calibration": "Calibration of P(purchased), with the number of rows per bin",
    "weights": "Largest weights per model",
    "decisions": "Expected profit per 1,000 carts of each decision policy, and its gain over "
    "no action",
    "bands": "Share of carts bought within 24 h per band of P(abandoned)",
}


def _image(name: str, file: str) -> str:
    caption = _e(CAPTIONS.get(name, name))
    img = f'<img src="{_e(file)}" alt="{caption}">'
    return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"


def _retailer_section(report: EvaluationReport) -> str:
    s = report.suppressed
    names = [m.name for m in report.models]
    header = (
        "Retailer",
        "Test carts",
        "Rows",
        "Purchased rate",
        *(f"AUC-PR purchased: {n}" for n in names),
    )
    rows = [
        [
            r.retailer_id,
            _int(r.n_test_carts),
            _int(r.n_rows),
            _fmt(r.prevalence_purchased),
            *(_fmt(r.auc_pr_purchased.get(n)) for n in names),
        ]
        for r in report.per_retailer
    ]
    note = f"Every retailer shown has at least {s.min_carts} test carts."
    if s.n_retailers:
        note = (
            f"{s.n_retailers} retailer(s) with fewer than {s.min_carts} test carts "
            f"({s.n_rows} rows) are not shown (k-anonymity)."
        )
    elif not rows:
        note = "No per-retailer breakdown."
    body = _table(header, [[_e(c) for c in row] for row in rows], []) if rows else ""
    return f"<h2>Per retailer</h2>\n{body}<p class='note'>{_e(note)}</p>"


def _decisions_section(report: EvaluationReport, image: str | None) -> str:
    section = report.decisions
    if section is None:
        return ""
    actions = list(section.true_rates)
    header = ("Policy", "Profit per 1,000 carts", "Gain over no action", "÷ oracle's profit",
              "÷ oracle's gain", "Recovered per 1,000", *(f"Acted: {a}" for a in actions),
              "Send times of messages (share)", "Rule")  # fmt: skip
    rows = [
        [
            _e(p.name),
            _e(f"{p.profit_per_1000:,.1f}"),
            _e(_fmt(p.gain_per_1000, "{:+,.1f}")),
            _e(_fmt(p.ratio_to_oracle)),
            _e(_fmt(p.gain_ratio_to_oracle)),
            _e(f"{p.recovered_per_1000:.1f}"),
            *(_e(_fmt(p.acted.get(a), "{:.1%}")) for a in actions),
            _e(_send_hours(p.send_hours)),
            _e(p.rule),
        ]
        for p in section.policies
    ]
    classes = ["reference" if p.name in REFERENCE_POLICIES else "" for p in section.policies]
    picture = _image("decisions", image) if image else ""
    note = (
        f"<p class='note'>{_e(_decision_line(section))}. True expected profit under the "
        "simulator's response to each action (it differs from the policy's priors on purpose), "
        "every cart evaluated under every policy (no control group). The ratios divide by the "
        "oracle's profit, and by its gain over no action.</p>"
    )
    segments = sorted({s for row in section.true_rates.values() for s in row if s != "prior"},
                      key=lambda s: (s != "all", s))  # fmt: skip
    rates = [
        [_e(a), *(_e(_fmt(section.true_rates[a].get(s))) for s in ("prior", *segments))]
        for a in actions
    ]
    rate_note = (
        "<p class='note'>Share of otherwise-lost carts an action recovers when it reaches the "
        "cart at the decision moment: the policy's prior, and the simulator's true mean per "
        "segment.</p>"
    )
    return (
        "<h2>Decisions: expected profit per 1,000 carts</h2>\n" + picture
        + _table(header, rows, classes) + note
        + "<h3>Recovery rates: prior and true</h3>\n"
        + _table(("Action", "prior", *(f"true: {s}" for s in segments)), rates, []) + rate_note
    )  # fmt: skip


def _send_hours(shares: dict[str, float]) -> str:
    """``1 h: 47%, 2 h: 24%, …`` in the order of the hours."""
    ordered = sorted(shares.items(), key=lambda hs: float(hs[0]))
    return ", ".join(f"{h} h: {'<1%' if s < 0.005 else f'{s:.0%}'}" for h, s in ordered) or "—"


def _weights_section(report: EvaluationReport, image: str | None) -> str:
    models = [name for name, ws in report.weights.items() if ws]
    if not models:
        return ""
    features = sorted(
        {f for name in models for f in report.weights[name]},
        key=lambda f: (-_largest(report, models, f), f),
    )
    rows = [[_e(f), *(_e(_fmt(report.weights[m].get(f))) for m in models)] for f in features]
    picture = _image("weights", image) if image else ""
    return "<h2>Weights</h2>\n" + picture + _table(("Feature", *models), rows, [])


def _largest(report: EvaluationReport, models: Sequence[str], feature: str) -> float:
    return max(abs(report.weights[m].get(feature) or 0.0) for m in models)


def _context_section(report: EvaluationReport) -> str:
    if not report.context:
        return ""
    rows = [[_e(key), _e(_context_value(report.context[key]))] for key in sorted(report.context)]
    return "<h2>Context</h2>\n" + _table(("Key", "Value"), rows, [])


def _context_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str]) -> str:
    """``header`` is raw text (escaped here); cells are already escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    )


def _fmt(value: float | None, spec: str = "{:.3f}") -> str:
    return "—" if value is None else spec.format(value)


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


# --- one retailer's report, in steps of k carts ------------------------------------------------


def write_retailer_report(
    report: EvaluationReport | None,
    bands: Sequence[ScoreBand],
    out_dir: Path,
    *,
    title: str,
    facts: Sequence[tuple[str, str]],
    notes: Sequence[str],
) -> dict[str, Path]:
    """One retailer's report (``evaluation.evaluate_in_steps``): report.json, pr_purchased.png,
    pr_abandoned.png, calibration.png, bands.png, weights.png (if weights) and index.html;
    without a report (too few carts to show anything), index.html alone with the ``facts``
    (label, value) and ``notes``. Returns name (file stem) -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if report is not None:
        paths["report"] = out_dir / "report.json"
        data = {**report.to_dict(), "score_bands": [vars(b) for b in bands]}
        paths["report"].write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
                                   + "\n", encoding="utf-8")  # fmt: skip
        drawings: dict[str, Callable[[], Figure]] = {
            "pr_purchased": lambda: pr_figure(report, "purchased"),
            "pr_abandoned": lambda: pr_figure(report, "abandoned"),
            "calibration": lambda: calibration_figure(report),
        }
        if bands:
            drawings["bands"] = lambda: bands_figure(bands)
        if any(report.weights.values()):
            drawings["weights"] = lambda: weights_figure(report)
        with _style():
            for name, draw in drawings.items():
                paths[name] = _save(draw(), out_dir / f"{name}.png")
    images = {name: path.name for name, path in paths.items() if path.suffix == ".png"}
    paths["index"] = out_dir / "index.html"
    page = render_retailer_html(report, bands, images, title=title, facts=facts, notes=notes)
    paths["index"].write_text(page, encoding="utf-8")
    return paths


def render_retailer_html(
    report: EvaluationReport | None,
    bands: Sequence[ScoreBand],
    images: dict[str, str],
    *,
    title: str,
    facts: Sequence[tuple[str, str]],
    notes: Sequence[str],
) -> str:
    """One self-contained page (images by relative file name), readable on a phone."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}{NARROW_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _table(("", "Value"), [(_e(k), _e(v)) for k, v in facts], []),
        *(f"<p class='note'>{_e(note)}</p>" for note in notes),
    ]
    if report is not None:
        parts += [
            f"<div class='scroll'>{_summary_table(report)}</div>",
            *(_image(name, images[name]) for name in ("pr_purchased", "pr_abandoned",
                                                      "calibration") if name in images),
            _bands_section(bands, images.get("bands")),
            _weights_section(report, images.get("weights")),
            _context_section(report),
            '<p class="note">All numbers: <a href="report.json">report.json</a>.</p>',
        ]  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


NARROW_CSS = """
.scroll { overflow-x: auto; }
@media (max-width: 40rem) { body { margin: 0.5rem; } th, td { padding: 0.2rem 0.3rem; } }
"""


def _bands_section(bands: Sequence[ScoreBand], image: str | None) -> str:
    if not bands:
        return ""
    header = ("P(abandoned)", "Carts", "Snapshots", "Expected abandoned (mean P)",
              "Abandoned (observed)", "Bought within 24 h")  # fmt: skip
    rows = [
        [_e(_band_label(b)), _e(_int(b.carts)), _e(_int(b.rows)), _e(f"{b.mean_p_abandoned:.1%}"),
         _e(f"{b.abandoned_rate:.1%}"), _e(f"{1.0 - b.abandoned_rate:.1%}")]
        for b in bands
    ]  # fmt: skip
    picture = _image("bands", image) if image else ""
    note = (
        "<p class='note'>Every held-out snapshot (a cart at 0, 1, 3, 6 or 12 hours of "
        "inactivity) in the band of P(abandoned) the served model gave it; neighbouring bands "
        "are merged until each holds at least 10 carts.</p>"
    )
    return ("<h2>Outcomes per score band</h2>\n" + picture
            + f"<div class='scroll'>{_table(header, rows, [])}</div>" + note)  # fmt: skip
