"""Charts as inline SVG, drawn from figures already computed (the pages draw, never count).

No script and no style attribute: the pages' Content-Security-Policy allows neither, and an SVG
drawn with presentation attributes needs neither. Every label is escaped (``markupsafe``), so a
name that came from a request renders as text. Colours are the Okabe–Ito palette, which stays
distinguishable with the common colour-vision deficiencies; each chart also has a title and a
description for screen readers, and the pages show the same figures in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Okabe & Ito (2008), "Color Universal Design".
BLUE = "#0072B2"
ORANGE = "#E69F00"
SKY = "#56B4E9"
GREEN = "#009E73"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#6b6b6b"
INK = "#1a1a1a"

WIDE = 640  # the viewBox's width on a screen; a phone gets charts drawn NARROW
NARROW = 360
FONT = 12
MAX_BAR = 96.0  # a column's widest, in the viewBox's units


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: not shown (k-anonymity), drawn as a gap with a mark
    note: str = ""  # the value as the page writes it


@dataclass(frozen=True)
class Interval:
    label: str
    estimate: float
    low: float
    high: float
    note: str = ""


def _svg(width: int, height: int, title: str, description: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="{FONT}" '
        f'font-family="system-ui, sans-serif"><title>{escape(title)}</title>'
        f"<desc>{escape(description)}</desc>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK,
          size: int = FONT, weight: str = "normal") -> str:  # fmt: skip
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" '
        f'font-size="{size}" font-weight="{weight}">{escape(text)}</text>'
    )


def _nice_max(value: float) -> float:
    """A round number at or above ``value`` for an axis's top (in four even steps)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 6.0, 8.0):
        if step * magnitude >= value:
            return step * magnitude
    return 10.0 * magnitude


def _short(label: str, room: float) -> str:
    """A label cut to fit ``room`` pixels (about 0.6 em a character)."""
    most = max(3, int(room / (FONT * 0.6)))
    return label if len(label) <= most else label[: most - 1] + "…"


def columns(bars: Sequence[Bar], *, title: str, description: str, colour: str = BLUE,
            colours: Sequence[str] | None = None, height: int = 220, unit: str = "",
            width: int = WIDE) -> Markup:  # fmt: skip
    """Vertical bars, one per ``Bar`` (coloured ``colours[i]``, else ``colour``), labelled
    below; a bar not shown is a grey dash."""
    left, right, top, bottom = 44, 8, 22, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    shown = [b.value for b in bars if b.value is not None]
    peak = _nice_max(max(shown, default=0.0))
    body = _y_axis(left, top, plot_w, plot_h, peak, unit)
    slot = plot_w / max(len(bars), 1)
    bar_w = min(max(2.0, slot * 0.72), MAX_BAR)  # a lone bar stays a bar, not a wall
    every = max(1, math.ceil(len(bars) / max(1, int(plot_w / 56))))  # labels that fit
    for i, bar in enumerate(bars):
        x = left + i * slot + (slot - bar_w) / 2
        centre = x + bar_w / 2
        if bar.value is None:
            body.append(f'<rect x="{x:.1f}" y="{top + plot_h - 2:.1f}" width="{bar_w:.1f}" '
                        f'height="2" fill="{GREY}"><title>{escape(bar.label)}: not shown'
                        "</title></rect>")  # fmt: skip
        else:
            h = plot_h * bar.value / peak
            tip = f"{bar.label}: {bar.note or _plain(bar.value)}"
            fill = colours[i] if colours is not None else colour
            body.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                        f'height="{h:.1f}" fill="{fill}"><title>{escape(tip)}</title>'
                        "</rect>")  # fmt: skip
            if slot >= 26 and bar.note and bar.value:
                body.append(_text(centre, top + plot_h - h - 4, bar.note, anchor="middle",
                                  size=FONT - 1))  # fmt: skip
        if i % every == 0:
            body.append(_text(centre, height - bottom + 16, _short(bar.label, slot * every),
                              anchor="middle", fill=GREY))  # fmt: skip
    return _svg(width, height, title, description, body)


