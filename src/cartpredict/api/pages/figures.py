"""What each page shows, in words and charts, from the answers the API gives.

Every figure comes from the same service call as its endpoint (``StatsService.report`` for
``/stats``, ``ExperimentService.report`` for ``/experiment``, ``ModelService.info`` for
``/model``), so it is k-anonymous exactly as there: nothing here counts carts again. What is
added is arithmetic on figures already shown (a share, an interval scaled by the carts it is
over) and what the retailer's own model and policy say about a typical cart, which involves no
other cart at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from markupsafe import Markup

from cartpredict.api.pages import charts
from cartpredict.decisions.gain import expected_gain
from cartpredict.decisions.policy import Action, RecoveryPolicy
from cartpredict.serving.cache import Tenant

WINDOWS = (7, 14, 30, 90)  # days a page may look back (the API takes 1 to 90)
TYPICAL_ITEMS = 2
TYPICAL_INACTIVITY_H = 1.0


@dataclass(frozen=True)
class Chart:
    """A chart drawn twice: for a screen and, narrower with the same font, for a phone."""

    wide: Markup
    narrow: Markup


def _drawn(draw: Callable[[int], Markup]) -> Chart:
    return Chart(draw(charts.WIDE), draw(charts.NARROW))


# --- numbers as words ------------------------------------------------------------------------


def pct(value: float | None, digits: int = 1) -> str:
    return "not shown" if value is None else f"{value * 100:.{digits}f} %"


def count(value: float | None) -> str:
    return "not shown" if value is None else f"{value:,.0f}"


SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def money(value: float | None, currency: str, digits: int = 2) -> str:
    if value is None:
        return "not shown"
    sign = "−" if value < 0 else ""
    digits = 0 if currency == "JPY" else digits
    symbol = SYMBOLS.get(currency)
    amount = f"{abs(value):,.{digits}f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def signed(value: float, digits: int = 1) -> str:
    """``+3.6``, ``−0.4`` (a minus sign, not a hyphen)."""
    return f"{value:+.{digits}f}".replace("-", "−")


def points(value: float) -> str:
    """A difference of two rates, in purchases per 100 carts."""
    return signed(value * 100)


# --- Overview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionResult:
    name: str
    treated: int | None
    held_out: int | None
    uplift: float | None
    low: float | None
    high: float | None
    purchases: float | None
    purchases_low: float | None
    purchases_high: float | None
    margin: float | None
    margin_low: float | None
    margin_high: float | None
    verdict: str
    periods: int

    @property
    def shown(self) -> bool:
        return self.uplift is not None


def action_results(experiment: Mapping[str, Any]) -> list[ActionResult]:
    """Per action, what the experiment report says, and in words. The interval of the added
    purchases is the uplift's interval times the treated carts, as the estimate is."""
    out = []
    for name, found in experiment["actions"].items():
        uplift = found["uplift"]
        treated = found["treatment"]["carts"] if found["treatment"] else None
        if uplift is None or treated is None:
            out.append(ActionResult(name, None, None, None, None, None, None, None, None, None,
                                    None, None, "not enough carts in both groups yet",
                                    0))  # fmt: skip
            continue
        low, high = uplift["ci95"]
        out.append(
            ActionResult(
                name=name,
                treated=treated,
                held_out=found["control"]["carts"],
                uplift=uplift["estimate"],
                low=low,
                high=high,
                purchases=found["incremental_purchases"],
                purchases_low=low * treated,
                purchases_high=high * treated,
                margin=found["incremental_margin"],
                margin_low=(found.get("incremental_margin_ci95") or (None, None))[0],
                margin_high=(found.get("incremental_margin_ci95") or (None, None))[1],
                verdict=verdict(low, high),
                periods=len(found["periods"]),
            )
        )
    return out


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "adds purchases: the interval lies above 0"
    if high < 0:
        return "costs purchases: the interval lies below 0"
    return "not shown to work yet: the interval includes 0"


