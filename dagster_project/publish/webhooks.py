"""Lago's webhook messages: what a run's billing sends, how a message is signed, when a failed
delivery is tried again. Pure functions; the outbox table is `store/webhook_outbox.py`, the
delivery `deliver.py`.

- The envelope is lago-api's `Webhooks::BaseService` payload: `webhook_type`, `object_type`,
  `organization_id` and the object under its `object_type` key.
- The body posted is that envelope as compact JSON (UTF-8, no spaces), made once when the message
  enters the outbox and kept as bytes, so every attempt posts (and signs) the same bytes.
- Signature (`hmac`, lago-api's `Webhook#hmac_signature`): `X-Lago-Signature` is
  base64(HMAC-SHA256(key, body)) with the organization's HMAC key, `X-Lago-Signature-Algorithm`
  is `hmac`, `X-Lago-Unique-Key` the webhook's id (one per message and endpoint), so that a receiver
  can drop a message it already took.
- Retries (`Webhooks::SendHttpService`): an attempt that fails (a status other than 2xx, or no
  answer) is tried again while fewer than `attempts` (Lago's `LAGO_WEBHOOK_ATTEMPTS`, 3) were made,
  after `retries**4 + 2` seconds (Active Job's polynomial wait, without its random jitter so that the
  schedule is a function of the attempt number); then the webhook is `failed`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from dagster_project.billing.money import stable_id

# The message types Meterhouse produces (Lago's names and the object each carries).
OBJECT_TYPES = {
    "alert.triggered": "triggered_alert",
    "invoice.created": "invoice",
    "credit_note.created": "credit_note",
    "wallet_transaction.created": "wallet_transaction",
    "wallet.depleted_ongoing_balance": "wallet",
}
DEFAULT_ATTEMPTS = 3  # lago-api's LAGO_WEBHOOK_ATTEMPTS default


@dataclass(frozen=True)
class Message:
    """One webhook message, before it is addressed to endpoints. `message_id` is stable: the same
    billing fact gives the same id in every run, so the outbox takes it once."""

    message_id: str
    webhook_type: str
    object_id: str
    created_on: dt.date  # the data's date of the fact (issuing day, transaction day, billing date)
    body: bytes


def organization_id(billing_entity_code: str | None) -> str:
    """The `organization_id` of the envelope: a stable id of the seller (a file catalog has no
    organization; its billing entity, or none, stands for it)."""
    return stable_id("organization", billing_entity_code or "")


def envelope(webhook_type: str, organization: str, obj: dict) -> dict:
    """lago-api's webhook payload around `obj`."""
    object_type = OBJECT_TYPES[webhook_type]
    return {"webhook_type": webhook_type, "object_type": object_type, "organization_id": organization,
            object_type: obj}


_DECIMAL = re.compile(r'"\\u0000D([-0-9.]+)\\u0000"')


def body_bytes(payload: dict) -> bytes:
    """The payload as the bytes posted: compact JSON, UTF-8; a `Decimal` becomes an exact JSON
    number (never through a binary float)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                      default=lambda v: f"\0D{format(v, 'f')}\0" if isinstance(v, Decimal) else str(v))
    return _DECIMAL.sub(r"\1", text).encode("utf-8")


def message(webhook_type: str, object_id: str, created_on: dt.date, organization: str, obj: dict,
            *key: object) -> Message:
    """A message with its id: the type, the object's id and, for facts that recur on one object
    (an alert, a wallet running dry), the rest of `key`."""
    return Message(stable_id("webhook_message", webhook_type, object_id, *key), webhook_type, object_id, created_on,
                   body_bytes(envelope(webhook_type, organization, obj)))


def signature(key: str, body: bytes) -> str:
    """`X-Lago-Signature` for the `hmac` algorithm: base64 of HMAC-SHA256(key, body)."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def headers(key: str, body: bytes, webhook_id: str) -> dict[str, str]:
    """The headers of a delivery (Lago's `Webhook#generate_headers`), with the JSON content type."""
    return {"Content-Type": "application/json", "X-Lago-Signature": signature(key, body),
            "X-Lago-Signature-Algorithm": "hmac", "X-Lago-Unique-Key": webhook_id}


