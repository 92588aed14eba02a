"""Pydantic models of the Lago request bodies the catalog accepts.

Each model follows the `*CreateInput` schema of Lago's OpenAPI file, with the fields Meterhouse
implements. `field_check.py` refuses every other field by name before a model reads a body (a
field Lago defines is "not supported yet", any other is unknown, with the nearest known name), and
the models forbid extra fields as a second guard. Money and units are `Decimal`; a JSON float such as `1.5` is read through its text,
never kept as a binary float.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dagster_project.catalog import expressions

# Keys and codes end up as JSON paths and in file names; a quote or backslash there is refused
# with a clear message rather than escaped in several places.
_SAFE_KEY = re.compile(r'^[^"\\\x00-\x1f]+$')

AggregationType = Literal[
    "count_agg", "sum_agg", "max_agg", "unique_count_agg", "latest_agg", "weighted_sum_agg"
]
ChargeModel = Literal[
    "standard", "package", "graduated", "volume", "percentage", "graduated_percentage"
]
Interval = Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Timestamps are kept as naive UTC; an offset-less input is taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


class MetricFilter(_Body):
    key: str
    values: list[str] = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _safe_key(cls, v: str) -> str:
        if not _SAFE_KEY.match(v):
            raise ValueError("a filter key may not contain quotes, backslashes or control characters")
        return v


class BillableMetric(_Body):
    name: str
    code: str
    description: str | None = None
    aggregation_type: AggregationType
    field_name: str | None = None
    recurring: bool = False
    rounding_function: Literal["ceil", "floor", "round"] | None = None
    rounding_precision: int | None = None
    filters: list[MetricFilter] = []
    # Lago's `expression` (see catalog/expressions.py): evaluated on each event at load, its result
    # is the event's `field_name` value, the one the metric aggregates.
    expression: str | None = None

    @field_validator("code", "field_name")
    @classmethod
    def _safe(cls, v: str | None) -> str | None:
        if v is not None and not _SAFE_KEY.match(v):
            raise ValueError("may not contain quotes, backslashes or control characters")
        return v

    @model_validator(mode="after")
    def _field_name_needed(self) -> BillableMetric:
        if self.aggregation_type != "count_agg" and not self.field_name:
            raise ValueError(f"field_name is required for aggregation_type {self.aggregation_type}")
        return self

    @field_validator("expression")
    @classmethod
    def _parsable(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None  # lago-api treats a blank expression as none (`with_expression` skips it)
        if v is not None:
            try:
                expressions.parse(v)
            except expressions.ExpressionSyntaxError as exc:
                raise ValueError(f"cannot be parsed: {exc} (in {v!r})") from exc
        return v

    @model_validator(mode="after")
    def _expression_aggregates_a_field(self) -> BillableMetric:
        if self.expression is not None and self.aggregation_type == "count_agg":
            raise ValueError("an expression needs an aggregation of its value: Lago evaluates expressions for every "
                             "aggregation_type but count_agg")
        return self

    @property
    def parsed_expression(self) -> expressions.Expression | None:
        return expressions.parse(self.expression) if self.expression is not None else None


class ChargeFilter(_Body):
    invoice_display_name: str | None = None
    properties: dict[str, Any] = {}
    values: dict[str, list[str]] = Field(min_length=1)


class Charge(_Body):
    billable_metric_id: str | None = None
    billable_metric_code: str | None = None
    charge_model: ChargeModel
    pay_in_advance: bool = False
    invoiceable: bool = True
    invoice_display_name: str | None = None
    min_amount_cents: int | None = None
    properties: dict[str, Any] | None = None
    filters: list[ChargeFilter] = []
    tax_codes: list[str] = []

    @model_validator(mode="after")
    def _metric_named(self) -> Charge:
        if not (self.billable_metric_code or self.billable_metric_id):
            raise ValueError("a charge needs billable_metric_code (or billable_metric_id holding the code)")
        return self

    @property
    def metric_code(self) -> str:
        return self.billable_metric_code or self.billable_metric_id  # type: ignore[return-value]


class UsageThresholdBody(_Body):
    """One of a plan's `usage_thresholds` (progressive billing, `billing/progressive.py`): when the
    subscription's lifetime usage reaches `amount_cents`, a progressive_billing invoice is issued;
    a `recurring` one at each multiple of its amount once past the fixed ones."""

    amount_cents: int = Field(gt=0)
    recurring: bool = False
    threshold_display_name: str | None = None


def usage_threshold_problems(thresholds: list[UsageThresholdBody] | None) -> list[str]:
    """Lago's rules on a plan's thresholds: at most one recurring, no two fixed ones of one amount."""
    problems = []
    seen: dict[int, int] = {}
    recurring = [i for i, t in enumerate(thresholds or []) if t.recurring]
    for i in recurring[1:]:
        problems.append(f"usage_thresholds.{i}.recurring: a plan has at most one recurring threshold "
                        f"(usage_thresholds.{recurring[0]} is one)")
    for i, t in enumerate(thresholds or []):
        if not t.recurring:
            if t.amount_cents in seen:
                problems.append(f"usage_thresholds.{i}.amount_cents: {t.amount_cents} is already "
                                f"usage_thresholds.{seen[t.amount_cents]}'s amount")
            seen.setdefault(t.amount_cents, i)
    return problems


class Plan(_Body):
    name: str
    code: str
    interval: Interval
    amount_cents: int = Field(ge=0)
    amount_currency: str
    description: str | None = None
    invoice_display_name: str | None = None
    trial_period: Decimal | None = None
    pay_in_advance: bool = False
    tax_codes: list[str] = []
    minimum_commitment: dict[str, Any] | None = None
    charges: list[Charge] = []
    usage_thresholds: list[UsageThresholdBody] = []

    @model_validator(mode="after")
    def _thresholds(self) -> Plan:
        if problems := usage_threshold_problems(self.usage_thresholds):
            raise ValueError("; ".join(problems))
        return self


class BillingConfiguration(_Body):
    invoice_grace_period: int | None = Field(default=None, ge=0)


class Customer(_Body):
    external_id: str
    name: str | None = None
    legal_name: str | None = None
    legal_number: str | None = None
    email: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    zipcode: str | None = None
    city: str | None = None
    state: str | None = None
    currency: str | None = None
    timezone: str | None = None
    country: str | None = None
    tax_identification_number: str | None = None
    net_payment_term: int | None = Field(default=None, ge=0)
    tax_codes: list[str] = []
    invoice_grace_period: int | None = Field(default=None, ge=0)
    billing_configuration: BillingConfiguration | None = None
    billing_entity_code: str | None = None
    created_at: dt.datetime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zoneinfo.ZoneInfo(v)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA timezone {v!r}") from None
        return v

    @property
    def grace_days(self) -> int | None:
        if self.invoice_grace_period is not None:
            return self.invoice_grace_period
        if self.billing_configuration is not None:
            return self.billing_configuration.invoice_grace_period
        return None


class ChargeOverride(_Body):
    """One charge of a `plan_overrides`: it names a charge of the plan (`id`, the charge's lago_id,
    or its metric, when the plan has one charge on it) and replaces the fields it gives. The charge
    model cannot change (Lago keeps the plan's): `charge_model`, if given, must be the plan's."""

    id: str | None = None
    billable_metric_id: str | None = None
    billable_metric_code: str | None = None
    charge_model: ChargeModel | None = None
    invoice_display_name: str | None = None
    min_amount_cents: int | None = Field(default=None, ge=0)
    properties: dict[str, Any] | None = None
    filters: list[ChargeFilter] | None = None
    tax_codes: list[str] | None = None


class PlanOverrides(_Body):
    """A subscription's `plan_overrides` (Lago's `PlanOverridesObject`): the fields given replace the
    plan's in the subscription's own effective plan (`catalog/overrides.py`)."""

    amount_cents: int | None = Field(default=None, ge=0)
    amount_currency: str | None = None
    name: str | None = None
    invoice_display_name: str | None = None
    description: str | None = None
    trial_period: Decimal | None = Field(default=None, ge=0)
    tax_codes: list[str] | None = None
    minimum_commitment: dict[str, Any] | None = None
    charges: list[ChargeOverride] = []
    usage_thresholds: list[UsageThresholdBody] | None = None

    @model_validator(mode="after")
    def _thresholds(self) -> PlanOverrides:
        if problems := usage_threshold_problems(self.usage_thresholds):
            raise ValueError("; ".join(problems))
        return self


class Subscription(_Body):
    external_customer_id: str
    plan_code: str
    external_id: str
    name: str | None = None
    billing_time: Literal["calendar", "anniversary"] = "calendar"
    subscription_at: dt.datetime | None = None
    ending_at: dt.datetime | None = None
    terminated_at: dt.datetime | None = None
    plan_overrides: PlanOverrides | None = None

    _utc_times = field_validator("subscription_at", "ending_at", "terminated_at")(
        classmethod(lambda cls, v: _utc(v))
    )


class MetadataItem(_Body):
    """One `{key, value}` pair of a wallet transaction's `metadata` (Lago keeps a list of them)."""

    key: str
    value: str | None = None