@dataclass(frozen=True)
class Trend:
    volume: Chart | None
    quality: Chart | None
    rows: list[dict[str, Any]]


def trend(stats: Mapping[str, Any]) -> Trend:
    """Carts scored and realised rates per period (a day, or the days of a week merged)."""
    periods = stats["periods"]
    rows = [
        {
            "label": p["start"] if p["days"] == 1 and p["start"] == p["end"]
            else f"{p['start']} to {p['end']}",
            "short": p["start"][5:] if p["start"] == p["end"] else f"{p['start'][5:]}…",
            "carts": p["carts"],
            "called": p["predicted_abandoned_share"],
            "abandoned": p["outcomes"]["abandonment_rate"],
            "precision": p["outcomes"]["precision"],
            "recall": p["outcomes"]["recall"],
        }
        for p in periods
    ]  # fmt: skip
    if not rows:
        return Trend(None, None, [])
    volume = _drawn(lambda width: charts.columns(
        [charts.Bar(r["short"], r["carts"], count(r["carts"])) for r in rows],
        title="Carts scored per period",
        description="One bar per final day (or week of small days): the carts scored.",
        width=width,
    ))  # fmt: skip
    quality = _drawn(lambda width: charts.rates(
        [
            ("called abandoned", charts.ORANGE, [r["called"] for r in rows]),
            ("precision", charts.BLUE, [r["precision"] for r in rows]),
            ("abandoned", charts.VERMILLION, [r["abandoned"] for r in rows]),
        ],
        [r["short"] for r in rows],
        title="Share called abandoned, precision and realised abandonment per period",
        description="Lines break where a period's figure is not shown (fewer than 10 carts).",
        width=width,
    ))  # fmt: skip
    return Trend(volume, quality, rows)


# --- Targeting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cart:
    """A cart as the model reads it (``features.CartLike``)."""

    cart_value: float
    item_count: int
    inactivity_hours: float
    device_type: str
    shipping_speed: str
    attributes: Mapping[str, float | str] = field(default_factory=dict)


def typical_cart(tenant: Tenant) -> _Cart:
    """The retailer's typical cart: its ``typical_cart_value``, 2 items, an hour idle, on a
    desktop, with its first shipping speed (standard when it offers it)."""
    retailer = tenant.retailer
    speeds = retailer.shipping_speeds
    speed = "standard" if "standard" in speeds else speeds[0]
    return _Cart(retailer.typical_cart_value, TYPICAL_ITEMS, TYPICAL_INACTIVITY_H, "desktop", speed)


@dataclass(frozen=True)
class Band:
    lower: float
    upper: float
    carts: int
    share: float
    action: str  # what a typical cart of this band is decided: an action, or "none"
    why: str
    gain: float  # per cart, of the best action (possibly negative)
    best: str  # the best action whatever its gain ("none" without actions)
    recovered: float  # per cart, of the best action: P(abandoned) x its recovery rate


def bands(stats: Mapping[str, Any], tenant: Tenant) -> list[Band]:
    """The stats' bands of P(abandoned) (fixed bins of 0.1, each 0 or at least k carts), and
    what the policy does with a typical cart at the band's middle probability."""
    shown = [b for b in stats["distribution"] if b["carts"]]
    total = sum(b["carts"] for b in shown)
    out = []
    for b in sorted(shown, key=lambda b: -b["lower"]):
        p = (b["lower"] + b["upper"]) / 2
        best, gain = best_action(tenant.policy, p, tenant.retailer.typical_cart_value)
        acts = best is not None and gain > 0
        out.append(
            Band(
                lower=b["lower"],
                upper=b["upper"],
                carts=b["carts"],
                share=b["carts"] / total,
                action=best.name if best is not None and acts else "none",
                why="expected gain" if acts else "no action pays" if best else "no actions",
                gain=gain,
                best=best.name if best is not None else "none",
                recovered=p * best.rate if best is not None else 0.0,
            )
        )
    return out


