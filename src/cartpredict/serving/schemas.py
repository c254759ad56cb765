"""API models in families: RetailerCreate / RetailerUpdate / RetailerPublic, CartIn / PredictionOut.

Every request model forbids unknown fields (no personal data slips in under another name),
rejects NaN and Infinity, and takes numbers and booleans only as JSON numbers and booleans.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cartpredict.core import currency
from cartpredict.core.clock import rfc3339
from cartpredict.core.scopes import KEY_NAME_PATTERN, MAX_GRACE, Scope, in_order
from cartpredict.core.vocabulary import Channel, DeviceType
from cartpredict.decisions.policy import DEFAULT_EXPLORE_SHARE
from cartpredict.privacy.personal import not_personal
from cartpredict.serving.policies import policy_of
from cartpredict.storage import ApiKey, Retailer

MAX_BATCH = 1000

T = TypeVar("T")


def _unique(values: list[T]) -> list[T]:
    if len(set(values)) != len(values):
        raise ValueError("values must be unique")
    return values


RETAILER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RetailerId = Annotated[
    str,
    StringConstraints(pattern=RETAILER_ID_PATTERN),
    Field(
        description="Letters, digits, '_', '.', '-'; 1-64 characters, starting with a letter "
        "or digit",
        examples=["store_12345"],
    ),
]
PaymentOption = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
    Field(examples=["credit_card"]),
]
ShippingSpeedName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
    Field(
        description="A lower-case identifier: the seed's standard, express, overnight, same_day "
        "and pickup, or any of the retailer's own (economy, two_day, ...)",
        examples=["standard"],
    ),
]
DeliveryDays = Annotated[float, Field(ge=0, le=365)]
Money = Annotated[
    float,
    Field(strict=True, ge=0, le=1e11, description="In the retailer's currency"),
]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(
        description="ISO 4217 code of the currency every amount of this retailer is in",
        examples=["USD", "JPY"],
    ),
]
PositiveMoney = Annotated[
    float, Field(strict=True, gt=0, le=1e11, description="In the retailer's currency")
]
Hours = Annotated[float, Field(strict=True, ge=0, le=24 * 366)]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# --- custom attributes -----------------------------------------------------------------------

MAX_CATEGORY_LENGTH = 64


class AttributeKind(StrEnum):
    numeric = "numeric"
    categorical = "categorical"


AttributeName = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"), AfterValidator(not_personal)
]


class AttributeSpec(_Request):
    name: AttributeName
    kind: AttributeKind


def _unique_names(specs: list[AttributeSpec]) -> list[AttributeSpec]:
    _unique([s.name for s in specs])
    return specs


AttributeSpecs = Annotated[list[AttributeSpec], Field(max_length=64), AfterValidator(_unique_names)]
AttributeValue = (
    Annotated[float, Field(strict=True)]
    | Annotated[str, StringConstraints(min_length=1, max_length=MAX_CATEGORY_LENGTH)]
)
AttributeValues = Annotated[
    dict[AttributeName, AttributeValue],
    Field(max_length=64, description="Values of the retailer's declared custom attributes"),
]


# --- retailers -------------------------------------------------------------------------------

PaymentOptions = Annotated[
    list[PaymentOption], Field(min_length=1, max_length=32), AfterValidator(_unique)
]
ShippingSpeeds = Annotated[
    list[ShippingSpeedName], Field(min_length=1, max_length=16), AfterValidator(_unique)
]
ShippingDays = Annotated[
    dict[ShippingSpeedName, DeliveryDays],
    Field(
        max_length=16,
        description='Delivery days of some or all of shipping_speeds ({"economy": 7}): how '
        "a speed of the retailer's own compares with others. The seed's five need none.",
    ),
]


def days_problems(speeds: Sequence[str], days: Mapping[str, float]) -> list[dict[str, str]]:
    """Delivery days given for a speed the retailer does not offer."""
    return [
        {"field": f"shipping_days.{speed}", "reason": "not one of shipping_speeds"}
        for speed in days
        if speed not in speeds
    ]


# --- recovery policy -------------------------------------------------------------------------

ActionName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
    Field(description="A lower-case identifier, unique in the policy, never 'none'",
          examples=["reminder_email"]),
]  # fmt: skip
Share = Annotated[float, Field(strict=True, ge=0, le=1)]


class ActionIn(_Request):
    name: ActionName
    channel: Channel
    cost: Annotated[float, Field(strict=True, ge=0, le=1e9)] = Field(
        description="Per action taken, in the retailer's currency"
    )
    discount: Annotated[float, Field(strict=True, ge=0, lt=1)] = Field(
        description="Share of the cart's value given away when the cart is bought"
    )
    recovery_rate: Share | None = Field(
        None, description="Share of otherwise-lost carts it recovers (default: the channel's prior)"
    )
    decay_per_hour: Share | None = Field(
        None, description="Share of that rate lost per hour of delay (default: the channel's)"
    )

    @field_validator("name")
    @classmethod
    def _not_none(cls, name: str) -> str:
        if name == "none":
            raise ValueError("'none' means no action: name the action otherwise")
        return name


def _unique_actions(actions: list[ActionIn]) -> list[ActionIn]:
    names = [a.name for a in actions]
    if len(set(names)) != len(names):
        raise ValueError("action names must be unique")
    return actions


class RecoveryPolicyIn(_Request):
    margin: Annotated[float, Field(strict=True, gt=0, le=1)] = Field(
        description="Share of a cart's value kept when it is bought"
    )
    control_share: Annotated[float, Field(strict=True, ge=0.01, le=0.5)] = Field(
        description="Share of carts held out as a control group"
    )
    max_action_share: Annotated[float, Field(strict=True, gt=0, le=1)] | None = Field(
        None, description="Act on at most this share of carts, those of highest expected gain"
    )
    explore_share: Annotated[float, Field(strict=True, ge=0, le=0.5)] = Field(
        DEFAULT_EXPLORE_SHARE,
        description="Share of carts given an eligible action at a random send time, whatever "
        "its expected gain, so that what each action does is learnt on every kind of cart "
        "(0: never explore, send times included)",
    )
    actions: Annotated[list[ActionIn], Field(max_length=16), AfterValidator(_unique_actions)]

    def to_plain(self) -> dict[str, Any]:
        """As stored: optional action fields only when given."""
        out = self.model_dump(mode="json")
        out["actions"] = [a.model_dump(mode="json", exclude_none=True) for a in self.actions]
        return out


PrecisionTarget = Annotated[
    float,
    Field(
        strict=True,
        gt=0,
        lt=1,
        description="Operating point: highest recall whose precision on validation data is at "
        "least this",
    ),
]


class RetailerCreate(_Request):
    retailer_id: RetailerId
    requires_account: StrictBool
    payment_options: PaymentOptions
    shipping_speeds: ShippingSpeeds
    shipping_days: ShippingDays = Field(default_factory=dict)
    pooled_learning: StrictBool = Field(
        False, description="Opt in to the pooled model shared (as weights only) across retailers"
    )
    precision_target: PrecisionTarget = 0.70
    attributes: AttributeSpecs = Field(
        default_factory=list,
        description="Custom cart attributes the model should use (numeric or categorical)",
    )
    baseline_threshold: PositiveMoney | None = Field(
        None,
        description="The baseline rule's threshold: a cart below it is called abandoned. "
        "Default: $20 converted once, at onboarding, with the service's dated rate table",
    )
    typical_cart_value: PositiveMoney | None = Field(
        None,
        description="A typical cart of this store (its median is a good choice): the pooled "
        "model sees values relative to it. Default: $60 converted as baseline_threshold is",
    )
    currency: Currency = Field("USD", validate_default=True)  # (after the amounts it needs)
    recovery_policy: RecoveryPolicyIn | None = Field(
        None, description="Margin, actions, control share (default: the documented policy)"
    )

    @field_validator("currency")
    @classmethod
    def _convertible(cls, code: str, info: ValidationInfo) -> str:
        given = [info.data.get(k) for k in ("baseline_threshold", "typical_cart_value")]
        if not currency.known(code) and None in given:
            raise ValueError(
                f"no rate for {code} in the service's table of {currency.rates_date()}: give "
                f"baseline_threshold and typical_cart_value in {code}"
            )
        return code

    @field_validator("shipping_days")
    @classmethod
    def _days_of_offered_speeds(
        cls, days: dict[str, float], info: ValidationInfo
    ) -> dict[str, float]:
        speeds = info.data.get("shipping_speeds")
        if speeds is not None:  # (invalid speeds are reported on their own)
            for problem in days_problems(speeds, days):
                raise ValueError(f"'{problem['field'].split('.', 1)[1]}' is not one of "
                                 "shipping_speeds")  # fmt: skip
        return days


class RetailerUpdate(_Request):
    """Any subset of the settable fields; ``retailer_id`` cannot change."""

    requires_account: StrictBool | None = None
    payment_options: PaymentOptions | None = None
    shipping_speeds: ShippingSpeeds | None = None
    shipping_days: ShippingDays | None = None
    pooled_learning: StrictBool | None = None
    precision_target: PrecisionTarget | None = None
    attributes: AttributeSpecs | None = None
    baseline_threshold: PositiveMoney | None = None
    typical_cart_value: PositiveMoney | None = None
    currency: Currency | None = Field(
        None, description="Fixed at onboarding: the retailer's carts and models are in it"
    )
    recovery_policy: RecoveryPolicyIn | None = Field(
        None, description="Replaces the whole policy; every change makes a new policy version"
    )

    @field_validator("currency")
    @classmethod
    def _fixed(cls, value: str) -> str:
        raise ValueError(
            "the currency is fixed at onboarding (stored carts and trained models are in it)"
        )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> RetailerUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self

    def changes(self) -> dict[str, object]:
        """The given fields as plain JSON values (enums as strings, attributes as objects)."""
        out = self.model_dump(mode="json", include=self.model_fields_set)
        if self.recovery_policy is not None:
            out["recovery_policy"] = self.recovery_policy.to_plain()
        return out


class RetailerPublic(BaseModel):
    retailer_id: str
    requires_account: bool
    payment_options: list[str]
    shipping_speeds: list[str]
    shipping_days: dict[str, float]
    pooled_learning: bool
    precision_target: float
    attributes: list[AttributeSpec]
    currency: str
    baseline_threshold: float
    typical_cart_value: float
    recovery_policy: RecoveryPolicyIn
    policy_version: int
    last_updated: datetime = Field(description="RFC 3339, UTC")


def retailer_public(retailer: Retailer) -> dict[str, Any]:
    """A retailer as ``GET /retailer/{id}`` shows it: the fields ``POST /retailer`` takes, plus
    ``last_updated`` (RFC 3339, UTC)."""
    return {
        "retailer_id": retailer.retailer_id,
        "requires_account": retailer.requires_account,
        "payment_options": list(retailer.payment_options),
        "shipping_speeds": list(retailer.shipping_speeds),
        "shipping_days": dict(retailer.shipping_days),
        "pooled_learning": retailer.pooled_learning,
        "precision_target": retailer.precision_target,
        "attributes": [{"name": n, "kind": k} for n, k in retailer.attributes],
        "currency": retailer.currency,
        "baseline_threshold": retailer.baseline_threshold,
        "typical_cart_value": retailer.typical_cart_value,
        "recovery_policy": policy_of(retailer).to_dict(),
        "policy_version": retailer.policy_version,
        "last_updated": rfc3339(retailer.last_updated),
    }


class RetailerCreated(RetailerPublic):
    api_key: str = Field(description="Shown once: store it now. Only its hash is kept.")


# --- API keys --------------------------------------------------------------------------------


KeyName = Annotated[
    str,
    StringConstraints(pattern=KEY_NAME_PATTERN),
    Field(
        description="Lower-case letters, digits, '_' and '-', starting with a letter; 1-32 "
        "characters; unique among the retailer's live keys",
        examples=["marketing"],
    ),
]
KeyScopes = Annotated[
    list[Scope],
    Field(
        min_length=1,
        description="What the key may do: predict (POST /predict_cart, /predict_cart/batch), "
        "events (POST /events), read (every GET on the retailer), manage (changes to the "
        "retailer, its model and its keys)",
    ),
    AfterValidator(_unique),
]


class KeyCreate(_Request):
    """A named key beside the retailer's others, or, with ``replace``, instead of them."""

    name: KeyName
    scopes: KeyScopes
    replace: StrictBool = Field(False, description="Revoke every other key of the retailer")


