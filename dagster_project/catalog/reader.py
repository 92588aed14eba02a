"""Read a catalog folder of Lago request bodies and check it as a whole.

A catalog is a folder of `*.json` files; each file holds one body (`{"plan": {...}}`) or a list of
bodies. Every problem found is reported at once, each naming the file, the body and the field, so a
user fixes a broken catalog in one pass. Nothing is written anywhere until the catalog is clean.
"""

from __future__ import annotations

import json
from decimal import Decimal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydantic

from dagster_project.billing.money import currency_exponent
from dagster_project.catalog.field_check import field_problems
from dagster_project.catalog.models import (
    BODY_MODELS,
    AppliedCoupon,
    BillableMetric,
    BillingEntity,
    Coupon,
    CreditNote,
    Customer,
    Plan,
    Subscription,
    Tax,
    Wallet,
    WalletTransaction,
    WEBHOOK_TYPES_SENT,
    Alert,
    WebhookEndpoint,
)
from dagster_project.catalog.overrides import OverrideError, effective_plan, match_charges

ALL_FILTER_VALUES = "__ALL_FILTER_VALUES__"


class CatalogError(ValueError):
    """A catalog that cannot be billed; `problems` lists every message."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the catalog is invalid:\n" + "\n".join(f"- {p}" for p in problems))


@dataclass(frozen=True)
class Located:
    """Where a body came from, for messages: `plans.json, body 2 (plan 'pro')`."""

    file: str
    index: int
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.file}, body {self.index} ({self.kind} {self.name!r})"


@dataclass
class Catalog:
    billable_metrics: list[BillableMetric] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    wallets: list[Wallet] = field(default_factory=list)
    taxes: list[Tax] = field(default_factory=list)
    billing_entities: list[BillingEntity] = field(default_factory=list)
    wallet_transactions: list[WalletTransaction] = field(default_factory=list)
    credit_notes: list[CreditNote] = field(default_factory=list)
    coupons: list[Coupon] = field(default_factory=list)
    applied_coupons: list[AppliedCoupon] = field(default_factory=list)
    webhook_endpoints: list[WebhookEndpoint] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    where: dict[int, Located] = field(default_factory=dict)

    def metric(self, code: str) -> BillableMetric:
        return next(m for m in self.billable_metrics if m.code == code)

    def plan(self, code: str) -> Plan:
        return next(p for p in self.plans if p.code == code)

    def customer(self, external_id: str) -> Customer:
        return next(c for c in self.customers if c.external_id == external_id)

    @property
    def billing_entity(self) -> BillingEntity | None:
        return self.billing_entities[0] if self.billing_entities else None


_LISTS = {
    "billable_metric": "billable_metrics",
    "plan": "plans",
    "customer": "customers",
    "subscription": "subscriptions",
    "wallet": "wallets",
    "tax": "taxes",
    "billing_entity": "billing_entities",
    "wallet_transaction": "wallet_transactions",
    "credit_note": "credit_notes",
    "coupon": "coupons",
    "applied_coupon": "applied_coupons",
    "webhook_endpoint": "webhook_endpoints",
    "alert": "alerts",
}


def _body_name(kind: str, body: dict) -> str:
    for key in ("code", "external_id", "name", "wallet_id", "external_customer_id", "invoice_id", "webhook_url"):
        if isinstance(body.get(key), str):
            return body[key]
    return "?"


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


class _RepeatedKey(ValueError):
    pass


def _object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key written twice (JSON would keep only the last value)."""
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise _RepeatedKey(key)
    return dict(pairs)