def best_action(
    policy: RecoveryPolicy, p_abandoned: float, value: float
) -> tuple[Action | None, float]:
    """The action of highest expected gain for a contactable cart of ``value`` acted on now
    (``decisions.gain``, with the action's rate: its prior or the policy's own)."""
    best: tuple[Action | None, float] = (None, 0.0)
    for action in policy.actions:
        gain = expected_gain(1.0 - p_abandoned, value, policy.margin, action, rate=action.rate)
        if best[0] is None or gain > best[1]:
            best = (action, gain)
    return best


@dataclass(frozen=True)
class Reach:
    carts: int
    share: float
    down_to: float
    recovered: float
    gain: float


def reach_table(found: Sequence[Band]) -> list[Reach]:
    """What "if we targeted the top X %" would bring: from the likeliest band down, each row
    one band more (so each step adds at least k carts), with the expected recovered carts and
    margin of acting on all of them with each band's best action."""
    rows: list[Reach] = []
    carts, share, recovered, gain = 0, 0.0, 0.0, 0.0
    for band in found:
        carts += band.carts
        share += band.share
        recovered += band.carts * band.recovered
        gain += band.carts * band.gain
        rows.append(Reach(carts, min(share, 1.0), band.lower, recovered, gain))
    return rows


def distribution_chart(found: Sequence[Band], threshold: float | None) -> Chart | None:
    """Every band from 0 to 1 (empty ones too, so the chart reads as a scale), those whose
    carts are called abandoned at the operating point in orange."""
    if not found:
        return None
    carts = {round(b.lower, 1): b.carts for b in found}
    lowers = [i / 10 for i in range(10)]
    bars = [charts.Bar(f"{round(lo * 100)}–{round(lo * 100) + 10} %", carts.get(lo, 0),
                       count(carts.get(lo, 0))) for lo in lowers]  # fmt: skip
    called = [threshold is not None and lo + 0.1 > threshold for lo in lowers]
    colours = [charts.ORANGE if c else charts.SKY for c in called]
    return _drawn(lambda width: charts.columns(
        bars, colours=colours, title="Carts by P(abandoned)",
        description="Carts scored in the window, by band of the model's P(abandoned); bands "
        "at or above the operating point in orange.", width=width,
    ))  # fmt: skip


# --- Model -----------------------------------------------------------------------------------

FEATURES: Mapping[str, tuple[str, str, str]] = {
    # name: (in words, in a chart's few words, how it moves: "flag" 0/1, "log" log(1 + x),
    # "unit" per one, "shape" a curvature or product that bends the others)
    "log_value": ("cart value", "cart value", "log"),
    "log_value_sq": ("cart value, curvature around a typical cart", "value, curvature", "shape"),
    "log_items": ("number of items", "items", "log"),
    "log_items_sq": ("number of items, curvature around 2 items", "items, curvature", "shape"),
    "log_inactivity": ("hours since the last cart activity", "hours idle", "log"),
    "log_inactivity_sq": ("hours since the last activity, curvature around 3 h",
                          "hours idle, curvature", "shape"),
    "below_threshold": ("cart under the baseline threshold", "under the threshold", "flag"),
    "below_20": ("cart under $20", "under $20", "flag"),
    "device_mobile": ("on a phone (rather than a desktop)", "phone", "flag"),
    "device_tablet": ("on a tablet (rather than a desktop)", "tablet", "flag"),
    "device_unknown": ("device unknown (rather than a desktop)", "device unknown", "flag"),
    "ship_express": ("express shipping (rather than standard)", "express", "flag"),
    "ship_overnight": ("overnight shipping (rather than standard)", "overnight", "flag"),
    "ship_same_day": ("same-day shipping (rather than standard)", "same day", "flag"),
    "ship_pickup": ("pickup (rather than standard shipping)", "pickup", "flag"),
    "log_value_x_log_inactivity": ("cart value × hours idle", "value × hours idle", "shape"),
    "mobile_x_log_inactivity": ("on a phone, hours since the last activity",
                                "phone × hours idle", "log"),
    "below_threshold_x_log_inactivity": ("under the threshold, hours since the last activity",
                                         "under threshold × idle", "log"),
    "below_20_x_log_inactivity": ("under $20, hours since the last activity",
                                  "under $20 × idle", "log"),
    "requires_account": ("the store requires an account", "account required", "flag"),
    "n_payment_options": ("each payment option the store offers", "payment options", "unit"),
    "offers_fast_shipping": ("the store offers fast shipping", "fast shipping offered", "flag"),
    "mobile_x_requires_account": ("on a phone, where an account is required",
                                  "phone × account", "flag"),
    "tablet_x_requires_account": ("on a tablet, where an account is required",
                                  "tablet × account", "flag"),
}  # fmt: skip
PER = {
    "flag": "when it holds",
    "log": "per doubling (of 1 + the amount)",
    "unit": "for each one",
    "shape": "per unit of the term (it bends the effects of others)",
}