class KeyRotate(_Request):
    grace_seconds: StrictInt = Field(
        0,
        ge=0,
        le=int(MAX_GRACE.total_seconds()),
        description="How long the old secret keeps working (0: it is revoked at once)",
    )


class KeyPublic(BaseModel):
    key_id: str = Field(description="The key's public id (not a secret)")
    name: str
    scopes: list[Scope]
    created_at: str
    expires_at: str | None = Field(
        description="When a rotated key stops working (null: until it is revoked)"
    )


def key_public(key: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: never its secret, nor the secret's hash."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "scopes": in_order(key.scopes),
        "created_at": rfc3339(key.created_at),
        "expires_at": rfc3339(key.expires_at) if key.expires_at is not None else None,
    }


class KeysOut(BaseModel):
    retailer_id: str
    keys: list[KeyPublic] = Field(description="The live keys, oldest first")


class ApiKeyOut(KeyPublic):
    retailer_id: str
    api_key: str = Field(description="Shown once: store it now. Only its hash is kept.")


class Replaced(BaseModel):
    key_id: str
    expires_at: str = Field(description="When the old secret stops (or stopped) working")


class KeyRotated(ApiKeyOut):
    replaced: Replaced = Field(description="The key rotated: its id, and its end")


# --- predictions -----------------------------------------------------------------------------


