"""Who responds: an action's recovery rate per cart, learnt from treatment and control groups.

The decision's expected gain (``decisions/gain.py``) needs, per cart and action, the share
``r`` of otherwise-lost carts the action brings back if sent ``h`` hours after the last
activity. Its priors are one number per channel; this model learns ``r`` per cart from the
retailer's exposure events and purchases.

Why not two models, or treatment × feature interactions on one logistic model? Both learn
P(purchase | treated) and P(purchase | control) and read the uplift as their difference: with
control groups of 10 % and uplifts of a few points, that difference is mostly the noise of
two fits, and nothing keeps it between 0 and the carts left to recover. The structure of the
problem is known instead: an action cannot undo a purchase, it can only recover carts that
would otherwise be lost. So, for a cart decided at inactivity L with P(purchase in the rest of
the 24 h | no action) = p₀ from the served abandonment model (trained on untreated carts):

    P(purchase | control)          = q,   q = σ(logit p₀ + a)
    P(purchase | treated at h)     = q + (1 − q) · r,   r = σ(w · z(cart, h))

exactly, since a cart that would be lost is unbought at every ``h``. ``a`` recalibrates the
base model on these carts (both groups inform it, the control group alone says what happens
without the action); ``w`` are the recovery weights on ``z``: the cart's features (value,
items, device, ...), the delay ``h`` and its interactions, so the best send time is learnt per
cart. ``r`` stays in [0, 1] by construction, and its weights read as odds of recovery ("a
10 % pop-up recovers the odds × 1.8 on mobile carts").

Fitted by maximum likelihood with an L2 penalty on the standardised weights toward ``prior``
(the prior rate's logit on the intercept and its decay on the send time, no other effect),
with L-BFGS on the exact gradient (scipy). The features ``z`` are ``models/recovery.py``'s,
built here column by column.

Minimum data and promotion (``learn``)
=====================================
An action is learnt only from at least ``MIN_TREATED`` treated carts of which
``MIN_TREATED_BOUGHT`` were bought, and ``MIN_CONTROL`` control carts; until then the decision
keeps the prior and the model info says why.

The penalty is a prior, not a search: each standardised weight's deviation from what it shrinks
toward has a standard deviation of ``PRIOR_SD`` (toward the channel's prior) or ``POOLED_SD``
(a retailer's own model toward the pooled one), i.e. a penalty of 1 / (n · sd²) on the mean
log-likelihood of n carts. Choosing it on a held-out split, as the abandonment model does,
failed here: an action moves the purchase of a few carts in a hundred, so the held-out
likelihoods of every candidate penalty differed by 10⁻⁵ per cart, less than their noise, and the
search mostly picked the flattest model. ``POOLED_SD`` is small on purpose: stores differ in
how much they respond (their intercept, shrunk toward the pool's with a standard deviation of
``LEVEL_SD`` in log-odds, about 20 % either way), far less in who responds and when; a
retailer's own weights at the pool's scale, or a free intercept, cost more profit in the loop
than they won.

Promotion is cross-fitted: the carts are dealt into ``FOLDS`` folds, each fold's uplift is
predicted by the model fitted on the others, and the candidate is *promoted* only if those
out-of-fold predictions rank the randomised carts better than the prior does (a higher Qini
coefficient, ``qini.py``) and its policy earns no less than the prior's on them, beyond the
noise of that comparison (``ipw_profits``: send the action where its expected gain is
positive, valued by inverse propensity weighting of the treated and control carts; "beyond
the noise": by more than two standard errors of the cart-by-cart difference and more than
``PROFIT_TOLERANCE`` of the prior policy's profit). Why not "more than
the prior's": both policies send a cheap reminder to almost every cart, so their profits differ
by less than the noise of either, and what the model adds to it (the send time, the choice
between actions) is not in a one-action comparison; the guard stops a model whose targeting
measurably loses money. Every cart is held out once: four times the evidence of a
single held-out quarter. A promoted model is refitted on every cart. The two cross-fitted
Qini curves are kept (``Learnt.heldout_qini_curve``) when each of their 5 % steps covers at
least ``K_ANONYMITY`` randomised carts, for the dashboard to draw.

Pooling (``learn_pooled``), as for the abandonment model: the opted-in retailers'
experiments make one pooled model (each retailer with its own calibration offset, since
each has its own base model), promoted against the channel prior. Each retailer's own model
then shrinks toward the pooled one and serves only if it beats it on the retailer's own carts,
cross-fitted, and its policy measurably earns more there (by two standard errors: the pooled
model has far more evidence, and an own model promoted on a coin flip lost profit in the
loop); otherwise the retailer is served the pooled model (``reason: pooled``). Where the pool
does not beat the prior, each member learns from its own carts alone under that same rule (a
measurable gain over the prior): what all the members' carts together did not show, one
store's rarely does, and in the loop such models lost profit in each of the five seeds where
the pop-up's pool failed. A
retailer not opted in learns from its own carts alone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.optimize import minimize

from cartpredict.decisions.policy import Action
from cartpredict.learning import qini
from cartpredict.learning.fit import sigmoid
from cartpredict.models.recovery import (
    CART_FEATURES,
    KNOTS,
    VALUE_CENTRE,
    RecoveryModel,
    feature_names,
)
from cartpredict.privacy.anonymity import K_ANONYMITY

EPS = 1e-9
MIN_TREATED = 400
MIN_TREATED_BOUGHT = 20
MIN_CONTROL = 40
PRIOR_SD = 1.0
POOLED_SD = 0.05
LEVEL_SD = 0.2  # a store's recovery log-odds about the pool's
FOLDS = 4
MARGIN = 0.35  # of cart value, when the caller does not say
PROFIT_TOLERANCE = 0.005  # of the prior policy's profit: below it, a difference is immaterial


@dataclass(frozen=True)
class Recovery:
    """A fitted recovery model on raw features: r = σ(intercept + z · weights); and the base
    model's calibration on these carts: q = σ(logit p₀ + calibration + c · calibration_weights)
    with ``c`` the cart's features (``z`` without the send time)."""

    intercept: float
    weights: np.ndarray
    calibration: float  # ``a``: the base model's log-odds shift on these carts
    calibration_weights: np.ndarray
    converged: bool

    def rate(self, Z: np.ndarray) -> np.ndarray:
        return sigmoid(self.intercept + np.asarray(Z, dtype=float) @ self.weights)

    def base(self, p0: np.ndarray, C: np.ndarray) -> np.ndarray:
        """q: P(purchase | no action), the base model's p₀ recalibrated."""
        shift = self.calibration + np.asarray(C, dtype=float) @ self.calibration_weights
        return sigmoid(_logit(np.asarray(p0, dtype=float)) + shift)