@dataclass(frozen=True)
class Weight:
    name: str  # as the API names it (may hold a retailer's attribute value: escaped)
    words: str
    short: str
    weight: float
    factor: float
    per: str


def describe_feature(name: str) -> tuple[str, str, str]:
    """(words, few words, how it moves) for any feature, custom attributes included."""
    if name in FEATURES:
        return FEATURES[name]
    if "*" in name:
        a, _, b = name.partition("*")
        first, second = describe_feature(a), describe_feature(b)
        return f"{first[0]} × {second[0]}", f"{first[1]} × {second[1]}", "shape"
    if "=" in name:
        attribute, _, level = name.partition("=")
        return f"{attribute} is “{level}”", f"{attribute} = {level}", "flag"
    if name.endswith(":log"):
        return name.removesuffix(":log"), name.removesuffix(":log"), "log"
    if name.endswith(":pos"):
        words = f"{name.removesuffix(':pos')} above 0"
        return words, words, "flag"
    return name, name, "unit"


def weights(info: Mapping[str, Any]) -> list[Weight]:
    """Each weight as the factor it multiplies the odds of abandonment by, largest effect
    first: e^w when a flag holds, 2^w per doubling of 1 + a logged amount, e^w per unit."""
    out = []
    for name, w in (info.get("weights") or {}).items():
        words, short, kind = describe_feature(name)
        factor = 2.0**w if kind == "log" else math.exp(w)
        out.append(Weight(name, words, short, w, factor, PER[kind]))
    return sorted(out, key=lambda x: -abs(math.log(x.factor)) if x.factor > 0 else 0.0)


def weights_chart(found: Sequence[Weight], most: int = 12) -> Chart | None:
    shown = [w for w in found if w.factor > 0][:most]
    if not shown:
        return None
    return _drawn(lambda width: charts.factors(
        [(w.short, w.factor) for w in shown],
        title="What multiplies the odds of abandonment",
        description="Each feature's factor on the odds, on a log scale around ×1.",
        width=width,
    ))  # fmt: skip


@dataclass(frozen=True)
class WhatIf:
    change: str
    factor: float
    p_before: float
    p_after: float