OpaqueId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$"),
    Field(description="The retailer's opaque id (never personal data)", examples=["c-1"]),
]


class CartIn(_Request):
    retailer_id: RetailerId
    cart_value: Money = Field(description="Cart total in the retailer's currency")
    item_count: Annotated[StrictInt, Field(ge=0, le=100_000)]
    inactivity_hours: Hours = Field(description="Hours since the last cart activity")
    device_type: DeviceType
    shipping_speed: ShippingSpeedName = Field(description="One of the retailer's shipping_speeds")
    attributes: AttributeValues = Field(default_factory=dict)
    cart_id: OpaqueId | None = Field(
        None,
        description="The retailer's own cart id, as in its events (optional): lets the daily "
        "stats match this prediction with the cart's purchase",
    )
    explain: StrictBool = Field(False, description="Also return per-feature contributions")
    contactable: StrictBool = Field(
        False,
        description="The shopper consented to messages (email, SMS, push); without it only "
        "on-site actions are decided. No personal data is sent or stored either way",
    )


class DecisionOut(BaseModel):
    action: str = Field(description='The action to take, or "none"')
    group: Literal["treatment", "control"] = Field(
        description="Fixed by the cart id: the same on every call and every worker"
    )
    held_out: str = Field(description="For a control cart, the action it would have had")
    send_after_hours: float = Field(
        description="Hours after the last activity to act; equal to inactivity_hours: now"
    )
    expected_gain: float = Field(description="Expected gain of the action, in the currency")
    reason: Literal["control", "gain", "no_gain", "not_contactable", "budget", "no_policy"]
    policy_version: int
    explored: bool = Field(
        description="The action (or, for a control cart, held_out) and its send time were "
        "drawn at random to learn what actions do (the policy's explore_share); reason still "
        "says what the policy alone would have done"
    )
    propensity: float = Field(
        description="The probability with which this action and send time were chosen"
    )