def webhook_id(message_id: str, endpoint_id: str) -> str:
    """The id of one message to one endpoint (`X-Lago-Unique-Key`)."""
    return stable_id("webhook", message_id, endpoint_id)


def subscribed(event_types: list[str] | None, webhook_type: str) -> bool:
    """Lago's `subscribed?`: no list (or `["*"]`) takes every type."""
    return event_types is None or event_types == ["*"] or webhook_type in event_types


def retry_wait_seconds(retries: int) -> int:
    """Seconds to wait before the next attempt after `retries` failed ones: `retries**4 + 2`
    (1 failure: 3 s, 2: 18 s, 3: 83 s)."""
    return retries ** 4 + 2


@dataclass(frozen=True)
class AttemptOutcome:
    status: str  # succeeded, retrying or failed
    attempts: int
    next_attempt_at: dt.datetime | None


def after_attempt(attempts_before: int, succeeded: bool, now: dt.datetime, limit: int = DEFAULT_ATTEMPTS) -> AttemptOutcome:
    """The webhook's state after one more attempt at `now`: succeeded; or, failed, `retrying`
    with its next time while fewer than `limit` attempts were made, else `failed`."""
    attempts = attempts_before + 1
    if succeeded:
        return AttemptOutcome("succeeded", attempts, None)
    if attempts < limit:
        return AttemptOutcome("retrying", attempts, now + dt.timedelta(seconds=retry_wait_seconds(attempts)))
    return AttemptOutcome("failed", attempts, None)


def object_messages(organization: str, invoices: list[dict], credit_notes: list[dict],
                    wallet_transactions: list[dict]) -> list[Message]:
    """The messages of the billing's objects, as published (Lago objects): `invoice.created` for
    each finalized subscription invoice (Lago sends it when an invoice is finalized; drafts send
    `invoice.drafted`, credit invoices `invoice.paid_credit_added`, neither produced here),
    `credit_note.created` for each credit note, `wallet_transaction.created` for each wallet
    transaction."""
    found = [message("invoice.created", i["lago_id"], dt.date.fromisoformat(i["issuing_date"]), organization, i)
             for i in invoices if i["status"] == "finalized" and i["invoice_type"] != "credit"]
    found += [message("credit_note.created", n["lago_id"], dt.date.fromisoformat(n["issuing_date"]), organization, n)
              for n in credit_notes]
    found += [message("wallet_transaction.created", t["lago_id"], dt.date.fromisoformat(t["created_at"][:10]),
                      organization, t)
              for t in wallet_transactions]
    return found


def triggered_alert_object(alert: dict, subscription: dict, organization: str, triggered_id: str,
                           previous: Decimal, current: Decimal, crossed: list[dict], triggered_at: str) -> dict:
    """lago-api's `TriggeredAlertSerializer` (with its two deprecated names, which Lago still sends).
    `alert`: a `catalog.alerts` row; `subscription`: its `catalog.subscriptions` row."""
    return {
        "lago_id": triggered_id, "lago_organization_id": organization, "lago_alert_id": alert["alert_id"],
        "lago_subscription_id": subscription["subscription_id"],
        "external_subscription_id": alert["external_subscription_id"], "lago_wallet_id": None,
        "external_customer_id": subscription["external_customer_id"],
        "billable_metric_code": alert["billable_metric_code"], "alert_name": alert["name"],
        "alert_code": alert["code"], "alert_type": alert["alert_type"],
        "current_value": current, "previous_value": previous, "crossed_thresholds": crossed,
        "triggered_at": triggered_at,
        "subscription_external_id": alert["external_subscription_id"],
        "customer_external_id": subscription["external_customer_id"],
    }


@dataclass(frozen=True)
class Checks:
    """What one run's usage monitoring found: its messages, and the state the next run starts from."""

    messages: list[Message]
    alert_values: dict[str, Decimal]
    depleted: dict[str, bool]