class WalletLimitations(_Body):
    """A wallet's `applies_to`: the fee types (`charge`, `subscription`, `commitment`) and the billable
    metrics whose fees its credits pay; a fee is paid when it matches either list (Lago's
    `allowed_fee_types` and wallet targets). Empty or absent: every fee."""

    fee_types: list[Literal["charge", "subscription", "commitment"]] | None = None
    billable_metric_codes: list[str] | None = None


class RecurringTransactionRule(_Body):
    trigger: Literal["threshold", "interval"]
    method: Literal["fixed", "target"] = "fixed"
    interval: Interval | None = None
    threshold_credits: Decimal | None = None
    target_ongoing_balance: Decimal | None = None
    paid_credits: Decimal | None = None
    granted_credits: Decimal | None = None
    grants_target_top_up: bool = False
    started_at: dt.datetime | None = None
    transaction_metadata: list[MetadataItem] | None = None

    @model_validator(mode="after")
    def _complete(self) -> RecurringTransactionRule:
        if self.trigger == "threshold" and self.threshold_credits is None:
            raise ValueError("a threshold rule needs threshold_credits")
        if self.trigger == "interval" and self.interval is None:
            raise ValueError("an interval rule needs interval")
        if self.method == "target" and self.target_ongoing_balance is None:
            raise ValueError("a target rule needs target_ongoing_balance")
        return self