def what_ifs(tenant: Tenant, info: Mapping[str, Any], levels: int = 5) -> list[WhatIf]:
    """The odds of abandonment of the retailer's typical cart against the same cart with one
    thing changed, as the serving model scores both: every weight, curvature and interaction
    at once, in plain words; of its categorical attributes, the ``levels`` values the model
    weighs most (from the weights ``info`` lists)."""
    retailer, model = tenant.retailer, tenant.model
    base = typical_cart(tenant)
    value = retailer.typical_cart_value
    code = retailer.currency

    def p(cart: _Cart) -> float:
        return float(model.score(cart, retailer).p_abandoned)

    def changed(**values: Any) -> _Cart:
        return replace(base, **values)

    cases: list[tuple[str, _Cart]] = [
        (f"cart value doubled ({money(value, code)} → {money(2 * value, code)})",
         changed(cart_value=2 * value)),
        (f"cart value halved ({money(value, code)} → {money(value / 2, code)})",
         changed(cart_value=value / 2)),
        ("one more item (2 → 3)", changed(item_count=3)),
        ("an hour more since the last activity (1 h → 2 h)", changed(inactivity_hours=2.0)),
        ("half a day since the last activity (1 h → 12 h)", changed(inactivity_hours=12.0)),
        ("on a phone rather than a desktop", changed(device_type="mobile")),
        ("on a tablet rather than a desktop", changed(device_type="tablet")),
    ]  # fmt: skip
    cases += [
        (f"shipping {speed.replace('_', ' ')} rather than {base.shipping_speed}",
         changed(shipping_speed=speed))
        for speed in retailer.shipping_speeds if speed != base.shipping_speed
    ]  # fmt: skip
    named = [n for n in (info.get("weights") or {}) if "=" in n and "*" not in n]
    named.sort(key=lambda n: -abs(info["weights"][n]))
    for name in named[:levels]:
        attribute, _, level = name.partition("=")
        cases.append((f"{attribute} is “{level}” (rather than none)",
                      changed(attributes={attribute: level})))  # fmt: skip
    before = p(base)
    out = []
    for change, cart in cases:
        after = p(cart)
        out.append(WhatIf(change, _odds(after) / _odds(before), before, after))
    return out


def _odds(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return p / (1 - p)


COMPARED = (
    ("roc_auc", "Ranking (ROC-AUC)", "ranking",
     "0.5 is a coin toss, 1 ranks every cart right"),
    ("auc_pr_purchased", "Finding buyers (AUC-PR, purchased)", "buyers",
     "how well the carts it rates likeliest to be bought were bought"),
    ("auc_pr_abandoned", "Finding abandoners (AUC-PR, abandoned)", "abandoners",
     "how well the carts it rates likeliest abandoned were abandoned"),
    ("brier", "Error of its probabilities (Brier)", "error", "lower is better; 0 is perfect"),
)  # fmt: skip
LOWER_BETTER = frozenset({"brier"})


@dataclass(frozen=True)
class Compared:
    name: str
    short: str
    words: str
    model: float | None
    rule: float | None
    better: bool | None  # the model's figure is the better one
    higher_better: bool


def against_rule(info: Mapping[str, Any]) -> tuple[list[Compared], int | None]:
    """The model against the baseline rule on the retailer's own held-out carts (as training
    measured them; the pooled model: its own test carts among the pool's)."""
    metrics = info.get("metrics")
    if not metrics or "candidate" not in metrics or "baseline" not in metrics:
        return [], None
    mine, rule = metrics["candidate"], metrics["baseline"]
    out = []
    for key, name, short, words in COMPARED:
        a, b = mine.get(key), rule.get(key)
        lower = key in LOWER_BETTER
        better = None if a is None or b is None else (a < b if lower else a > b)
        out.append(Compared(name, short, words, a, b, better, not lower))
    return out, metrics.get("n_test_carts")


def against_rule_chart(found: Sequence[Compared]) -> Chart | None:
    rows = [(c.short, c.model, c.rule) for c in found if c.higher_better]
    if not rows:
        return None
    return _drawn(lambda width: charts.paired(
        rows, ("this model", "the rule"), title="The model against the baseline rule",
        description="Held-out figures of the model and of the rule, each from 0 to 1.",
        width=width,
    ))  # fmt: skip


# --- Experiments -----------------------------------------------------------------------------


def uplift_chart(found: Sequence[ActionResult]) -> Chart | None:
    shown = [a for a in found if a.shown]
    if not shown:
        return None
    return _drawn(
        lambda width: charts.intervals(
            [
                charts.Interval(
                    a.name,
                    a.uplift or 0.0,
                    a.low or 0.0,
                    a.high or 0.0,
                    f"{points(a.uplift or 0.0)} per 100 carts",
                )
                for a in shown
            ],
            title="Purchases added per 100 carts, with 95 % intervals",
            description="Treatment group's purchase rate minus the control group's, per action.",
            width=width,
        )
    )