class PredictionOut(BaseModel):
    prediction: Literal["abandoned", "purchased"] = Field(
        description="At the retailer's operating point"
    )
    probability: Probability = Field(description="The model's confidence in `prediction`")
    retailer_id: str
    abandonment_probability: Probability = Field(description="Always P(abandoned)")
    model_version: str = Field(description='"baseline" until a trained model is promoted')
    threshold: Probability | None = Field(
        description="P(abandoned) at or above which the prediction is `abandoned`; null for "
        "the baseline rule, which decides on cart value"
    )
    contributions: dict[str, float] | None = Field(
        None,
        description='With "explain": true: weight x value per feature (log-odds of abandonment),'
        " plus the intercept",
    )
    decision: DecisionOut | None = Field(
        description="With a cart_id: whether to act on this cart, how and when; else null"
    )


class BatchIn(_Request):
    carts: Annotated[list[CartIn], Field(min_length=1, max_length=MAX_BATCH)]


class BatchOut(BaseModel):
    predictions: list[PredictionOut] = Field(description="One per cart, in request order")


# --- errors and health -----------------------------------------------------------------------


class ErrorDetail(BaseModel):
    field: str
    reason: str


class ErrorInfo(BaseModel):
    status: int
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorOut(BaseModel):
    error: ErrorInfo


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


