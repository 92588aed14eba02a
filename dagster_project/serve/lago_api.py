"""Lago's API rules that `meterhouse serve` follows, as pure functions: who may call, the error
bodies, what an event body must hold and the line it lands as, and the objects the answers hold.

Lago's own behaviour is the reference (getlago/lago-api): `ApiErrors` for the error bodies,
`Events::CreateService` and `Events::CreateBatchService` for events, the serializers for the objects.
Where Lago's official Python client is stricter than Lago's OpenAPI file (fields its response
models require), the objects follow the client.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import re
from decimal import Decimal, InvalidOperation

from dagster_project.billing.money import stable_id

API_KEY_ENV = "METERHOUSE_API_KEY"
BATCH_MAX_EVENTS = 100  # Lago's `Events::CreateBatchService::MAX_LENGTH` (LAGO_EVENTS_BATCH_MAX_LENGTH, 100)


class Refused(Exception):
    """A request answered with an error: `status` and Lago's body for it."""

    def __init__(self, status: int, body: dict):
        self.status = status
        self.body = body
        super().__init__(json.dumps(body))


# ---- who may call, and the error bodies ----------------------------------------------------------------


def is_authorized(authorization: str | None, api_key: str) -> bool:
    """`Authorization: Bearer <key>`, the key compared in constant time (`hmac.compare_digest`). An
    empty server key authorizes nobody."""
    if not api_key or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), api_key.encode())


def unauthorized() -> Refused:
    return Refused(401, {"status": 401, "error": "Unauthorized"})


def validation_errors(details: dict) -> Refused:
    """Lago's 422: `error_details` maps each field to its error codes (or, for a batch, each event's
    index to its fields)."""
    return Refused(422, {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                         "error_details": details})


def not_found(resource: str) -> Refused:
    return Refused(404, {"status": 404, "error": "Not Found", "code": f"{resource}_not_found"})


def bad_request(message: str) -> Refused:
    return Refused(400, {"status": 400, "error": f"BadRequest: {message}"})


def parse_body(raw: bytes) -> dict:
    """The request's JSON object, or Lago's 400."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise bad_request("the body is not a JSON object")
    return body


def root(body: dict, name: str) -> dict:
    """`body[name]`, required as Rails' `params.require(name)` requires it."""
    value = body.get(name)
    if not isinstance(value, dict) or not value:
        raise bad_request(f"param is missing or the value is empty: {name}")
    return value


# ---- events ------------------------------------------------------------------------------------------

ID_FIELDS = ("transaction_id", "code", "external_subscription_id")
_UNIX_SECONDS = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)