def _y_axis(left: float, top: float, plot_w: float, plot_h: float, peak: float,
            unit: str) -> list[str]:  # fmt: skip
    body = []
    for step in range(5):
        value = peak * step / 4
        y = top + plot_h - plot_h * step / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                    'stroke="#d9d9d9" stroke-width="1"/>')  # fmt: skip
        body.append(_text(left - 6, y + 4, _plain(value) + unit, anchor="end", fill=GREY))
    return body


Series = Sequence[tuple[str, str, Sequence[float | None]]]  # (name, colour, values)


def rates(series: Series, labels: Sequence[str], *, title: str, description: str,
          height: int = 220, width: int = WIDE) -> Markup:  # fmt: skip
    """Lines of shares (0 to 100 %) over ``labels``: ``(name, colour, values)`` each, the first
    drawn widest so that lines on top of each other stay visible; a value not shown breaks its
    line. A legend names each line."""
    left, right, top, bottom = 44, 8, 30, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    body = []
    for step in range(5):
        y = top + plot_h - plot_h * step / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                    'stroke="#d9d9d9" stroke-width="1"/>')  # fmt: skip
        body.append(_text(left - 6, y + 4, f"{step * 25} %", anchor="end", fill=GREY))
    n = len(labels)
    slot = plot_w / max(n, 1)

    def x_of(i: int) -> float:
        return left + i * slot + slot / 2

    legend_x: float = left
    for n_line, (name, colour, values) in enumerate(series):
        stroke = max(1.5, 5.0 - 1.5 * n_line)
        runs: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(values):
            if value is None:
                runs.append([])
                continue
            runs[-1].append((x_of(i), top + plot_h * (1 - value)))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                            f'stroke-width="{stroke}"/>')  # fmt: skip
            for x, y in run:
                body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{stroke / 2 + 1.5}" '
                            f'fill="{colour}"/>')  # fmt: skip
        body.append(f'<rect x="{legend_x}" y="8" width="14" height="4" fill="{colour}"/>')
        body.append(_text(legend_x + 18, 14, name))
        legend_x += 26 + len(name) * FONT * 0.55
    every = max(1, math.ceil(n / max(1, int(plot_w / 64))))
    for i, label in enumerate(labels):
        if i % every == 0:
            body.append(_text(x_of(i), height - bottom + 16, _short(label, slot * every),
                              anchor="middle", fill=GREY))  # fmt: skip
    return _svg(width, height, title, description, body)