# --- events ----------------------------------------------------------------------------------

MAX_EVENTS = 10_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


# RFC 3339's date-time, no more: pydantic alone would also take a Unix time ("1700000000"),
# minutes without seconds, or an offset without its colon.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339_text(value: object) -> object:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a time zone, e.g. 2026-11-01T10:00:00Z"
        )
    return value


def _plausible(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or utc < EARLIEST or utc.year > 9000:
        raise ValueError("must be between 2000-01-01 and the year 9000")
    return utc


EventTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_plausible)]


class CartUpdated(_Request):
    """The cart's full state after a change."""

    event_id: OpaqueId
    type: Literal["cart_updated"]
    cart_id: OpaqueId
    at: EventTime
    cart_value: Money
    item_count: Annotated[StrictInt, Field(ge=0, le=100_000)]
    device_type: DeviceType
    shipping_speed: ShippingSpeedName
    attributes: AttributeValues = Field(default_factory=dict)


class Purchased(_Request):
    event_id: OpaqueId
    type: Literal["purchased"]
    cart_id: OpaqueId
    at: EventTime


class ActionTaken(_Request):
    """What the retailer did with a decision, for every decided cart it took into account
    (intent to treat: a failed send, or a cart bought before the send, still counts)."""

    event_id: OpaqueId
    type: Literal["action"]
    cart_id: OpaqueId
    at: EventTime = Field(description="The decision's time")
    action: ActionName = Field(description="The decided action, or the held-out one")
    group: Literal["treatment", "control"]
    delivered: StrictBool | None = Field(None, description="Whether it reached the shopper")


Event = Annotated[CartUpdated | Purchased | ActionTaken, Field(discriminator="type")]


class EventsIn(_Request):
    retailer_id: RetailerId
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS)]


class EventsOut(BaseModel):
    retailer_id: str
    received: int = Field(description="Events in the request")
    stored: int = Field(description="Events stored now")
    duplicates: int = Field(description="Events already stored earlier (same event_id), ignored")


# --- models ----------------------------------------------------------------------------------


class TrainingWindow(BaseModel):
    start: datetime
    end: datetime


class Note(BaseModel):
    field: str = Field(description="Where in this response")
    reason: str


class OperatingPointOut(BaseModel):
    precision_target: float = Field(description="The retailer's, as set now")
    threshold: float | None = Field(
        description="P(abandoned) at or above which a cart is called abandoned; None: a rule"
    )
    source: Literal["own_validation", "pooled_grid", "stored", "baseline_rule"] = Field(
        description="own_validation: set on this retailer's own validation carts; pooled_grid: "
        "the pooled model's table over every member's validation carts, read at the grid "
        "target; stored: the threshold chosen when an older version was trained; "
        "baseline_rule: a fixed rule"
    )
    grid_target: float | None = Field(
        description="pooled_grid: the grid point at or above precision_target that was used"
    )
    reaches_target: bool | None = Field(
        description="Whether the threshold's validation precision reaches the target (else "
        "the most precise threshold serves)"
    )
    expected_precision: Probability | None = Field(
        description="Precision of 'abandoned' at the threshold, on the validation carts"
    )
    share_called_abandoned: Probability | None = Field(
        description="Share of the validation carts called abandoned at the threshold"
    )
    abandonment_rate: Probability | None = Field(
        description="Of this retailer's own validation carts"
    )
    validation_carts: int | None = Field(description="This retailer's own, that set it")