def fit_recovery(
    Z: np.ndarray,
    p0: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    *,
    penalty: float,
    prior: np.ndarray | None = None,
    prior_intercept: float = -3.0,
    C: np.ndarray | None = None,
    intercept_penalty: float = 0.0,
    max_iter: int = 500,
) -> Recovery:
    """Fit ``r = σ(w · z)`` and the calibration (module docstring). ``Z``: the recovery
    features of every cart (those of untreated carts are unused but must be finite); ``p0``:
    the base model's P(purchase) at the decision; ``treated``: 1 for the treatment group;
    ``y``: 1 when bought within the label window. ``prior``/``prior_intercept``: what the
    weights shrink toward, on the raw scale (default: no effect of any feature and a 5 %
    recovery rate, σ(−3) ≈ 4.7 %). ``C``: the cart features the calibration may depend on
    (None: an offset alone), shrunk toward 0 with the same ``penalty``; ``intercept_penalty``:
    the intercept's, toward the prior's, at the average treated cart (0: free).

    Why a calibration by feature: the base model is not exact, and where it errs by a point
    or two for some kind of cart (the size of a recovery rate), a recovery model with a
    single offset would read that error as those carts' response to the action. The
    untreated carts measure the error; the treated ones, what is left of it, the action."""
    Z = np.asarray(Z, dtype=float)
    n, d = Z.shape
    t = np.asarray(treated, dtype=float)
    yv = np.asarray(y, dtype=float)
    base = _logit(np.asarray(p0, dtype=float))
    mean, scale = _moments(Z, t)
    S = (Z - mean) / scale
    Cm = np.zeros((n, 0)) if C is None else np.asarray(C, dtype=float)
    c_mean = Cm.mean(axis=0) if Cm.shape[1] else np.zeros(0)
    c_scale = Cm.std(axis=0) if Cm.shape[1] else np.zeros(0)
    c_scale = np.where(c_scale < 1e-12, 1.0, c_scale)
    CS = (Cm - c_mean) / c_scale
    k = CS.shape[1]
    # the prior on the standardised scale: w_std = w_raw * scale; b_std = b_raw + mean . w_raw
    w_prior = np.zeros(d) if prior is None else np.asarray(prior, dtype=float) * scale
    b_prior = prior_intercept + (0.0 if prior is None else float(mean @ np.asarray(prior)))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, cw, b, w = theta[0], theta[1 : 1 + k], theta[1 + k], theta[2 + k :]
        q = sigmoid(base + a + CS @ cw)
        r = sigmoid(b + S @ w)
        p = np.clip(q + t * (1.0 - q) * r, EPS, 1.0 - EPS)
        loss = -np.sum(yv * np.log(p) + (1.0 - yv) * np.log1p(-p)) / n
        loss += 0.5 * penalty * float(np.sum((w - w_prior) ** 2) + np.sum(cw**2))
        loss += 0.5 * intercept_penalty * (b - b_prior) ** 2
        g = (yv / p - (1.0 - yv) / (1.0 - p)) / n  # d(log-lik)/dp per cart
        dq = g * q * (1.0 - q) * (1.0 - t * r)  # through the calibration
        dr = g * t * (1.0 - q) * r * (1.0 - r)  # through b + S.w
        grad = np.empty_like(theta)
        grad[0] = -np.sum(dq)
        grad[1 : 1 + k] = -(CS.T @ dq) + penalty * cw
        grad[1 + k] = -np.sum(dr) + intercept_penalty * (b - b_prior)
        grad[2 + k :] = -(S.T @ dr) + penalty * (w - w_prior)
        return loss, grad

    start = np.concatenate([[0.0], np.zeros(k), [b_prior], w_prior])
    found = minimize(objective, start, jac=True, method="L-BFGS-B",
                     options={"maxiter": max_iter, "gtol": 1e-9})  # fmt: skip
    x = found.x
    a, cw, b, w = float(x[0]), x[1 : 1 + k], float(x[1 + k]), x[2 + k :]
    raw, c_raw = w / scale, cw / c_scale
    return Recovery(b - float(mean @ raw), raw, a - float(c_mean @ c_raw), c_raw,
                    bool(found.success))  # fmt: skip