class Wallet(_Body):
    external_customer_id: str
    currency: str
    rate_amount: Decimal = Field(gt=0)
    name: str | None = None
    code: str | None = None
    priority: int = 50
    paid_credits: Decimal = Decimal(0)
    granted_credits: Decimal = Decimal(0)
    expiration_at: dt.datetime | None = None
    invoice_requires_successful_payment: bool = False
    recurring_transaction_rules: list[RecurringTransactionRule] = []
    applies_to: WalletLimitations | None = None
    transaction_metadata: list[MetadataItem] | None = None
    created_at: dt.datetime | None = None

    _utc_times = field_validator("expiration_at", "created_at")(classmethod(lambda cls, v: _utc(v)))


class Tax(_Body):
    code: str
    name: str
    rate: Decimal = Field(ge=0, le=100)
    description: str | None = None
    applied_to_organization: bool = False


class BillingEntity(_Body):
    """The seller: printed on invoice documents; `country` and `eu_tax_management` decide EU VAT;
    `net_payment_term` (days) is the due date of invoices whose customer sets none."""

    code: str
    name: str | None = None
    country: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    zipcode: str | None = None
    city: str | None = None
    state: str | None = None
    email: str | None = None
    legal_name: str | None = None
    legal_number: str | None = None
    tax_identification_number: str | None = None
    document_number_prefix: str | None = None
    net_payment_term: int = Field(default=0, ge=0)
    eu_tax_management: bool = False
    invoice_grace_period: int | None = Field(default=None, ge=0)
    billing_configuration: BillingConfiguration | None = None

    @model_validator(mode="after")
    def _eu_seller(self) -> BillingEntity:
        from dagster_project.billing.taxes import EU_MEMBER_STATES

        if self.eu_tax_management and (self.country or "").upper() not in EU_MEMBER_STATES:
            raise ValueError("eu_tax_management needs `country`, the seller's EU member state (ISO code)")
        return self


class WalletTransaction(_Body):
    """A manual top-up or void. `wallet_id` holds the wallet's `code` (a file catalog has no Lago
    ids), or `external_customer_id/code` when codes repeat across customers; `created_at` is the
    day it takes effect, which a batch warehouse needs and Lago's API takes from the clock."""

    wallet_id: str
    name: str | None = None
    paid_credits: Decimal | None = Field(default=None, ge=0)
    granted_credits: Decimal | None = Field(default=None, ge=0)
    voided_credits: Decimal | None = Field(default=None, ge=0)
    invoice_requires_successful_payment: bool | None = None
    metadata: list[MetadataItem] | None = None
    created_at: dt.datetime

    _utc_times = field_validator("created_at")(classmethod(lambda cls, v: _utc(v)))

    @model_validator(mode="after")
    def _some_credits(self) -> WalletTransaction:
        if not any((self.paid_credits, self.granted_credits, self.voided_credits)):
            raise ValueError("a wallet transaction needs paid_credits, granted_credits or voided_credits above 0")
        return self


class CreditNoteItem(_Body):
    fee_id: str
    amount_cents: int = Field(ge=0)