def paired(rows: Sequence[tuple[str, float | None, float | None]], names: tuple[str, str], *,
           title: str, description: str, width: int = WIDE) -> Markup:  # fmt: skip
    """Two horizontal bars per row (0 to 1), e.g. the model against the rule per metric."""
    left, right, top = min(130, width // 3), 48, 30
    row_h, bar_h = 40, 14
    height = top + row_h * len(rows) + 8
    plot_w = width - left - right
    key_x = left + 30 + len(names[0]) * 7
    body = [
        f'<rect x="{left}" y="8" width="14" height="10" fill="{BLUE}"/>',
        _text(left + 18, 17, names[0]),
        f'<rect x="{key_x}" y="8" width="14" height="10" fill="{ORANGE}"/>',
        _text(key_x + 18, 17, names[1]),
    ]
    for i, (label, first, second) in enumerate(rows):
        y = top + i * row_h
        body.append(_text(left - 8, y + bar_h + 4, _short(label, left - 12), anchor="end"))
        for j, (value, colour) in enumerate(((first, BLUE), (second, ORANGE))):
            by = y + j * (bar_h + 2)
            if value is None:
                body.append(_text(left + 4, by + bar_h - 3, "not shown", fill=GREY))
                continue
            w = plot_w * max(0.0, min(1.0, value))
            body.append(f'<rect x="{left}" y="{by:.1f}" width="{w:.1f}" height="{bar_h}" '
                        f'fill="{colour}"/>')  # fmt: skip
            body.append(_text(left + w + 4, by + bar_h - 3, f"{value:.3f}"))
    return _svg(width, height, title, description, body)


def factors(rows: Sequence[tuple[str, float]], *, title: str, description: str,
            width: int = WIDE) -> Markup:  # fmt: skip
    """Odds multipliers on a log scale around ×1: above 1 (more likely abandoned) to the right
    in vermillion, below 1 to the left in blue."""
    left, right, top = min(190, width * 2 // 5), 44, 10
    row_h = 22
    height = top + row_h * len(rows) + 24
    plot_w = width - left - right
    centre = left + plot_w / 2
    widest = max((abs(math.log(max(f, 1e-9))) for _, f in rows), default=1.0)
    reach = max(math.log(2.0), widest)
    body = [f'<line x1="{centre:.1f}" x2="{centre:.1f}" y1="{top - 4}" '
            f'y2="{height - 20}" stroke="{INK}" stroke-width="1"/>',
            _text(centre - 6, height - 6, "← less likely", anchor="end", fill=BLUE),
            _text(centre + 6, height - 6, "more likely →", fill=VERMILLION)]  # fmt: skip
    for i, (label, factor) in enumerate(rows):
        y = top + i * row_h
        body.append(_text(left - 8, y + 14, _short(label, left - 12), anchor="end"))
        step = math.log(max(factor, 1e-9)) / reach * (plot_w / 2)
        x, w = (centre, step) if step >= 0 else (centre + step, -step)
        colour = VERMILLION if step >= 0 else BLUE
        body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 1.0):.1f}" height="14" '
                    f'fill="{colour}"/>')  # fmt: skip
        tx, anchor = (x + w + 4, "start") if step >= 0 else (x - 4, "end")
        body.append(_text(tx, y + 14, f"×{_factor(factor)}", anchor=anchor))
    return _svg(width, height, title, description, body)


def intervals(rows: Sequence[Interval], *, title: str, description: str,
              unit: str = " pts", width: int = WIDE) -> Markup:  # fmt: skip
    """Estimates with their 95 % intervals against a line at 0 (a forest plot)."""
    left, right, top = min(130, width // 3), 24, 26
    row_h = 40
    height = top + row_h * len(rows) + 30
    plot_w = width - left - right
    reach = max([abs(v) for r in rows for v in (r.low, r.high)] + [0.01]) * 1.15

    def x_of(value: float) -> float:
        return left + plot_w * (value + reach) / (2 * reach)

    zero = x_of(0.0)
    body = [f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top - 6}" y2="{height - 24}" '
            f'stroke="{INK}" stroke-width="1"/>',
            _text(zero, height - 8, "0: no effect", anchor="middle", fill=GREY),
            _text(left, height - 8, f"−{reach * 100:.1f}{unit}", fill=GREY),
            _text(width - right, height - 8, f"+{reach * 100:.1f}{unit}", anchor="end",
                  fill=GREY)]  # fmt: skip
    for i, row in enumerate(rows):
        y = top + i * row_h + 10
        colour = GREEN if row.low > 0 else VERMILLION if row.high < 0 else GREY
        body.append(_text(left - 8, y + 4, _short(row.label, left - 12), anchor="end"))
        body.append(f'<line x1="{x_of(row.low):.1f}" x2="{x_of(row.high):.1f}" y1="{y}" '
                    f'y2="{y}" stroke="{colour}" stroke-width="3"/>')  # fmt: skip
        for end in (row.low, row.high):
            body.append(f'<line x1="{x_of(end):.1f}" x2="{x_of(end):.1f}" y1="{y - 6}" '
                        f'y2="{y + 6}" stroke="{colour}" stroke-width="2"/>')  # fmt: skip
        body.append(
            f'<circle cx="{x_of(row.estimate):.1f}" cy="{y}" r="5" fill="{colour}">'
            f"<title>{escape(row.label)}: {escape(row.note)}</title></circle>"
        )
        if row.note:
            body.append(_text(x_of(row.estimate), y - 9, row.note, anchor="middle",
                              size=FONT - 1))  # fmt: skip
    return _svg(width, height, title, description, body)


def _plain(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value == int(value):
        return f"{int(value)}"
    return f"{value:.2f}"


def _factor(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"
