"""Penalised logistic regression, fitted exactly with L-BFGS (NumPy and SciPy, no scikit-learn).

Minimises  mean log-loss + 0.5 * sum_j penalty_j * (v_j - prior_j)^2  over weights ``v`` of the
standardised features (the intercept is not penalised). ``prior`` lets a retailer's model be
shrunk toward the pooled model's weights (partial pooling) instead of toward zero. The result is
returned on the raw feature scale, so serving is a plain dot product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


@dataclass(frozen=True)
class Fitted:
    intercept: float
    weights: np.ndarray  # raw feature scale
    converged: bool


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    *,
    penalty: np.ndarray | float,
    prior: np.ndarray | None = None,
    prior_intercept: float | None = None,
    max_iter: int = 1000,
) -> Fitted:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = X.shape
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    constant = scale < 1e-12
    scale = np.where(constant, 1.0, scale)
    Z = (X - mean) / scale
    Z[:, constant] = 0.0
    lam = np.broadcast_to(np.asarray(penalty, dtype=float), (d,)).copy()
    v0 = np.zeros(d) if prior is None else np.asarray(prior, dtype=float) * scale
    v0[constant] = 0.0
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    b0 = np.log(rate / (1 - rate)) if prior_intercept is None else prior_intercept

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        b, v = theta[0], theta[1:]
        eta = b + Z @ v
        loss = np.mean(np.logaddexp(0.0, eta) - y * eta)
        diff = v - v0
        loss += 0.5 * float(np.sum(lam * diff * diff))
        residual = 1.0 / (1.0 + np.exp(-eta)) - y
        grad = np.empty(d + 1)
        grad[0] = residual.mean()
        grad[1:] = Z.T @ residual / n + lam * diff
        return float(loss), grad

    start = np.concatenate([[b0], v0])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    b, v = result.x[0], result.x[1:]
    v = np.where(constant, 0.0, v)
    weights = v / scale
    intercept = float(b - np.sum(weights * mean))
    return Fitted(intercept=intercept, weights=weights, converged=bool(result.success))


def sigmoid(eta: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * eta))
