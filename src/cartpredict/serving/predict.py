"""Predictions: a cart scored by its retailer's served model at the model's operating point,
counted in the metrics and logged for the daily stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cartpredict.core.errors import InvalidInput
from cartpredict.decisions.decide import Decision, as_dict
from cartpredict.monitoring.metrics import Metrics
from cartpredict.monitoring.recorder import PredictionRecorder
from cartpredict.serving.cache import Tenant
from cartpredict.serving.decisions import Decider
from cartpredict.serving.retailers import cart_problems
from cartpredict.serving.schemas import CartIn


class Predictor:
    """Scores carts with each retailer's served model, at its operating point; counts them
    (metrics) and logs them for the daily stats (recorder)."""

    def __init__(
        self,
        metrics: Metrics | None = None,
        recorder: PredictionRecorder | None = None,
        decider: Decider | None = None,
    ) -> None:
        self._metrics = metrics
        self._recorder = recorder
        self._decider = decider or Decider()

    def predict(self, tenant: Tenant, cart: CartIn) -> dict[str, Any]:
        out, decision = self._score(tenant, cart, "")
        if self._metrics is not None:
            self._metrics.predicted(tenant.model.kind)
        if self._recorder is not None:
            self._record(cart, out, decision)
        return out

    def predict_batch(
        self, tenants: Mapping[str, Tenant], carts: Sequence[CartIn]
    ) -> list[dict[str, Any]]:
        """All or nothing: every invalid cart is reported, by index, before any is scored."""
        results: list[tuple[dict[str, Any], Decision | None]] = []
        problems: list[dict[str, str]] = []
        for i, cart in enumerate(carts):
            try:
                results.append(self._score(tenants[cart.retailer_id], cart, f"carts.{i}."))
            except InvalidInput as exc:
                problems.extend(exc.details)
        if problems:
            raise InvalidInput(f"{len(problems)} invalid cart(s)", details=problems)
        if self._metrics is not None:
            kinds = Counter(tenants[cart.retailer_id].model.kind for cart in carts)
            for kind, n in kinds.items():
                self._metrics.predicted(kind, n)
        if self._recorder is not None:
            for cart, (out, decision) in zip(carts, results, strict=True):
                self._record(cart, out, decision)
        return [out for out, _ in results]

    def _record(self, cart: CartIn, out: Mapping[str, Any], decided: Decision | None) -> None:
        assert self._recorder is not None
        self._recorder.record(
            cart.retailer_id, cart.cart_id, out["model_version"],
            out["abandonment_probability"], out["prediction"] == "abandoned",
            cart.cart_value, cart.item_count, cart.device_type, cart.shipping_speed, decided,
        )  # fmt: skip

    def _score(
        self, tenant: Tenant, cart: CartIn, field_prefix: str
    ) -> tuple[dict[str, Any], Decision | None]:
        """The answer, and the decision in it (None without a cart id)."""
        retailer = tenant.retailer
        problems = cart_problems(retailer, cart, field_prefix)
        if problems:
            raise InvalidInput(
                problems[0]["field"] + ": " + problems[0]["reason"], details=problems
            )
        model = tenant.model
        decision, answer = None, None
        if cart.cart_id is None:
            p_abandoned, abandoned = model.score(cart, retailer)
        elif (fixed := self._decider.fixed(tenant, cart)) is not None:
            decision, answer = fixed
            p_abandoned, abandoned = model.score(cart, retailer)
        else:
            (p_abandoned, abandoned), curve = model.score_over_inactivity(cart, retailer)
            decision = self._decider.decide(tenant, cart, p_abandoned, curve)
            answer = as_dict(decision)
        out: dict[str, Any] = {
            "prediction": "abandoned" if abandoned else "purchased",
            "probability": round(p_abandoned if abandoned else 1.0 - p_abandoned, 6),
            "retailer_id": retailer.retailer_id,
            "abandonment_probability": round(p_abandoned, 6),
            "model_version": model.version,
            "threshold": model.threshold,
            "decision": answer,
        }
        if cart.explain:
            explain = getattr(model, "contributions", None)
            out["contributions"] = (
                {k: round(v, 6) for k, v in explain(cart, retailer).items()} if explain else None
            )
        return out, decision