class PrecisionRecallOut(BaseModel):
    precision: list[float] = Field(description="At each point, recall decreasing")
    recall: list[float] = Field(
        description="Each point calls at least 10 carts more than the one before it (the "
        "first at least 10); the last, at recall 0, repeats the first point's precision"
    )


class CalibrationBinOut(BaseModel):
    lower: Probability = Field(description="Of P(purchased)")
    upper: Probability
    mean_predicted: Probability = Field(description="Mean P(purchased) of the bin's snapshots")
    observed_rate: Probability = Field(description="The share of them bought within 24 h")
    count: int = Field(description="Snapshots (of at least 10 carts)")


class CurvesOf(BaseModel):
    pr_purchased: PrecisionRecallOut | None = Field(description="Purchased as the positive class")
    pr_abandoned: PrecisionRecallOut | None = Field(description="Abandoned as the positive class")
    calibration: list[CalibrationBinOut] = Field(
        description="Bins 0.1 wide of P(purchased), neighbours merged to at least 10 carts"
    )


class HeldOutCurves(BaseModel):
    candidate: CurvesOf = Field(description="The model version")
    baseline: CurvesOf = Field(description="The baseline rule, fitted on the same training carts")


class RecoveryPrior(BaseModel):
    recovery_rate: Probability = Field(description="The channel's (or the action's own) prior")
    decay_per_hour: Probability


class QiniCurve(BaseModel):
    shares: list[float] = Field(description="0, 0.05, ..., 1: the share of carts acted on")
    model: list[float] = Field(
        description="Purchases added per cart, acting on that share ranked by the model"
    )
    prior: list[float] = Field(description="The same, ranked by what it was compared with")


class HeldOutRecovery(BaseModel):
    """Cross-fitted figures on the randomised (treated and control) carts of the last
    training, beside the same figures of what the model was compared with."""

    qini: float | None = Field(description="Qini coefficient of the model's ranking")
    qini_prior: float | None = Field(description="The same, of what it was compared with")
    loglik: float | None = Field(description="Mean log-likelihood of the purchases")
    loglik_prior: float | None
    profit: float | None = Field(
        description="Expected profit per cart of sending the action where the model's gain is "
        "positive (inverse propensity weighting)"
    )
    profit_prior: float | None
    compared_with: Literal["channel_prior", "pooled_model"] | None
    qini_curve: QiniCurve | None = Field(
        None, description="Kept only when each 5 % step covers at least 10 randomised carts"
    )


class RecoveryTraining(BaseModel):
    reason: Literal[
        "promoted", "pooled", "too_few_treated", "too_few_control", "not_better"
    ] | None = Field(description="What the last training concluded for this action")  # fmt: skip
    treated: int | None = Field(description="The retailer's treated carts (1-9: not shown)")
    control: int | None = Field(description="The retailer's control carts (1-9: not shown)")
    heldout: HeldOutRecovery | None = None


class RecoveryAction(BaseModel):
    action: str
    channel: Channel
    serves: Literal["prior", "own", "pooled"] = Field(
        description="Where the recovery rate of decisions comes from: the prior, a model learnt "
        "from this retailer's own treatment and control groups, or the pooled one"
    )
    prior: RecoveryPrior | None = Field(None, description="When the prior serves")
    why: str | None = Field(None, description="Why the prior serves, in words")
    explanation: list[str] | None = Field(
        None, description="What the learnt model says, in plain words"
    )
    intercept: float | None = None
    weights: dict[str, float] | None = Field(
        None, description="Log-odds of recovery per feature (models/recovery.py)"
    )
    last_training: RecoveryTraining | None = None


class RecoveryInfo(BaseModel):
    version: str | None = Field(description="The recovery version serving (null: none yet)")
    trained_at: str | None = Field(description="When recovery models were last trained")
    description: str
    actions: list[RecoveryAction] = Field(description="One per action of the policy in force")