def monitoring_checks(organization: str, through: dt.date, alerts: list[dict], subscriptions: dict[str, dict],
                      usage: dict[str, dict], lifetime_cents: dict[str, int], wallets: list[dict],
                      previous_values: dict[str, Decimal], depleted_before: set[str]) -> Checks:
    """The checks of a run billed through `through`:

    - each alert of a subscription with an open period (`usage`: external subscription id -> its
      `customer_usage` object; `lifetime_cents`: its lifetime usage, `billing.lifetime_usage`'s
      total) is checked against its previous value (0 at first); the thresholds
      crossed make one `alert.triggered` message, and the value checked becomes the previous one
      (an alert with nothing to check keeps its previous value);
    - each active wallet whose `ongoing_balance_cents` is at or below 0, and was not at the last
      check, makes one `wallet.depleted_ongoing_balance` (Lago's `depleted_ongoing_balance` flag: it
      is cleared when the balance is above 0 again).

    Both are dated `through` (midnight UTC), the billing date: the data's date, not the clock's."""
    from dagster_project.billing import alerts as rules

    messages, values = [], dict(previous_values)
    triggered_at = f"{through.isoformat()}T00:00:00Z"
    for alert in alerts:
        customer_usage = usage.get(alert["external_subscription_id"])
        if customer_usage is None:  # no open period: the subscription is not active
            continue
        current = rules.usage_value(alert["alert_type"], customer_usage, alert["billable_metric_code"],
                                    lifetime_cents.get(alert["external_subscription_id"], 0))
        if current is None:
            continue
        previous = values.get(alert["alert_id"], Decimal(0))
        thresholds = [rules.Threshold(Decimal(t["value"]), t["code"], t["recurring"])
                      for t in json.loads(alert["thresholds_json"])]
        crossed = rules.thresholds_crossed(previous, current, thresholds)
        if crossed:
            triggered_id = stable_id("triggered_alert", alert["alert_id"], through, previous, current)
            obj = triggered_alert_object(alert, subscriptions[alert["external_subscription_id"]], organization,
                                         triggered_id, previous, current, rules.formatted_crossed(crossed, thresholds),
                                         triggered_at)
            messages.append(message("alert.triggered", triggered_id, through, organization, obj))
        values[alert["alert_id"]] = current
    depleted = {}
    for wallet in wallets:
        if wallet["status"] != "active":
            continue
        depleted[wallet["lago_id"]] = wallet["ongoing_balance_cents"] <= 0
        if depleted[wallet["lago_id"]] and wallet["lago_id"] not in depleted_before:
            messages.append(message("wallet.depleted_ongoing_balance", wallet["lago_id"], through, organization,
                                    wallet, through))
    return Checks(messages, values, depleted)


def addressed(messages: list[Message], endpoints: list[dict]) -> list[dict]:
    """The outbox rows: each message to each endpoint subscribed to its type (`catalog.webhook_endpoints`
    rows) and existing on the message's date (an endpoint's `created_on`, when it has one: Lago sends
    an endpoint what happens after it was created, not the history), in the order of the messages'
    dates, then types and ids (stable across runs)."""
    found = []
    for m in sorted(messages, key=lambda m: (m.created_on, m.webhook_type, m.object_id, m.message_id)):
        for endpoint in endpoints:
            types = json.loads(endpoint["event_types_json"]) if endpoint["event_types_json"] else None
            created_on = endpoint.get("created_on")
            if subscribed(types, m.webhook_type) and (created_on is None or m.created_on >= created_on):
                found.append({"webhook_id": webhook_id(m.message_id, endpoint["webhook_endpoint_id"]),
                              "message_id": m.message_id, "webhook_type": m.webhook_type, "object_id": m.object_id,
                              "created_on": m.created_on, "endpoint_id": endpoint["webhook_endpoint_id"],
                              "webhook_url": endpoint["webhook_url"], "body": m.body.decode("utf-8")})
    return found