class CreditNote(_Body):
    """A credit note against a finalized invoice: `invoice_id` holds the invoice's number (or its
    lago_id); `items` credit its fees (the fees' `lago_id`s in the invoice JSON, amounts excluding
    taxes); `credit_amount_cents` + `refund_amount_cents` is their total with taxes. `created_at`
    (required here; Lago takes it from the clock) is the day it is issued, and `voided_at` the day
    its remaining credit is voided (Lago's void call)."""

    invoice_id: str
    reason: Literal["duplicated_charge", "product_unsatisfactory", "order_change", "order_cancellation",
                    "fraudulent_charge", "other"] | None = None
    description: str | None = None
    credit_amount_cents: int | None = Field(default=None, ge=0)
    refund_amount_cents: int | None = Field(default=None, ge=0)
    items: list[CreditNoteItem] = Field(min_length=1)
    created_at: dt.datetime
    voided_at: dt.datetime | None = None

    _utc_times = field_validator("created_at", "voided_at")(classmethod(lambda cls, v: _utc(v)))

    @model_validator(mode="after")
    def _voided_after_issued(self) -> CreditNote:
        if self.voided_at is not None and self.voided_at.date() < self.created_at.date():
            raise ValueError("voided_at is before created_at")
        return self


class CouponLimitations(_Body):
    """`applies_to`: the plans or the billable metrics whose fees a coupon reduces (one kind only)."""

    plan_codes: list[str] | None = None
    billable_metric_codes: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CouponLimitations:
        if self.plan_codes and self.billable_metric_codes:
            raise ValueError("a coupon is limited to plans or to billable metrics, not both (Lago: "
                             "only_one_limitation_type_per_coupon_allowed)")
        return self


CouponFrequency = Literal["once", "recurring", "forever"]


def _rate(value) -> Decimal | None:
    """A percentage rate: Lago's schema types it as text (`"10.5"`); a JSON number is read through
    its text too. Between 0 and 100."""
    if value is None:
        return None
    try:
        rate = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{value!r} is not a number") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise ValueError(f"{value!r} must be a percentage between 0 and 100")
    return rate


class Coupon(_Body):
    """A coupon (Lago's `CouponCreateInput`): a fixed amount or a percentage off the fees of a
    customer's invoices, before taxes, once, for `frequency_duration` invoices, or forever."""

    name: str
    code: str
    description: str | None = None
    coupon_type: Literal["fixed_amount", "percentage"]
    amount_cents: int | None = Field(default=None, ge=0)
    amount_currency: str | None = None
    percentage_rate: Decimal | None = None
    frequency: CouponFrequency
    frequency_duration: int | None = Field(default=None, gt=0)
    reusable: bool = True
    expiration: Literal["no_expiration", "time_limit"]
    expiration_at: dt.datetime | None = None
    applies_to: CouponLimitations | None = None

    _utc_times = field_validator("expiration_at")(classmethod(lambda cls, v: _utc(v)))
    _rates = field_validator("percentage_rate", mode="before")(classmethod(lambda cls, v: _rate(v)))

    @model_validator(mode="after")
    def _complete(self) -> Coupon:
        if self.coupon_type == "fixed_amount" and (self.amount_cents is None or not self.amount_currency):
            raise ValueError("a fixed_amount coupon needs amount_cents and amount_currency")
        if self.coupon_type == "percentage" and self.percentage_rate is None:
            raise ValueError("a percentage coupon needs percentage_rate")
        if self.coupon_type == "percentage" and (self.amount_cents is not None or self.amount_currency):
            raise ValueError("a percentage coupon does not use amount_cents or amount_currency (remove them)")
        if self.coupon_type == "fixed_amount" and self.percentage_rate is not None:
            raise ValueError("a fixed_amount coupon does not use percentage_rate (remove it)")
        if self.frequency == "recurring" and self.frequency_duration is None:
            raise ValueError("a recurring coupon needs frequency_duration (the number of invoices)")
        if self.frequency != "recurring" and self.frequency_duration is not None:
            raise ValueError(f"frequency_duration is only used by recurring coupons, not {self.frequency} (remove it)")
        if self.expiration == "time_limit" and self.expiration_at is None:
            raise ValueError("expiration time_limit needs expiration_at")
        if self.expiration == "no_expiration" and self.expiration_at is not None:
            raise ValueError("expiration_at is only used with expiration time_limit (remove it)")
        return self