def read_catalog(folder: str | Path) -> Catalog:
    """Read and check every `*.json` body under `folder`; raise `CatalogError` listing all problems."""
    folder = Path(folder)
    problems: list[str] = []
    catalog = Catalog()
    if not folder.is_dir():
        raise CatalogError([f"{folder}: the catalog folder does not exist"])
    files = sorted(folder.glob("*.json"))
    if not files:
        raise CatalogError([f"{folder}: no *.json files in the catalog folder"])
    for path in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal, object_pairs_hook=_object)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{path.name}: not valid JSON ({exc})")
            continue
        except _RepeatedKey as exc:
            problems.append(f"{path.name}: the key {exc.args[0]!r} appears twice in one object (JSON would keep the "
                            f"last value only)")
            continue
        bodies = document if isinstance(document, list) else [document]
        for index, wrapped in enumerate(bodies, start=1):
            if not isinstance(wrapped, dict) or len(wrapped) != 1 or next(iter(wrapped)) not in BODY_MODELS:
                problems.append(
                    f"{path.name}, body {index}: expected one of "
                    + ", ".join(f'{{"{k}": {{...}}}}' for k in BODY_MODELS)
                )
                continue
            kind, body = next(iter(wrapped.items()))
            located = Located(path.name, index, kind, _body_name(kind, body if isinstance(body, dict) else {}))
            # Every field honored or refused: an unknown or unsupported one is never dropped.
            unread = field_problems(kind, BODY_MODELS[kind], body)
            if unread:
                problems += [f"{located}, field {problem}" for problem in unread]
                continue
            try:
                model = BODY_MODELS[kind].model_validate(body)
            except pydantic.ValidationError as exc:
                for error in exc.errors():
                    problems.append(f"{located}, field {_field_path(error['loc'])}: {error['msg']}")
                continue
            getattr(catalog, _LISTS[kind]).append(model)
            catalog.where[id(model)] = located
    if not problems:
        problems = check_references(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def _duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def check_references(catalog: Catalog) -> list[str]:
    """Cross-reference checks: every code a body names exists, and codes are unique."""
    problems: list[str] = []
    at = catalog.where

    for kind, values in (
        ("billable_metric code", [m.code for m in catalog.billable_metrics]),
        ("plan code", [p.code for p in catalog.plans]),
        ("customer external_id", [c.external_id for c in catalog.customers]),
        ("tax code", [t.code for t in catalog.taxes]),
        ("coupon code", [c.code for c in catalog.coupons]),
        (
            "subscription external_id and subscription_at",
            [f"{s.external_id}@{s.subscription_at}" for s in catalog.subscriptions],
        ),
    ):
        for dup in _duplicates(values):
            problems.append(f"catalog: {kind} {dup!r} is defined more than once")

    metrics = {m.code: m for m in catalog.billable_metrics}
    taxes = {t.code for t in catalog.taxes}
    for plan in catalog.plans:
        try:
            currency_exponent(plan.amount_currency)
        except KeyError:
            problems.append(f"{at[id(plan)]}, field amount_currency: unknown currency {plan.amount_currency!r}")
        problems += [
            f"{at[id(plan)]}, field tax_codes: unknown tax {code!r}" for code in plan.tax_codes if code not in taxes
        ]
        for c_index, charge in enumerate(plan.charges):
            where = f"{at[id(plan)]}, field charges.{c_index}"
            metric = metrics.get(charge.metric_code)
            if metric is None:
                named_by = "billable_metric_code" if charge.billable_metric_code else "billable_metric_id"
                problems.append(f"{where}.{named_by}: unknown billable metric {charge.metric_code!r}")
                continue
            problems += [f"{where}.{problem}" for problem in charge_problems(charge, metric, taxes)]

    problems += unsupported_features(catalog)
    problems += plan_override_problems(catalog)
    for customer in catalog.customers:
        problems += [
            f"{at[id(customer)]}, field tax_codes: unknown tax {code!r}" for code in customer.tax_codes if code not in taxes
        ]
    wallets = wallet_index(catalog)
    for transaction in catalog.wallet_transactions:
        wallet = resolve_wallet(catalog, transaction.wallet_id, wallets)
        if wallet is None:
            problems.append(
                f"{at[id(transaction)]}, field wallet_id: no single wallet has the code (or "
                f"external_customer_id/code) {transaction.wallet_id!r}"
            )
        elif wallet.created_at and transaction.created_at.date() < wallet.created_at.date():
            problems.append(f"{at[id(transaction)]}, field created_at: before the wallet's created_at")
        elif wallet.expiration_at and transaction.created_at.date() >= wallet.expiration_at.date():
            problems.append(f"{at[id(transaction)]}, field created_at: on or after the wallet's expiration_at")
    plans = {p.code for p in catalog.plans}
    customers = {c.external_id: c for c in catalog.customers}
    for customer in catalog.customers:
        problems += currency_problems(f"{at[id(customer)]}, field currency", customer.currency)
    for sub in catalog.subscriptions:
        if sub.plan_code not in plans:
            problems.append(f"{at[id(sub)]}, field plan_code: unknown plan {sub.plan_code!r}")
        if sub.external_customer_id not in customers:
            problems.append(
                f"{at[id(sub)]}, field external_customer_id: unknown customer {sub.external_customer_id!r}"
            )
        if sub.ending_at and sub.subscription_at and sub.ending_at <= sub.subscription_at:
            problems.append(f"{at[id(sub)]}, field ending_at: must be after subscription_at")
    wallet_keys = []
    currencies = billing_currencies_by_customer(catalog)
    for wallet in catalog.wallets:
        if wallet.external_customer_id not in customers:
            problems.append(
                f"{at[id(wallet)]}, field external_customer_id: unknown customer {wallet.external_customer_id!r}"
            )
        try:
            currency_exponent(wallet.currency)
        except KeyError:
            problems.append(f"{at[id(wallet)]}, field currency: unknown currency {wallet.currency!r}")
        billed_in = currencies.get(wallet.external_customer_id, set())
        if billed_in and billed_in != {wallet.currency}:
            problems.append(
                f"{at[id(wallet)]}, field currency: {wallet.currency} differs from the customer's "
                f"billing currency {', '.join(sorted(billed_in))}"
            )
        wallet_keys.append(wallet_key(wallet))
        limits = wallet.applies_to
        problems += [f"{at[id(wallet)]}, field applies_to.billable_metric_codes: unknown billable metric {code!r}"
                     for code in (limits.billable_metric_codes if limits else None) or []
                     if code not in metrics]
    for dup in _duplicates(wallet_keys):
        problems.append(f"catalog: wallet {dup!r} is defined more than once (give each wallet a distinct code)")
    problems += coupon_problems(catalog)
    problems += overlapping_coupon_problems(catalog)
    problems += webhook_problems(catalog)
    problems += alert_problems(catalog)
    seen_notes: dict[tuple, CreditNote] = {}
    for note in catalog.credit_notes:
        key = (note.invoice_id, note.created_at.date(), tuple((i.fee_id, i.amount_cents) for i in note.items),
               note.credit_amount_cents or 0, note.refund_amount_cents or 0, note.reason or "other", note.description or "")
        if key in seen_notes:
            problems.append(f"{at[id(note)]}: the same credit note as {at[id(seen_notes[key])]} (same invoice, day, items, "
                            f"amounts, reason and description): a second note needs a description of its own")
        seen_notes.setdefault(key, note)
    return problems


def charge_problems(charge, metric: BillableMetric, taxes: set[str]) -> list[str]:
    """What is wrong with a charge on `metric` (paths under the charge): filter keys and values the
    metric does not declare, unknown taxes, properties its charge model cannot price."""
    problems = []
    declared = {f.key: set(f.values) for f in metric.filters}
    for f_index, charge_filter in enumerate(charge.filters):
        for key, values in charge_filter.values.items():
            field_at = f"filters.{f_index}.values.{key}"
            if key not in declared:
                problems.append(f"{field_at}: metric {metric.code!r} declares no filter {key!r}")
                continue
            problems += [f"{field_at}: value {value!r} is not declared on metric {metric.code!r}"
                         for value in values if value != ALL_FILTER_VALUES and value not in declared[key]]
    problems += [f"tax_codes: unknown tax {code!r}" for code in charge.tax_codes if code not in taxes]
    return problems + charge_property_problems(charge) + grouped_charge_problems(charge, metric)


def plan_override_problems(catalog: Catalog) -> list[str]:
    """Each subscription's `plan_overrides` merged into its plan (`overrides.effective_plan`), and the
    effective plan checked where the override changed it: currency, taxes, and each overridden
    charge's properties, filters and taxes (paths under `plan_overrides`)."""
    at = catalog.where
    plans = {p.code: p for p in catalog.plans}
    metrics = {m.code: m for m in catalog.billable_metrics}
    taxes = {t.code for t in catalog.taxes}
    problems: list[str] = []
    currencies = billing_currencies_by_customer(catalog) if any(s.plan_overrides for s in catalog.subscriptions) else {}
    for sub in catalog.subscriptions:
        if sub.plan_overrides is None or sub.plan_code not in plans:
            continue
        where = f"{at[id(sub)]}, field plan_overrides"
        overrides = sub.plan_overrides
        try:
            effective = effective_plan(plans[sub.plan_code], overrides)
        except OverrideError as exc:
            problems += [f"{where}.{problem}" for problem in exc.problems]
            continue
        unknown = currency_problems(f"{where}.amount_currency", overrides.amount_currency)
        others = currencies.get(sub.external_customer_id, set()) - {overrides.amount_currency}
        problems += unknown
        if overrides.amount_currency and others and not unknown:
            problems.append(f"{where}.amount_currency: {overrides.amount_currency} differs from the customer's "
                            f"billing currency {', '.join(sorted(others))} (its currency or its other plans')")
        problems += [f"{where}.tax_codes: unknown tax {code!r}" for code in overrides.tax_codes or [] if code not in taxes]
        for index, charge in match_charges(plans[sub.plan_code], overrides.charges).items():
            o_index = next(i for i, o in enumerate(overrides.charges) if o is charge)
            given = tuple(name for name in ("properties", "filters", "tax_codes") if name in charge.model_fields_set)
            merged = effective.charges[index]
            if merged.metric_code not in metrics:  # (the plan's own problem, reported on the plan)
                continue
            problems += [f"{where}.charges.{o_index}.{problem}"
                         for problem in charge_problems(merged, metrics[merged.metric_code], taxes)
                         if problem.startswith(given)]
    return problems


def effective_plan_of(catalog: Catalog, subscription: Subscription) -> Plan:
    """The plan a subscription bills with: its plan, merged with its `plan_overrides` if any."""
    plan = catalog.plan(subscription.plan_code)
    return plan if subscription.plan_overrides is None else effective_plan(plan, subscription.plan_overrides)


def _usage_thresholds_of(catalog: Catalog, subscription: Subscription) -> list:
    """The usage thresholds a subscription bills with (its plan's, when its overrides cannot be merged:
    those are reported on their own)."""
    try:
        return effective_plan_of(catalog, subscription).usage_thresholds
    except OverrideError:
        return catalog.plan(subscription.plan_code).usage_thresholds


def currency_problems(where: str, currency: str | None) -> list[str]:
    """`where: unknown currency` when a currency is given and has no ISO 4217 exponent."""
    if currency is None:
        return []
    try:
        currency_exponent(currency)
    except KeyError:
        return [f"{where}: unknown currency {currency!r}"]
    return []


def billing_currencies_by_customer(catalog: Catalog) -> dict[str, set[str]]:
    """The currencies each customer is billed in: its plans', and its own `currency`. One pass over
    the subscriptions and customers (a scan per wallet or coupon checked grew with the square of
    the customers)."""
    plans = {p.code: p for p in catalog.plans}
    found: dict[str, set[str]] = {}
    for s in catalog.subscriptions:
        if s.plan_code in plans:
            found.setdefault(s.external_customer_id, set()).add(
                (s.plan_overrides and s.plan_overrides.amount_currency) or plans[s.plan_code].amount_currency)
    seen = set()
    for customer in catalog.customers:
        if customer.external_id not in seen:  # (the first body of an external_id, as before)
            seen.add(customer.external_id)
            if customer.currency:
                found.setdefault(customer.external_id, set()).add(customer.currency)
    return found


def coupon_problems(catalog: Catalog) -> list[str]:
    """Coupons name plans and metrics that exist, in a known currency; an applied coupon names a
    customer and a coupon that exist, is applied before the coupon expires, at most once per customer
    when the coupon is not reusable, with overrides its coupon type uses, in the customer's currency."""
    at = catalog.where
    problems: list[str] = []
    plans = {p.code for p in catalog.plans}
    metrics = {m.code for m in catalog.billable_metrics}
    for coupon in catalog.coupons:
        problems += currency_problems(f"{at[id(coupon)]}, field amount_currency", coupon.amount_currency)
        limits = coupon.applies_to
        problems += [f"{at[id(coupon)]}, field applies_to.plan_codes: unknown plan {code!r}"
                     for code in (limits.plan_codes if limits else None) or [] if code not in plans]
        problems += [f"{at[id(coupon)]}, field applies_to.billable_metric_codes: unknown billable metric {code!r}"
                     for code in (limits.billable_metric_codes if limits else None) or [] if code not in metrics]
    coupons = {c.code: c for c in catalog.coupons}
    customers = {c.external_id for c in catalog.customers}
    applied_before: dict[tuple[str, str], AppliedCoupon] = {}
    currencies = billing_currencies_by_customer(catalog) if catalog.applied_coupons else {}
    progressive = {s.external_customer_id: s.external_id for s in catalog.subscriptions
                   if s.plan_code in plans and _usage_thresholds_of(catalog, s)}
    for applied in catalog.applied_coupons:
        where = at[id(applied)]
        if applied.external_customer_id not in customers:
            problems.append(f"{where}, field external_customer_id: unknown customer {applied.external_customer_id!r}")
        if applied.external_customer_id in progressive:
            problems.append(f"{where}, field coupon_code: coupons for a customer billed progressively (subscription "
                            f"{progressive[applied.external_customer_id]!r} has usage_thresholds) are not supported "
                            f"yet by Meterhouse")
        coupon = coupons.get(applied.coupon_code)
        if coupon is None:
            problems.append(f"{where}, field coupon_code: unknown coupon {applied.coupon_code!r}")
            continue
        if coupon.expiration_at is not None and applied.created_at > coupon.expiration_at:
            problems.append(f"{where}, field created_at: the coupon {coupon.code!r} expired at "
                            f"{coupon.expiration_at.isoformat()}Z and can no longer be applied")
        key = (applied.external_customer_id, coupon.code)
        if not coupon.reusable and key in applied_before:
            problems.append(f"{where}, field coupon_code: the coupon {coupon.code!r} is not reusable and is already "
                            f"applied to customer {applied.external_customer_id!r} by {at[id(applied_before[key])]}")
        applied_before.setdefault(key, applied)
        if coupon.coupon_type == "percentage":
            problems += [f"{where}, field {name}: not used by a percentage coupon (remove it)"
                         for name in ("amount_cents", "amount_currency") if getattr(applied, name) is not None]
        elif applied.percentage_rate is not None:
            problems.append(f"{where}, field percentage_rate: not used by a fixed_amount coupon (remove it)")
        frequency = applied.frequency or coupon.frequency
        duration = applied.frequency_duration or coupon.frequency_duration
        if frequency == "recurring" and duration is None:
            problems.append(f"{where}, field frequency_duration: a recurring coupon needs frequency_duration")
        if frequency != "recurring" and applied.frequency_duration is not None:
            problems.append(f"{where}, field frequency_duration: only used by recurring coupons, not {frequency}")
        if coupon.coupon_type == "fixed_amount":
            currency = applied.amount_currency or coupon.amount_currency
            if unknown := currency_problems(f"{where}, field amount_currency", currency):
                problems += unknown
                continue
            billed_in = currencies.get(applied.external_customer_id, set())
            if billed_in and billed_in != {currency}:
                problems.append(f"{where}, field amount_currency: the coupon's {currency} differs from the customer's "
                                f"billing currency {', '.join(sorted(billed_in))}")
    return problems


def overlapping_coupon_problems(catalog: Catalog) -> list[str]:
    """Lago's `plan_overlapping` (`AppliedCoupons::CreateService#plan_limitation_overlapping?`): a
    coupon limited to plans or metrics is not applied to a customer who holds an active applied
    coupon limited to overlapping targets: a plan or metric of both, a plan of one charging a metric
    of the other. Lago checks the coupons still active when it applies the new one, which depends on
    the invoices they reduced; Meterhouse does not follow that yet, so an overlap with any limited
    coupon applied to the customer before (by `created_at`, then catalog order) is refused by name."""
    at = catalog.where
    coupons = {c.code: c for c in catalog.coupons}
    metrics_of = {p.code: {c.billable_metric_code for c in p.charges} for p in catalog.plans}

    def limited_to(coupon) -> tuple[set[str], set[str]]:
        """The plans and the metrics a coupon is limited to (none without `applies_to`)."""
        limits = coupon.applies_to
        return (set(limits.plan_codes or []), set(limits.billable_metric_codes or [])) if limits else (set(), set())

    def reached(plans: set[str], metrics: set[str]) -> tuple[set[str], set[str]]:
        """Limitations with what each kind reaches of the other: the metrics the plans charge, the
        plans charging the metrics."""
        return (plans | {p for p, charged in metrics_of.items() if charged & metrics},
                metrics | {m for p in plans for m in metrics_of.get(p, ())})

    problems: list[str] = []
    held: dict[str, list] = {}
    order = sorted(enumerate(catalog.applied_coupons), key=lambda pair: (pair[1].created_at, pair[0]))
    for _, applied in order:
        coupon = coupons.get(applied.coupon_code)
        if coupon is None or not any(limited_to(coupon)):
            continue
        plans, metrics = reached(*limited_to(coupon))
        for earlier in held.get(applied.external_customer_id, []):
            their_plans, their_metrics = limited_to(coupons[earlier.coupon_code])
            if their_plans & plans or their_metrics & metrics:
                problems.append(
                    f"{at[id(applied)]}, field coupon_code: the coupon {coupon.code!r} is limited to plans or metrics that "
                    f"overlap those of coupon {earlier.coupon_code!r}, applied to customer {applied.external_customer_id!r} "
                    f"before by {at[id(earlier)]}: Lago refuses it while that coupon is active (plan_overlapping); "
                    f"Meterhouse does not yet follow when a coupon stops being active, so it refuses the overlap")
                break
        held.setdefault(applied.external_customer_id, []).append(applied)
    return problems


MAX_WEBHOOK_ENDPOINTS = 10  # lago-api's WebhookEndpoint::LIMIT


def webhook_problems(catalog: Catalog) -> list[str]:
    """Webhook endpoints sign with `hmac` (Lago's default, `jwt`, is not supported yet), take types
    Meterhouse sends, have distinct URLs, and are at most Lago's ten."""
    at = catalog.where
    problems: list[str] = []
    for endpoint in catalog.webhook_endpoints:
        where = at[id(endpoint)]
        if endpoint.signature_algo is None:
            problems.append(f"{where}, field signature_algo: Lago signs with 'jwt' when no signature_algo is given, "
                            f"which Meterhouse does not support yet: give signature_algo 'hmac'")
        for index, webhook_type in enumerate(endpoint.event_types or []):
            if webhook_type in WEBHOOK_TYPES_SENT:
                continue
            hint = (" (Lago has no such webhook: it sends invoice.created when an invoice is finalized)"
                    if webhook_type == "invoice.finalized" else "")
            problems.append(f"{where}, field event_types.{index}: Meterhouse does not send {webhook_type!r} "
                            f"webhooks{hint}; it sends {', '.join(WEBHOOK_TYPES_SENT)}")
    for dup in _duplicates([e.webhook_url for e in catalog.webhook_endpoints]):
        problems.append(f"catalog: webhook_endpoint webhook_url {dup!r} is defined more than once")
    if len(catalog.webhook_endpoints) > MAX_WEBHOOK_ENDPOINTS:
        problems.append(f"catalog: {len(catalog.webhook_endpoints)} webhook endpoints; Lago allows at most "
                        f"{MAX_WEBHOOK_ENDPOINTS}")
    return problems


def alert_problems(catalog: Catalog) -> list[str]:
    """An alert names a subscription and (metric alerts) a metric that exist; its code is unique per
    subscription, and a subscription has one alert per type (and metric), as lago-api's unique
    indexes require."""
    at = catalog.where
    problems: list[str] = []
    subscriptions = {s.external_id for s in catalog.subscriptions}
    metrics = {m.code for m in catalog.billable_metrics}
    codes, kinds = [], []
    for alert in catalog.alerts:
        where = at[id(alert)]
        if alert.external_subscription_id not in subscriptions:
            problems.append(f"{where}, field external_subscription_id: unknown subscription "
                            f"{alert.external_subscription_id!r}")
        if alert.billable_metric_code is not None and alert.billable_metric_code not in metrics:
            problems.append(f"{where}, field billable_metric_code: unknown billable metric {alert.billable_metric_code!r}")
        codes.append(f"{alert.external_subscription_id}/{alert.code}")
        kinds.append(f"{alert.external_subscription_id}/{alert.alert_type}/{alert.billable_metric_code or ''}".rstrip("/"))
    problems += [f"catalog: alert code {dup!r} (subscription/code) is defined more than once" for dup in _duplicates(codes)]
    problems += [f"catalog: two alerts of one type on one subscription ({dup!r}): Lago allows one per type and metric"
                 for dup in _duplicates(kinds)]
    return problems


def wallet_key(wallet: Wallet) -> str:
    """A wallet's natural key: its customer and its code (or name)."""
    return f"{wallet.external_customer_id}/{wallet.code or wallet.name or 'default'}"


_MAX_DECIMALS = 12  # what the pricing step keeps; a price with more would be rounded silently


def _decimal_problem(name: str, value, *, positive: bool = False, required: bool = True) -> str | None:
    if value is None or value == "":
        return f"properties.{name}: required" if required else None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return f"properties.{name}: {value!r} is not a number"
    if not number.is_finite() or number < 0 or (positive and number == 0):
        return f"properties.{name}: {value!r} must be a {'positive' if positive else 'non-negative'} number"
    if -number.as_tuple().exponent > _MAX_DECIMALS:
        return f"properties.{name}: {value!r} has more than {_MAX_DECIMALS} decimals"
    return None


def _ranges_problems(key: str, ranges, rate: bool) -> list[str]:
    if not isinstance(ranges, list) or not ranges:
        return [f"properties.{key}: a non-empty list of ranges is required"]
    problems, previous = [], Decimal(-1)
    for index, tier in enumerate(ranges):
        where = f"{key}.{index}"
        if not isinstance(tier, dict):
            problems.append(f"properties.{where}: not an object")
            continue
        prices = ("rate", "flat_amount") if rate else ("per_unit_amount", "flat_amount")
        problems += [p for name in prices if (p := _decimal_problem(f"{where}.{name}", tier.get(name)))]
        upper = tier.get("to_value")
        if upper is None:
            if index != len(ranges) - 1:
                problems.append(f"properties.{where}.to_value: only the last range may be open (null)")
            continue
        if (p := _decimal_problem(f"{where}.to_value", upper)) is not None:
            problems.append(p)
        elif Decimal(str(upper)) <= previous:
            problems.append(f"properties.{where}.to_value: ranges must increase")
        else:
            previous = Decimal(str(upper))
    if isinstance(ranges[-1], dict) and ranges[-1].get("to_value") is not None:
        problems.append(f"properties.{key}.{len(ranges) - 1}.to_value: the last range must be open (null)")
    return problems


# The properties each charge model reads; another (Lago's name for another model's) is refused, as it
# would be ignored.
MODEL_PROPERTIES = {
    "standard": {"amount", "pricing_group_keys"},
    "package": {"amount", "package_size", "free_units", "pricing_group_keys"},
    "percentage": {"rate", "fixed_amount", "free_units_per_events", "free_units_per_total_aggregation",
                   "per_transaction_min_amount", "per_transaction_max_amount", "pricing_group_keys"},
    "graduated": {"graduated_ranges", "pricing_group_keys"},
    "volume": {"volume_ranges", "pricing_group_keys"},
    "graduated_percentage": {"graduated_percentage_ranges", "pricing_group_keys"},
}


def property_problems(model: str, properties: dict | None) -> list[str]:
    """What is wrong with one set of charge properties for `model` (field paths under `properties`)."""
    p = properties or {}
    unused = [f"properties.{key}: not used by the {model} charge model (it would be ignored: remove it)"
              for key in sorted(set(p) - MODEL_PROPERTIES[model])]
    return unused + _value_problems(model, p) + pricing_group_keys_problems(p.get("pricing_group_keys"))


def pricing_group_keys_problems(keys) -> list[str]:
    """`pricing_group_keys` as lago-api's charge validator takes them (`Charges::Validators::
    BaseService`): a list of non-empty texts, each an event property the charge is priced per value
    of; an empty list groups nothing. A key named twice would group on it twice: refused too."""
    at = "properties.pricing_group_keys"
    if keys is None:
        return []
    if not isinstance(keys, list) or not all(isinstance(k, str) and k.strip() for k in keys):
        return [f"{at}: {json.dumps(keys)} is not a list of event property names (non-empty texts)"]
    return [f"{at}: {key!r} is named more than once" for key in sorted({k for k in keys if keys.count(k) > 1})]


def grouped_charge_problems(charge, metric: BillableMetric) -> list[str]:
    """`pricing_group_keys` on a charge this warehouse cannot yet price per group: refused by name.
    Groups are priced from the aggregated usage (`marts.fct_usage_daily_by_dimensions`), so charges
    priced event by event (paid in advance, percentage) and unique counts (whose values count once per
    bucket, decided in dbt) are not grouped yet."""
    grouped = [("properties", charge.properties)] + [
        (f"filters.{i}.properties", f.properties) for i, f in enumerate(charge.filters)]
    problems = []
    for at, properties in grouped:
        if not (properties or {}).get("pricing_group_keys"):
            continue
        reason = ("a charge paid in advance" if charge.pay_in_advance
                  else "a percentage charge" if charge.charge_model == "percentage"
                  else f"a charge on unique_count_agg metric {metric.code!r}" if metric.aggregation_type == "unique_count_agg"
                  else None)
        if reason:
            problems.append(f"{at}.pricing_group_keys: pricing group keys on {reason} are not supported yet by Meterhouse")
    return problems


def _value_problems(model: str, p: dict) -> list[str]:
    if model == "standard":
        checks = [_decimal_problem("amount", p.get("amount"))]
    elif model == "package":
        checks = [
            _decimal_problem("amount", p.get("amount")),
            _decimal_problem("package_size", p.get("package_size"), positive=True),
            _decimal_problem("free_units", p.get("free_units"), required=False),
        ]
    elif model == "percentage":
        checks = [
            _decimal_problem("rate", p.get("rate")),
            _decimal_problem("fixed_amount", p.get("fixed_amount"), required=False),
            _decimal_problem("free_units_per_events", p.get("free_units_per_events"), required=False),
            _decimal_problem("free_units_per_total_aggregation", p.get("free_units_per_total_aggregation"), required=False),
        ]
        checks += [_decimal_problem(name, p.get(name), required=False)
                   for name in ("per_transaction_min_amount", "per_transaction_max_amount")]
    else:
        key = {"graduated": "graduated_ranges", "volume": "volume_ranges",
               "graduated_percentage": "graduated_percentage_ranges"}[model]
        return _ranges_problems(key, p.get(key), rate=model == "graduated_percentage")
    return [c for c in checks if c]


def charge_property_problems(charge) -> list[str]:
    """A charge's own properties (its default bucket) and each filter's. A charge with filters may
    leave its own properties out: its default bucket then carries units but no amount."""
    problems = []
    if charge.properties is not None or not charge.filters:
        problems += property_problems(charge.charge_model, charge.properties)
    for index, charge_filter in enumerate(charge.filters):
        problems += [f"filters.{index}.{p}" for p in property_problems(charge.charge_model, charge_filter.properties)]
    return problems


def unsupported_features(catalog: Catalog) -> list[str]:
    """Values of supported fields that ask for a Lago feature this warehouse does not bill: refused,
    so that no invoice is silently wrong (unsupported fields are refused by `field_check`)."""
    at = catalog.where
    problems = [
        f"{at[id(entity)]}: one billing entity per catalog is supported (the first is "
        f"{catalog.billing_entities[0].code!r})"
        for entity in catalog.billing_entities[1:]
    ]
    for plan in catalog.plans:
        problems += [
            f"{at[id(plan)]}, field charges.{index}.invoiceable: Lago's invoiceable false (a charge "
            f"kept off invoices) is not supported yet by Meterhouse"
            for index, charge in enumerate(plan.charges) if not charge.invoiceable
        ]
    entity = catalog.billing_entity
    for customer in catalog.customers:
        if customer.billing_entity_code is not None and customer.billing_entity_code != (entity.code if entity else None):
            problems.append(
                f"{at[id(customer)]}, field billing_entity_code: no billing entity {customer.billing_entity_code!r} "
                f"in the catalog" + (f" (the one billing entity is {entity.code!r})" if entity else "")
            )
    return problems


def resolve_wallet(catalog: Catalog, wallet_id: str, index: WalletIndex | None = None) -> Wallet | None:
    """The wallet a `wallet_transaction` names: by `external_customer_id/code`, else by a code (or
    name) that only one wallet has. `index`: `wallet_index(catalog)`, made once for many lookups."""
    by_key, by_code = index or wallet_index(catalog)
    if wallet_id in by_key:
        return by_key[wallet_id]
    named = by_code.get(wallet_id, [])
    return named[0] if len(named) == 1 else None


WalletIndex = tuple[dict[str, Wallet], dict[str, list[Wallet]]]


def wallet_index(catalog: Catalog) -> WalletIndex:
    """The wallets by `wallet_key` (the first of each) and by code (or name), for `resolve_wallet`."""
    by_key: dict[str, Wallet] = {}
    by_code: dict[str, list[Wallet]] = {}
    for w in catalog.wallets:
        by_key.setdefault(wallet_key(w), w)
        by_code.setdefault(w.code or w.name, []).append(w)
    return by_key, by_code
