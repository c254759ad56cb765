"""Qini curves: how well a ranking of carts finds the ones an action moves.

Radcliffe's Qini curve (N. J. Radcliffe, "Using control groups to target on predicted lift",
Direct Marketing Analytics Journal, 2007) treats the top-ranked carts first and plots the
incremental purchases so far against the share of carts treated. From treatment and control
carts of an experiment, with ``n_t(k)``, ``n_c(k)`` carts and ``y_t(k)``, ``y_c(k)`` purchases
among the top ``k`` of either group::

    Q(k) = y_t(k) − y_c(k) · n_t(k) / n_c(k)

scaled here to incremental purchases per treated cart (divided by all treated carts), so that
curves of stores of any size compare. Random targeting is the straight line from 0 to Q(N);
the *Qini coefficient* is the area between the curve and that line (positive: better than
random), on the share of carts treated from 0 to 1.

In a simulation each cart's true uplift is known, and the *expected* curve sums it down the
ranking instead (``expected_curve``): no purchase noise, only the ranking's. Intervals come from
a bootstrap over carts (``bootstrap``), resampling treatment and control carts separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

POINTS = 21  # the curve at 0 %, 5 %, ..., 100 % of carts treated


@dataclass(frozen=True)
class Qini:
    shares: tuple[float, ...]  # of carts treated, 0 to 1
    uplift: tuple[float, ...]  # incremental purchases per cart of the group, at each share
    coefficient: float
    ci95: tuple[float, float] | None = None


def empirical_curve(score: np.ndarray, treated: np.ndarray, bought: np.ndarray) -> np.ndarray:
    """Q at each of ``POINTS`` shares, per treated cart, from an experiment's carts."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(bought, dtype=float)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n_c > 0, y_t - y_c * n_t / np.maximum(n_c, 1), y_t)
    q = q / max(int(t.sum()), 1)
    return _at_shares(q)


def expected_curve(score: np.ndarray, uplift: np.ndarray) -> np.ndarray:
    """Q at each of ``POINTS`` shares, per cart, treating carts of known true ``uplift`` in
    the ranking's order."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    q = np.cumsum(np.asarray(uplift, dtype=float)[order]) / max(len(order), 1)
    return _at_shares(q)


def coefficient(curve: np.ndarray) -> float:
    """The area between the curve and the random line (trapezoids over the shares)."""
    shares = np.linspace(0.0, 1.0, len(curve))
    gap = np.asarray(curve) - shares * curve[-1]
    return float(np.sum((gap[1:] + gap[:-1]) / 2.0) / (len(curve) - 1))


def qini(curve: np.ndarray, ci95: tuple[float, float] | None = None) -> Qini:
    shares = np.linspace(0.0, 1.0, len(curve))
    return Qini(tuple(float(s) for s in shares), tuple(float(v) for v in curve),
                coefficient(curve), ci95)  # fmt: skip


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    strata: np.ndarray | None = None,
    resamples: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """The 2.5 % and 97.5 % percentiles of ``statistic(indices)`` over resamples of ``n``
    carts drawn with replacement (within each stratum, if given)."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == s)
                                                     for s in np.unique(strata)]  # fmt: skip
    values = np.empty(resamples)
    for i in range(resamples):
        index = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups if len(g)])
        values[i] = statistic(index)
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _at_shares(cumulative: np.ndarray) -> np.ndarray:
    n = len(cumulative)
    full = np.concatenate([[0.0], cumulative])
    positions = np.round(np.linspace(0.0, 1.0, POINTS) * n).astype(int)
    return np.asarray(full[positions], dtype=float)