class ModelOut(BaseModel):
    retailer_id: str
    model_version: str
    kind: Literal["baseline", "pooled", "retailer"]
    description: str
    threshold: float | None = Field(description="The threshold in use (see operating_point)")
    operating_point: OperatingPointOut
    warnings: list[str] = Field(
        description="What the operating point does not do as asked, e.g. a precision_target at "
        "or below the abandonment rate (every cart is then called abandoned)"
    )
    intercept: float | None
    weights: dict[str, float] | None = Field(description="Log-odds of abandonment per feature")
    metrics: dict[str, Any] | None = Field(
        description="Held-out figures from training; for the pooled model only those over "
        "this retailer's own test carts, when the version holds them"
    )
    curves: HeldOutCurves | None = Field(
        description="The model's and the baseline rule's precision-recall curves and "
        "calibration on this retailer's own held-out carts (for the pooled model, its carts in "
        "the pooled sample), in steps of at least 10 carts; null when not kept (a version "
        "trained before they were) or over fewer than 10 carts (see suppressed)"
    )
    training_window: TrainingWindow | None
    n_train: int | None = Field(
        description="Training rows; for the pooled model only those of this retailer's carts"
    )
    suppressed: list[Note] = Field(
        default_factory=list, description="Figures left out: they cover too few carts"
    )
    recovery: RecoveryInfo = Field(
        description="The recovery models behind the decisions' expected gain and send time"
    )


# --- daily stats -------------------------------------------------------------------------------


class Outcomes(BaseModel):
    resolved: int | None = Field(description="Carts whose outcome is known")
    pending: int | None = Field(description="Carts scored less than 24 h ago and not purchased yet")
    without_cart_id: int | None = Field(description="Carts predicted without a cart_id: no outcome")
    abandonment_rate: Probability | None = Field(description="Among resolved carts")
    precision: Probability | None = Field(
        description="Realised: of the resolved carts predicted abandoned, the share abandoned"
    )
    recall: Probability | None = Field(
        description="Realised: of the resolved carts abandoned, the share predicted so"
    )


class StatsGroup(BaseModel):
    carts: int = Field(description="Distinct carts scored (a cart counts once per day)")
    predictions: int
    predicted_abandoned: int | None = Field(
        description="Null when it, or the carts not predicted abandoned, number 1 to k-1"
    )
    predicted_abandoned_share: Probability | None
    mean_abandonment_probability: Probability
    outcomes: Outcomes


class StatsPeriod(StatsGroup):
    start: str = Field(description="First UTC day of the period (YYYY-MM-DD)")
    end: str = Field(description="Last UTC day of the period")
    days: int = Field(description="Days with predictions merged into this period")


class StatsWindow(BaseModel):
    start: str
    end: str
    days: int


class DistributionBin(BaseModel):
    lower: Probability
    upper: Probability
    carts: int


class BandDecision(BaseModel):
    group: Literal["treatment", "control"]
    action: str = Field(description='The action the carts got, or "none"')


class StatsBand(BaseModel):
    lower: Probability = Field(description="Of P(abandoned), included")
    upper: Probability = Field(description="Excluded, but for the last band")
    carts: int | None = Field(
        description="Carts scored in the band, with and without a cart_id, over the periods "
        "where the band is shown; null when no period shows it"
    )
    resolved: int | None = Field(description="Of them, carts with a cart_id and a known outcome")
    purchased: int | None = Field(description="Of those, bought within 24 h after the prediction")
    purchase_rate: Probability | None = Field(
        description="purchased / resolved: the realised purchase rate (over at least k carts)"
    )
    decision: BandDecision | None = Field(
        description="The decision the band's carts got most often, when at least k got it"
    )


class StatsDecisions(BaseModel):
    treatment: int | None = Field(description="Carts of the treatment group decided this action")
    control: int | None = Field(description="Carts of the control group that held it out")
    reasons: dict[str, int | None] = Field(
        description="The treatment carts by reason (gain, no_gain, not_contactable, budget, "
        "no_policy); an explored cart counts under its action with the policy's reason"
    )