class AppliedCoupon(_Body):
    """A coupon applied to a customer (Lago's `AppliedCouponInput`), with its own amount, rate or
    frequency if given. `created_at` (required here; Lago takes it from the clock) is the day it is
    applied: it reduces the customer's invoices issued on or after that day."""

    external_customer_id: str
    coupon_code: str
    amount_cents: int | None = Field(default=None, ge=0)
    amount_currency: str | None = None
    percentage_rate: Decimal | None = None
    frequency: CouponFrequency | None = None
    frequency_duration: int | None = Field(default=None, gt=0)
    created_at: dt.datetime

    _utc_times = field_validator("created_at")(classmethod(lambda cls, v: _utc(v)))
    _rates = field_validator("percentage_rate", mode="before")(classmethod(lambda cls, v: _rate(v)))


# The webhook types Meterhouse sends (publish/webhooks.py produces them).
WEBHOOK_TYPES_SENT = ("alert.triggered", "invoice.created", "credit_note.created", "wallet_transaction.created",
                      "wallet.depleted_ongoing_balance")


class WebhookEndpoint(_Body):
    """Where webhook messages are posted (Lago's `WebhookEndpointCreateInput`). Messages are signed
    with `hmac` only: Lago's default (no `signature_algo`) is `jwt`, so the field is required here
    (`reader.webhook_problems`). `event_types`: the types the endpoint takes, all when absent, null
    or `["*"]`; written as Lago normalizes them (trimmed, lower case). `created_at` (a Meterhouse
    extension; Lago takes it from the clock): the endpoint receives the messages of facts dated on
    or after its day only, as a Lago endpoint receives what happens after it was created; without
    it, every message."""

    webhook_url: str
    signature_algo: Literal["hmac"] | None = None
    name: str | None = None
    event_types: list[str] | None = None
    created_at: dt.datetime | None = None

    _utc_times = field_validator("created_at")(classmethod(lambda cls, v: _utc(v)))

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v

    @field_validator("event_types")
    @classmethod
    def _normalized(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        types = list(dict.fromkeys(t.strip().lower() for t in v if t.strip()))
        return None if types == ["*"] else types


class AlertThreshold(_Body):
    code: str | None = None
    value: Decimal
    recurring: bool = False


class Alert(_Body):
    """A usage alert on a subscription (Lago's `AlertCreateInput`). `external_subscription_id` is
    Meterhouse's: Lago takes the subscription from the request's path
    (`POST /subscriptions/{external_id}/alerts`). See billing/alerts.py for what each type checks."""

    alert_type: Literal["current_usage_amount", "billable_metric_current_usage_amount",
                        "billable_metric_current_usage_units", "lifetime_usage_amount"]
    code: str
    name: str | None = None
    thresholds: list[AlertThreshold]
    billable_metric_code: str | None = None
    external_subscription_id: str

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[AlertThreshold]) -> list[AlertThreshold]:
        # lago-api's CreateAlertService checks, in its order.
        if not v:
            raise ValueError("at least one threshold is required (Lago: value_is_mandatory)")
        if len(v) > 20:
            raise ValueError("at most 20 thresholds (Lago: too_many_thresholds)")
        keys = [(t.value, t.recurring) for t in v]
        if len(set(keys)) != len(keys):
            raise ValueError("two thresholds have the same value and recurring (Lago: duplicate_threshold_values)")
        if any(t.recurring and t.value <= 0 for t in v):
            raise ValueError("a recurring threshold's value must be above 0 (Lago: recurring_value_is_negative)")
        if sum(t.recurring for t in v) > 1:
            raise ValueError("at most one recurring threshold per alert")
        return v

    @model_validator(mode="after")
    def _metric_when_needed(self) -> Alert:
        needs_metric = self.alert_type.startswith("billable_metric_")
        if needs_metric and not self.billable_metric_code:
            raise ValueError(f"billable_metric_code is required for a {self.alert_type} alert")
        if not needs_metric and self.billable_metric_code:
            raise ValueError(f"billable_metric_code is not used by a {self.alert_type} alert (remove it)")
        return self


# The wrapper key of each body, as in Lago's API, and the model that reads it.
BODY_MODELS: dict[str, type[_Body]] = {
    "billable_metric": BillableMetric,
    "plan": Plan,
    "customer": Customer,
    "subscription": Subscription,
    "wallet": Wallet,
    "tax": Tax,
    "billing_entity": BillingEntity,
    "wallet_transaction": WalletTransaction,
    "credit_note": CreditNote,
    "coupon": Coupon,
    "applied_coupon": AppliedCoupon,
    "webhook_endpoint": WebhookEndpoint,
    "alert": Alert,
}
