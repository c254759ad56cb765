"""The Settings form: what it shows, what a submission changes, and each problem by its field.

A submission becomes the body a ``PATCH /retailer/{id}`` would send (``RetailerUpdate``), with
the fields that differ from the retailer's configuration only, and is validated by the same
schema, so the form accepts exactly what the API accepts. Shares are entered in per cent and
converted exactly (``Decimal``), so an unchanged field compares equal and makes no new policy
version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from cartpredict.core.errors import field_path
from cartpredict.decisions.policy import CHANNELS, RecoveryPolicy
from cartpredict.serving.policies import policy_of
from cartpredict.serving.schemas import RecoveryPolicyIn, RetailerUpdate
from cartpredict.storage import Retailer

MAX_FIELDS = 400
POLICY_SHARES = ("margin", "control_share", "max_action_share", "explore_share")
ACTION_SHARES = ("discount", "recovery_rate", "decay_per_hour")
ACTION_FIELDS = ("name", "channel", "cost", *ACTION_SHARES)
OPTIONAL = {"max_action_share", "recovery_rate", "decay_per_hour"}  # blank: none / the prior


def parse_body(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a repeated name keeps its last value."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))


def percent(share: float | None) -> str:
    """A share as the form shows it, in per cent (0.35 -> "35")."""
    if share is None:
        return ""
    return f"{share * 100:.4f}".rstrip("0").rstrip(".")


@dataclass
class SettingsForm:
    """The form's values as text (as shown, or as submitted) and its problems by field."""

    values: dict[str, str]
    actions: list[dict[str, str]]
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, retailer: Retailer) -> SettingsForm:
        policy = policy_of(retailer)
        values = {
            "precision_target": percent(retailer.precision_target),
            "pooled_learning": "on" if retailer.pooled_learning else "",
            **{name: percent(getattr(policy, name)) for name in POLICY_SHARES},
        }
        actions = [
            {"name": a.name, "channel": a.channel, "cost": f"{a.cost:g}",
             **{n: percent(getattr(a, n)) for n in ACTION_SHARES}, "remove": ""}
            for a in policy.actions
        ]  # fmt: skip
        return cls(values, [*actions, _blank()])

    @classmethod
    def submitted(cls, data: Mapping[str, str]) -> SettingsForm:
        values = {name: data.get(name, "").strip() for name in ("precision_target",
                                                                 *POLICY_SHARES)}  # fmt: skip
        values["pooled_learning"] = "on" if data.get("pooled_learning") else ""
        actions = []
        for i in range(_action_rows(data)):
            row = {n: data.get(f"action-{i}-{n}", "").strip() for n in ACTION_FIELDS}
            row["remove"] = "on" if data.get(f"action-{i}-remove") else ""
            actions.append(row)
        if not actions or actions[-1]["name"]:
            actions.append(_blank())
        return cls(values, actions)

    def changes(self, retailer: Retailer) -> dict[str, Any] | None:
        """The PATCH body this submission makes (the fields that differ), validated; None
        with ``errors`` filled when it is not valid."""
        wanted: dict[str, Any] = {
            "precision_target": self._share("precision_target", self.values),
            "pooled_learning": self.values["pooled_learning"] == "on",
        }
        policy: dict[str, Any] = {n: self._share(n, self.values) for n in POLICY_SHARES}
        rows = [(i, a) for i, a in enumerate(self.actions) if a["name"] and not a["remove"]]
        policy["actions"] = [self._action(i, a) for i, a in rows]
        if self.errors:
            return None
        if policy["max_action_share"] is None:
            policy.pop("max_action_share")
        try:
            parsed = RecoveryPolicyIn.model_validate(policy)
        except ValidationError as exc:
            self._problems(exc.errors(), prefix=("recovery_policy",), rows=[i for i, _ in rows])
            return None
        changes: dict[str, Any] = {}
        if wanted["precision_target"] != retailer.precision_target:
            changes["precision_target"] = wanted["precision_target"]
        if wanted["pooled_learning"] != retailer.pooled_learning:
            changes["pooled_learning"] = wanted["pooled_learning"]
        if not _same_policy(parsed, policy_of(retailer)):
            changes["recovery_policy"] = policy
        if not changes:
            return {}
        try:
            return RetailerUpdate.model_validate(changes).changes()
        except ValidationError as exc:
            self._problems(exc.errors(), prefix=(), rows=[i for i, _ in rows])
            return None

    def add_problems(self, details: Sequence[Mapping[str, str]], rows: Sequence[int]) -> None:
        """Problems the service found (``InvalidInput.details``), by the form's fields."""
        for detail in details:
            self.errors.setdefault(_form_field(detail["field"], rows), detail["reason"])

    def action_rows(self) -> list[int]:
        return [i for i, a in enumerate(self.actions) if a["name"] and not a["remove"]]

    def _share(self, name: str, values: Mapping[str, str], key: str | None = None) -> Any:
        text = values.get(name, "")
        if text == "" and name in OPTIONAL:
            return None
        try:
            number = Decimal(text.replace("%", "").strip())
        except InvalidOperation:
            self.errors[key or name] = "enter a number (per cent)"
            return None
        if not number.is_finite():
            self.errors[key or name] = "enter a number (per cent)"
            return None
        return float(number / 100)

    def _action(self, i: int, row: Mapping[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": row["name"], "channel": row["channel"]}
        try:
            cost = Decimal(row["cost"] or "0")
            out["cost"] = float(cost) if cost.is_finite() else None
        except InvalidOperation:
            out["cost"] = None
        if out["cost"] is None:
            self.errors[f"action-{i}-cost"] = "enter an amount"
        for name in ACTION_SHARES:
            value = self._share(name, row, key=f"action-{i}-{name}")
            if value is not None or name not in OPTIONAL:
                out[name] = value
        return out

    def _problems(self, errors: Sequence[Any], *, prefix: tuple[str, ...],
                  rows: Sequence[int]) -> None:  # fmt: skip
        for err in errors:
            path = field_path((*prefix, *err.get("loc", ())))
            self.errors.setdefault(_form_field(path, rows), _reason(err))


def _blank() -> dict[str, str]:
    return {"name": "", "channel": "email", "cost": "0", "discount": "0", "recovery_rate": "",
            "decay_per_hour": "", "remove": ""}  # fmt: skip


def _action_rows(data: Mapping[str, str]) -> int:
    indices = [
        int(key.split("-")[1])
        for key in data
        if key.startswith("action-") and key.count("-") == 2 and key.split("-")[1].isdigit()
    ]
    return min(max(indices, default=-1) + 1, 17)  # at most 16 actions, and a new one


def _same_policy(given: RecoveryPolicyIn, current: RecoveryPolicy) -> bool:
    return RecoveryPolicy.from_dict(given.to_plain()).to_dict() == current.to_dict()


def _form_field(path: str, rows: Sequence[int]) -> str:
    """``recovery_policy.actions.1.discount`` -> ``action-<its form row>-discount``."""
    parts = path.split(".")
    if parts[0] == "recovery_policy":
        parts = parts[1:]
    if not parts or parts == [""]:
        return "recovery_policy"
    if parts[0] == "actions":
        if len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(rows):
            return f"action-{rows[int(parts[1])]}-{parts[2]}"
        return "actions"
    return parts[0]


PERCENT_FIELDS = {"precision_target", *POLICY_SHARES, *ACTION_SHARES}


def _reason(err: Mapping[str, Any]) -> str:
    """Pydantic's reason, its bounds in per cent where the form takes per cent."""
    loc = [str(p) for p in err.get("loc", ())]
    ctx = err.get("ctx") or {}
    bound = {"greater_than": ("gt", "more than"), "greater_than_equal": ("ge", "at least"),
             "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}  # fmt: skip
    kind = err.get("type")
    if loc and loc[-1] in PERCENT_FIELDS and kind in bound:
        key, words = bound[kind]
        return f"must be {words} {percent(float(ctx[key]))} %"
    return str(err.get("msg", "not valid")).removeprefix("Value error, ")


CHANNEL_CHOICES = CHANNELS