class FeatureDrift(BaseModel):
    psi: float = Field(description="Population stability index against the training carts")
    status: Literal["stable", "moderate", "significant"]


class DriftOut(BaseModel):
    status: Literal["stable", "moderate", "significant", "insufficient_data", "unavailable"]
    reason: str | None = None
    window: StatsWindow
    model_version: str | None
    carts: int | None = None
    features: dict[str, FeatureDrift] | None


class StatsOut(BaseModel):
    retailer_id: str
    k_anonymity: int = Field(description="Every figure shown covers at least this many carts")
    window: StatsWindow
    computed_at: datetime | None = Field(description="When the aggregates were last updated")
    totals: StatsGroup | None
    periods: list[StatsPeriod] = Field(
        description="Final days, merged where a day has too few carts"
    )
    distribution: list[DistributionBin] = Field(description="Carts by P(abandoned)")
    bands: list[StatsBand] = Field(
        description="Fixed bands of P(abandoned) (0-0.5, 0.5-0.7, 0.7-0.8, 0.8-0.9, 0.9-1): "
        "carts, realised purchases within 24 h and the most common decision"
    )
    decisions: dict[str, StatsDecisions] = Field(
        description='The named carts\' retention decisions, per action and "none"'
    )
    drift: DriftOut
    merged: list[Note] = Field(description="Groups merged to reach k carts")
    suppressed: list[Note] = Field(
        description="Figures left out, or summed over fewer periods: too few carts"
    )


class StatsWindowSpan(BaseModel):
    start: str
    end: str


class ExperimentArm(BaseModel):
    carts: int = Field(description="Carts with an exposure event of the action in this group")
    purchased: int = Field(description="Of them, bought within 24 h after the decision")
    rate: float | None
    revenue: float = Field(description="The bought carts' values, in the retailer's currency")
    margin: float = Field(description="What the retailer kept of them, after discounts")
    cost: float = Field(description="The actions' costs (treatment only)")


class Uplift(BaseModel):
    estimate: float = Field(description="Treatment's purchase rate minus control's")
    ci95: list[float] = Field(description="Newcombe's hybrid score interval, 95 %")


class ExperimentAction(BaseModel):
    treatment: ExperimentArm | None = Field(description="None: no period may be shown")
    control: ExperimentArm | None
    uplift: Uplift | None
    incremental_purchases: float | None = Field(
        description="Purchases the action added: uplift x treated carts"
    )
    incremental_margin: float | None = Field(
        description="Margin the action added: treatment's margin, less the control's margin "
        "per cart x treated carts, less the actions' costs"
    )
    incremental_margin_ci95: list[float] | None = Field(
        None,
        description="Its 95 % interval (normal approximation of the difference of the two "
        "arms' mean margin per cart, Welch's standard error); None for periods rolled up "
        "before the spread was kept",
    )
    periods: list[StatsWindowSpan] = Field(
        description="The periods of the stats whose figures are summed here"
    )


class Exploration(BaseModel):
    explored: ExperimentAction = Field(
        description="The carts given a random action (exploration), against their own control"
    )
    targeted: ExperimentAction = Field(description="The others, against theirs")
    cost: float = Field(
        description="What exploring cost: the margin the explored treated carts would have "
        "added beyond what they did, had they added as much per cart as the targeted ones "
        "(negative: exploring paid)"
    )
    periods: list[StatsWindowSpan] = Field(
        description="The periods where both parts may be shown (each arm of each at least k)"
    )


class ExperimentActionOut(ExperimentAction):
    exploration: Exploration | None = Field(
        None, description="Explored carts apart; None where no period may show them"
    )


class ExperimentOut(BaseModel):
    retailer_id: str
    k_anonymity: int = Field(description="Every figure shown covers at least this many carts")
    window: StatsWindow
    computed_at: datetime | None = Field(description="When the aggregates were last updated")
    actions: dict[str, ExperimentActionOut] = Field(
        description="Per action of the policy (and any other with exposure events in the window)"
    )
    merged: list[Note] = Field(description="Days shown as their week, to reach k carts")
    suppressed: list[Note] = Field(description="Periods and figures left out: too few carts")