def event_time(value: object) -> dt.datetime:
    """An event's `timestamp` as the loader reads it: Unix seconds (integer, decimal, or a string of
    digits; fractions kept to the microsecond) or ISO 8601 (UTC when it has no offset), between 1970
    and 2200. Raises ValueError otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError("not a time")
    if isinstance(value, (int, float)) or (isinstance(value, str) and _UNIX_SECONDS.fullmatch(value.strip())):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a number")
        try:
            micros = int(Decimal(str(value).strip()) * 1_000_000)
        except InvalidOperation:
            raise ValueError("not a number") from None
        if not 0 <= micros < (_LATEST - _EPOCH) // dt.timedelta(microseconds=1):
            raise ValueError("outside 1970-2200")
        return _EPOCH + dt.timedelta(microseconds=micros)
    if not isinstance(value, str):
        raise ValueError("not a time")
    parsed = dt.datetime.fromisoformat(value.strip())
    parsed = parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed.astimezone(dt.timezone.utc)
    if not _EPOCH <= parsed < _LATEST:
        raise ValueError("outside 1970-2200")
    return parsed


def event_problems(event: object) -> dict[str, list[str]]:
    """What the loader would quarantine an event for at load, as Lago's error codes per field:
    an id field missing or not a non-empty string, a timestamp that is not a time, properties that
    are not an object. `precise_total_amount_cents` (the dynamic charge model's) is not billed here:
    null or absent only (Lago's client sends null)."""
    if not isinstance(event, dict):
        return {"event": ["invalid_type"]}
    problems: dict[str, list[str]] = {}
    for name in ID_FIELDS:
        value = event.get(name)
        if value is None or value == "":
            problems[name] = ["value_is_mandatory"]
        elif not isinstance(value, str):
            problems[name] = ["invalid_type"]
    if event.get("timestamp") is not None:
        try:
            event_time(event["timestamp"])
        except ValueError:
            problems["timestamp"] = ["invalid_format"]
    if event.get("properties") is not None and not isinstance(event["properties"], dict):
        problems["properties"] = ["invalid_type"]
    if event.get("precise_total_amount_cents") is not None:
        problems["precise_total_amount_cents"] = ["not_supported"]
    return problems


def utc_text(moment: dt.datetime, digits: int = 6) -> str:
    """`2026-12-05T12:40:00.123456Z` (digits 6) or `...00.123Z` (digits 3, as Lago's serializers)."""
    text = moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[: len(text) - (6 - digits)] + "Z"


def landed_event(event: dict, received_at: dt.datetime) -> dict:
    """The line an accepted event lands as: its ids, its timestamp as sent (the time it was received
    when it has none, as in Lago), its properties. Fields that carry nothing (nulls) are left out."""
    return {
        "transaction_id": event["transaction_id"],
        "external_subscription_id": event["external_subscription_id"],
        "code": event["code"],
        "timestamp": event["timestamp"] if event.get("timestamp") is not None else utc_text(received_at),
        "properties": event.get("properties") or {},
    }


def single_event(body: dict, received_at: dt.datetime) -> dict:
    """`POST /events`: the landed event, or Lago's 400/422."""
    event = root(body, "event")
    if problems := event_problems(event):
        raise validation_errors(problems)
    return landed_event(event, received_at)


def batch_events(body: dict, received_at: dt.datetime) -> list[dict]:
    """`POST /events/batch`: every event landed, or none. Lago refuses an empty batch (`no_events`),
    more than BATCH_MAX_EVENTS (`too_many_events`), and a batch with a bad event, naming each by
    its index."""
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise validation_errors({"events": ["no_events"]})
    if len(events) > BATCH_MAX_EVENTS:
        raise validation_errors({"events": ["too_many_events"]})
    problems = {str(i): p for i, event in enumerate(events) if (p := event_problems(event))}
    if problems:
        raise validation_errors(problems)
    return [landed_event(event, received_at) for event in events]


def event_lines(events: list[dict]) -> bytes:
    """One JSON line per event, in one piece (the landing file receives it in a single write)."""
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events).encode()


def event_object(event: dict, received_at: dt.datetime) -> dict:
    """Lago's `EventObject` for a landed event. Its customer and subscription are resolved when it is
    billed, not on receipt (null here, as in Lago's high-volume ingestion)."""
    return {
        "lago_id": stable_id("event", event["external_subscription_id"], event["transaction_id"]),
        "transaction_id": event["transaction_id"],
        "lago_customer_id": None,
        "lago_subscription_id": None,
        "external_subscription_id": event["external_subscription_id"],
        "code": event["code"],
        "timestamp": utc_text(event_time(event["timestamp"]), digits=3),
        "precise_total_amount_cents": None,
        "properties": event["properties"],
        "created_at": utc_text(received_at, digits=3),
    }


# ---- lists -------------------------------------------------------------------------------------------


def page(items: list, params: dict[str, str], name: str) -> dict:
    """Lago's paginated list: `page` (from 1) and `per_page` (default 20, at most 100) query
    parameters, and its `meta`."""
    try:
        number = max(int(params.get("page") or 1), 1)
        per_page = min(max(int(params.get("per_page") or 20), 1), 100)
    except ValueError:
        raise bad_request("page and per_page must be integers") from None
    total_pages = max(math.ceil(len(items) / per_page), 1)
    return {
        name: items[(number - 1) * per_page: number * per_page],
        "meta": {"current_page": number, "next_page": number + 1 if number < total_pages else None,
                 "prev_page": number - 1 if number > 1 else None, "total_pages": total_pages,
                 "total_count": len(items)},
    }


def wallet_transaction_matches(transaction: dict, params: dict[str, str]) -> bool:
    """`GET /wallets/{lago_id}/wallet_transactions` filters: `status`, `transaction_status`,
    `transaction_type` (each an exact value when given)."""
    return all(not params.get(name) or params[name] == transaction.get(name)
               for name in ("status", "transaction_status", "transaction_type"))


def invoice_matches(invoice: dict, params: dict[str, str]) -> bool:
    """`GET /invoices` filters: `external_customer_id`, `status`, `payment_status`, `invoice_type`,
    `issuing_date_from` and `issuing_date_to` (inclusive, YYYY-MM-DD)."""
    customer = (invoice.get("customer") or {}).get("external_id")
    for name, actual in (("external_customer_id", customer), ("status", invoice.get("status")),
                         ("payment_status", invoice.get("payment_status")),
                         ("invoice_type", invoice.get("invoice_type"))):
        if params.get(name) and params[name] != actual:
            return False
    issuing = invoice.get("issuing_date") or ""
    if params.get("issuing_date_from") and issuing < params["issuing_date_from"]:
        return False
    if params.get("issuing_date_to") and issuing > params["issuing_date_to"]:
        return False
    return True