def _moments(Z: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise on the treated carts (the only ones the weights see)."""
    rows = Z[treated.astype(bool)] if treated.any() else Z
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    return mean, np.where(scale < 1e-12, 1.0, scale)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=float)


# --- features, column by column ----------------------------------------------------------------


def recovery_matrix(
    value: np.ndarray, items: np.ndarray, device: np.ndarray, send_h: np.ndarray, channel: str
) -> np.ndarray:
    """``models.recovery``'s features of many carts, one row each."""
    x = np.log1p(np.maximum(np.asarray(value, dtype=float), 0.0))
    n = np.asarray(items)
    d = np.asarray(device).astype(str)
    mobile = (d == "mobile").astype(float)
    columns = [
        x,
        (x - VALUE_CENTRE) ** 2,
        (n == 1).astype(float),
        np.log1p(np.maximum(n, 0).astype(float)),
        mobile,
        (d == "desktop").astype(float),
        (d == "tablet").astype(float),
        mobile * x,
    ]
    if len(feature_names(channel)) > len(CART_FEATURES):
        h = np.asarray(send_h, dtype=float)
        at = [h, *(np.maximum(h - k, 0.0) for k in KNOTS)]
        columns += [*at, *(a * x for a in at), h * mobile]
    return np.column_stack(columns)


# --- one action's experiment, and learning from it --------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays
class Experiment:
    """One action's decided carts, oldest first: treated ones (given the action at
    ``send_h``), control ones (held out) and, outside the experiment (``randomised``
    false), decided carts given no action at all: untreated carts say how well the base
    model's p₀ is calibrated on the decided carts, the one figure that sets the level of
    every recovery rate; the control group alone (a tenth of the carts) says it only
    roughly. They take no part in the held-out Qini, which needs randomised groups."""

    value: np.ndarray
    items: np.ndarray
    device: np.ndarray
    send_h: np.ndarray  # when the action reached (or would have reached) the cart
    p0: np.ndarray  # the base model's P(purchase in the label window) at the decision
    treated: np.ndarray
    bought: np.ndarray  # within the cart's label window
    randomised: np.ndarray  # in the action's experiment (treated, or its control group)
    retailer: np.ndarray | None = None  # in a pooled experiment, each cart's retailer code

    def __len__(self) -> int:
        return int(self.value.size)

    def take(self, index: np.ndarray) -> Experiment:
        fields = {f: getattr(self, f)[index] for f in _FIELDS}
        fields["retailer"] = None if self.retailer is None else self.retailer[index]
        return Experiment(**fields)

    def calibration_matrix(self, Z: np.ndarray) -> np.ndarray:
        """What the base model's calibration may depend on: the cart's features, and in a
        pooled experiment each retailer's own offset (its base model is its own)."""
        cart = Z[:, : len(CART_FEATURES)]
        if self.retailer is None or len(self) == 0:
            return cart
        levels = np.arange(1, int(self.retailer.max()) + 1)  # (the first is the intercept's)
        return np.column_stack([cart, (self.retailer[:, None] == levels).astype(float)])

    def matrix(self, channel: str) -> np.ndarray:
        return recovery_matrix(self.value, self.items, self.device, self.send_h, channel)


_FIELDS = ("value", "items", "device", "send_h", "p0", "treated", "bought", "randomised")


@dataclass(frozen=True)
class Learnt:
    """What learning one action's recovery gave: the model to serve (None: the prior)."""

    action: str
    served: RecoveryModel | None
    reason: str  # promoted | pooled | too_few_treated | too_few_control | not_better
    treated: int
    control: int
    penalty: float | None = None
    heldout_qini: float | None = None  # the candidate's, cross-fitted on the randomised carts
    heldout_qini_prior: float | None = None
    heldout_loglik: float | None = None  # per cart
    heldout_loglik_prior: float | None = None
    heldout_profit: float | None = None  # per randomised cart, of its policy (``ipw_profits``)
    heldout_profit_prior: float | None = None
    # The cross-fitted Qini curves (``qini.POINTS`` points) those coefficients are the areas
    # of; None unless each point covers at least k randomised carts more than the one before.
    heldout_qini_curve: tuple[float, ...] | None = None
    heldout_qini_curve_prior: tuple[float, ...] | None = None
    compared_with: str = "channel_prior"  # what ``*_prior`` is: channel_prior | pooled_model

    @property
    def promoted(self) -> bool:
        return self.served is not None


def prior_model(action: Action) -> RecoveryModel:
    """The prior as a recovery model: σ(logit rate + h · log(1 − decay)), close to
    ``rate × (1 − decay)^h`` for small rates; what the learnt weights shrink toward."""
    names = feature_names(action.channel)
    weights = [0.0] * len(names)
    if "send_h" in names:
        weights[names.index("send_h")] = float(np.log(max(1.0 - action.decay, EPS)))
    rate = min(max(action.rate, EPS), 1.0 - EPS)
    return RecoveryModel(action.name, action.channel, float(np.log(rate / (1.0 - rate))),
                         tuple(weights))  # fmt: skip


def prior_rate(action: Action, send_h: np.ndarray) -> np.ndarray:
    """The prior's rate at each send time, as the decision uses it."""
    return np.asarray(action.rate * (1.0 - action.decay) ** np.asarray(send_h, dtype=float))


def learn(
    action: Action,
    data: Experiment,
    *,
    prior: RecoveryModel | None = None,
    margin: float = MARGIN,
    must_gain: bool = False,
) -> Learnt:
    """One action's recovery model, promoted or not (module docstring). ``prior``: what the
    weights shrink toward and what the model must beat (default: the channel's prior; a
    retailer in the pool: the pooled model); ``margin``: of cart value, for the profit of the
    policies compared; ``must_gain``: against the channel's prior too, promote only on a
    measurable gain (a member of a pool that did not beat the prior)."""
    control = int(np.sum(data.randomised.astype(bool) & ~data.treated.astype(bool)))
    treated = int(data.treated.sum())
    bought_treated = int(data.bought[data.treated.astype(bool)].sum())
    if treated < MIN_TREATED or bought_treated < MIN_TREATED_BOUGHT:
        return Learnt(action.name, None, "too_few_treated", treated, control)
    if control < MIN_CONTROL:
        return Learnt(action.name, None, "too_few_control", treated, control)
    shrink_to = prior_model(action) if prior is None else prior
    sd = PRIOR_SD if prior is None else POOLED_SD
    q, rate = _cross_fitted(action, data, shrink_to, pooled=prior is not None)
    prior_rates = _rates(action, prior, data)
    trial = np.flatnonzero(data.randomised.astype(bool))
    t = data.take(trial)
    curve = _qini_curve(t, (1.0 - q[trial]) * rate[trial])
    curve_prior = _qini_curve(t, (1.0 - t.p0) * prior_rates[trial])
    q_model, q_prior = qini.coefficient(curve), qini.coefficient(curve_prior)
    gains = _gain(action, t, 1.0 - q[trial], rate[trial], margin)
    gains_prior = _gain(action, t, 1.0 - t.p0, prior_rates[trial], margin)
    each, each_prior = (
        ipw_profits(action, t, gains > 0, margin),
        ipw_profits(action, t, gains_prior > 0, margin),
    )
    profit, profit_prior = float(each.mean()), float(each_prior.mean())
    noise = float(np.std(each - each_prior) / np.sqrt(max(len(t), 1)))
    if prior is None and not must_gain:  # against the channel's prior: no measurable loss
        allowed = max(2.0 * noise, PROFIT_TOLERANCE * abs(profit_prior))
        promoted = q_model > q_prior and profit >= profit_prior - allowed
    else:  # against evidence that outweighs one store's carts: a measurable gain
        promoted = q_model > q_prior and profit > profit_prior + 2.0 * noise
    penalty = _penalty(len(data), sd)
    served = (
        _served(action, _fit(action, data, shrink_to, pooled=prior is not None))
        if promoted
        else None
    )
    shown = len(trial) >= (qini.POINTS - 1) * K_ANONYMITY  # each 5 % step: k carts or more
    return Learnt(action.name, served, "promoted" if promoted else "not_better", treated,
                  control, penalty, q_model, q_prior, _loglik(data, q, rate),
                  _loglik(data, q, prior_rates), profit, profit_prior,
                  _rounded(curve) if shown else None, _rounded(curve_prior) if shown else None,
                  "channel_prior" if prior is None else "pooled_model")  # fmt: skip


def _cross_fitted(
    action: Action, data: Experiment, shrink_to: RecoveryModel, *, pooled: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each cart's P(purchase | control) and recovery rate at its send time, from the model
    fitted on the folds it is not in."""
    q, rate = np.zeros(len(data)), np.zeros(len(data))
    every = np.arange(len(data))
    for k in range(FOLDS):
        held = every[k::FOLDS]
        part = data.take(np.setdiff1d(every, held))
        fit = _fit(action, part, shrink_to, pooled=pooled)
        fold = data.take(held)
        Z = fold.matrix(action.channel)
        q[held] = fit.base(fold.p0, fold.calibration_matrix(Z))
        rate[held] = fit.rate(Z)
    return q, rate


def _penalty(n: int, sd: float) -> float:
    return 1.0 / (max(n, 1) * sd * sd)


def _gain(
    action: Action, data: Experiment, lost: np.ndarray, rate: np.ndarray, margin: float
) -> np.ndarray:
    """The decision's expected gain of the action at each cart's send time
    (``decisions/gain.py``): r·(1 − p₀)·v·(m − d) − p₀·v·d − c."""
    v, d = data.value, action.discount
    return np.asarray(rate * lost * v * (margin - d) - (1.0 - lost) * v * d - action.cost)


def ipw_profits(action: Action, data: Experiment, send: np.ndarray, margin: float) -> np.ndarray:
    """Per randomised cart, its term of the expected profit of sending the action where
    ``send`` (their mean): each treated cart the policy would treat, and each control cart it
    would leave alone, counts its realised profit divided by the chance of its group (inverse
    propensity weighting: unbiased, as the group is drawn at random); the others count 0. A
    cart's profit: its margin if bought, less the discount given to a treated one, less the
    action's cost."""
    treated = data.treated.astype(bool)
    if treated.all() or not treated.any():
        return np.zeros(len(data))
    share = float(treated.mean())
    bought = data.bought.astype(float)
    profit = np.where(
        treated,
        bought * data.value * (margin - action.discount) - action.cost,
        bought * data.value * margin,
    )
    weight = np.where(treated, send / share, ~send / (1.0 - share))
    return np.asarray(weight * profit)


def learn_pooled(
    action: Action,
    experiments: Mapping[str, Experiment],
    *,
    opted_in: Collection[str] | None = None,
    margins: Mapping[str, float] | None = None,
) -> tuple[RecoveryModel | None, dict[str, Learnt]]:
    """The pooled recovery model of the opted-in retailers' experiments (each with its own
    calibration offset), and each retailer's model shrunk toward it, promoted or not on the
    retailer's own carts; a retailer not ``opted_in`` (default: every one is) learns from its
    own carts alone, and its carts take no part in the pool. (None, ...) when the pool does
    not beat the prior. ``margins``: each retailer's margin (default ``MARGIN``); the pool's
    policies are valued at their median."""

    def margin(name: str) -> float:
        return MARGIN if margins is None else margins.get(name, MARGIN)

    alone = {n for n in experiments if opted_in is not None and n not in opted_in}
    out = {n: learn(action, experiments[n], margin=margin(n)) for n in sorted(alone)}
    names = sorted(n for n in experiments if n not in alone)
    if not names:
        return None, out
    pool = _concat([experiments[n] for n in names], codes=range(len(names)))
    model = learn(action, pool, margin=float(np.median([margin(n) for n in names]))).served
    for name in names:
        if model is None:  # the pool does not beat the prior: each retailer on its own, and
            # where all of them together showed no gain, one store's carts must show a clear one
            out[name] = learn(action, experiments[name], margin=margin(name), must_gain=True)
            continue
        own = learn(action, experiments[name], prior=model, margin=margin(name))
        out[name] = own if own.promoted else replace(own, served=model, reason="pooled")
    return model, out


def _rates(action: Action, model: RecoveryModel | None, data: Experiment) -> np.ndarray:
    """The rates ``model`` gives the carts at their send times (None: the channel prior's)."""
    if model is None:
        return prior_rate(action, data.send_h)
    return np.asarray(
        sigmoid(model.intercept + data.matrix(action.channel) @ np.asarray(model.weights))
    )


def _concat(parts: Sequence[Experiment], *, codes: Iterable[int] | None) -> Experiment:
    """One experiment of several; ``codes``: each part's retailer code (None: keep them)."""
    fields: dict[str, Any] = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS}
    if codes is None:
        kept = [p.retailer for p in parts if p.retailer is not None]
        fields["retailer"] = np.concatenate(kept) if len(kept) == len(parts) else None
    else:
        fields["retailer"] = np.concatenate(
            [np.full(len(p), c, dtype=int) for p, c in zip(parts, codes, strict=True)]
        )
    return Experiment(**fields)


def _fit(action: Action, data: Experiment, prior: RecoveryModel, *, pooled: bool) -> Recovery:
    """Fit toward ``prior``: the channel's (``pooled`` false), or the pooled model's, which
    also shrinks the intercept (module docstring)."""
    Z = data.matrix(action.channel)
    sd = POOLED_SD if pooled else PRIOR_SD
    level = _penalty(len(data), LEVEL_SD) if pooled else 0.0
    return fit_recovery(Z, data.p0, data.treated, data.bought, penalty=_penalty(len(data), sd),
                        prior=np.asarray(prior.weights), prior_intercept=prior.intercept,
                        C=data.calibration_matrix(Z), intercept_penalty=level)  # fmt: skip


def _served(action: Action, fit: Recovery) -> RecoveryModel:
    return RecoveryModel(action.name, action.channel, fit.intercept,
                         tuple(float(w) for w in fit.weights), fit.calibration,
                         discount=action.discount)  # fmt: skip


def _loglik(data: Experiment, q: np.ndarray, rate: np.ndarray) -> float:
    """Per cart, of the carts' purchases, with P(purchase | control) = ``q`` and the action
    recovering ``rate`` of the rest."""
    p = np.clip(np.where(data.treated.astype(bool), q + (1.0 - q) * rate, q), EPS, 1.0 - EPS)
    y = data.bought.astype(float)
    return float(np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _qini_curve(data: Experiment, score: np.ndarray) -> np.ndarray:
    return qini.empirical_curve(score, data.treated.astype(bool), data.bought.astype(bool))


def _rounded(curve: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in curve)
