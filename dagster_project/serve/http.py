"""The HTTP wiring of `meterhouse serve`: routes to the rules of `lago_api.py`, the stores and the
published snapshot. The standard library's `ThreadingHTTPServer` (HTTP/1.1, keep-alive), one thread
per connection: a request is plain blocking code (write, fsync, answer), with no dependency beyond
Python, and it holds the throughput the bench measures (docs/performance.md, "HTTP API")."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from dagster_project.catalog.reader import resolve_wallet, wallet_key
from dagster_project.catalog.tables import subscription_id
from dagster_project.billing.money import stable_id
from dagster_project.serve import lago_api as api
from dagster_project.serve import objects
from dagster_project.serve.catalog_store import CatalogStore
from dagster_project.serve.landing import EventLog
from dagster_project.serve.published import Published


@dataclass
class App:
    """What the handlers share. `published` is replaced whole by each refresh (reads take the
    reference once: a consistent snapshot)."""

    api_key: str
    store: CatalogStore
    events: EventLog
    clock: Callable[[], dt.datetime]
    published: Published = field(default_factory=Published)
    poke: Callable[[], None] = lambda: None
    health: Callable[[], dict] = dict

    # ---- events ----

    def post_event(self, body: dict, params: dict) -> dict:
        received = self.clock()
        event = api.single_event(body, received)
        self.events.append(api.event_lines([event]), 1)
        self.poke()
        return {"event": api.event_object(event, received)}

    def post_events_batch(self, body: dict, params: dict) -> dict:
        received = self.clock()
        events = api.batch_events(body, received)
        self.events.append(api.event_lines(events), len(events))
        self.poke()
        return {"events": [api.event_object(e, received) for e in events]}

    # ---- catalog ----

    def _create(self, kind: str, body: dict):
        created = self.store.create(kind, api.root(body, kind), self.clock())
        self.poke()
        return created

    def post_billable_metric(self, body: dict, params: dict) -> dict:
        created = self._create("billable_metric", body)
        return {"billable_metric": objects.billable_metric_object(created.model, self.clock())}

    def post_plan(self, body: dict, params: dict) -> dict:
        created = self._create("plan", body)
        return {"plan": objects.plan_object(created.model, self.clock())}

    def post_customer(self, body: dict, params: dict) -> dict:
        created = self._create("customer", body)
        return {"customer": objects.customer_api_object(created.catalog, created.model)}

    def post_subscription(self, body: dict, params: dict) -> dict:
        created = self._create("subscription", body)
        return {"subscription": objects.subscription_object(created.catalog, created.model, self.clock())}

    def post_wallet(self, body: dict, params: dict) -> dict:
        created = self._create("wallet", body)
        return {"wallet": objects.wallet_object_as_created(created.model)}

    def post_wallet_transaction(self, body: dict, params: dict) -> dict:
        created = self._create("wallet_transaction", body)
        return {"wallet_transactions": objects.wallet_transactions_as_created(created.catalog, created.model)}

    def _found(self, items: list, key: Callable, value: str, resource: str):
        found = [item for item in items if key(item) == value]
        if not found:
            raise api.not_found(resource)
        return found[-1]  # the latest body (a subscription's plan change)

    def get_billable_metrics(self, params: dict) -> dict:
        return api.page([objects.billable_metric_object(m, self.store.created_at(m))
                         for m in self.store.catalog.billable_metrics], params, "billable_metrics")

    def get_billable_metric(self, params: dict, code: str) -> dict:
        metric = self._found(self.store.catalog.billable_metrics, lambda m: m.code, code, "billable_metric")
        return {"billable_metric": objects.billable_metric_object(metric, self.store.created_at(metric))}

    def get_plans(self, params: dict) -> dict:
        return api.page([objects.plan_object(p, self.store.created_at(p)) for p in self.store.catalog.plans],
                        params, "plans")

    def get_plan(self, params: dict, code: str) -> dict:
        plan = self._found(self.store.catalog.plans, lambda p: p.code, code, "plan")
        return {"plan": objects.plan_object(plan, self.store.created_at(plan))}

    def get_customers(self, params: dict) -> dict:
        catalog = self.store.catalog
        return api.page([objects.customer_api_object(catalog, c) for c in catalog.customers], params, "customers")

    def get_customer(self, params: dict, external_id: str) -> dict:
        catalog = self.store.catalog
        customer = self._found(catalog.customers, lambda c: c.external_id, external_id, "customer")
        return {"customer": objects.customer_api_object(catalog, customer)}

    def get_subscriptions(self, params: dict) -> dict:
        catalog, now = self.store.catalog, self.clock()
        shown = [objects.subscription_object(catalog, s, now) for s in catalog.subscriptions
                 if params.get("external_customer_id") in (None, "", s.external_customer_id)
                 and params.get("plan_code") in (None, "", s.plan_code)]
        return api.page(shown, params, "subscriptions")

    def get_subscription(self, params: dict, external_id: str) -> dict:
        catalog = self.store.catalog
        sub = self._found(catalog.subscriptions, lambda s: s.external_id, external_id, "subscription")
        return {"subscription": objects.subscription_object(catalog, sub, self.clock())}

    # ---- what runs published ----

    def _wallets(self) -> list[dict]:
        """Each catalog wallet as the last run published it, or as created when no run has yet."""
        published = self.published.wallets
        shown = []
        for wallet in self.store.catalog.wallets:
            lago_id = stable_id("wallet", wallet_key(wallet))
            shown.append(published.get(lago_id) or objects.wallet_object_as_created(wallet))
        return shown

    def get_wallets(self, params: dict) -> dict:
        customer = params.get("external_customer_id")
        return api.page([w for w in self._wallets() if customer in (None, "", w["external_customer_id"])],
                        params, "wallets")

    def get_wallet(self, params: dict, lago_id: str) -> dict:
        return {"wallet": self._found(self._wallets(), lambda w: w["lago_id"], lago_id, "wallet")}

    def get_wallet_transactions(self, params: dict, lago_id: str) -> dict:
        """A wallet's transactions, newest first as Lago lists them, filtered by `status`,
        `transaction_status` and `transaction_type`: the ledger of the last run, or, before a run
        has billed the wallet, its manual transactions as created."""
        catalog = self.store.catalog
        lago_id_of = lambda wallet: stable_id("wallet", wallet_key(wallet))  # noqa: E731
        self._found(catalog.wallets, lago_id_of, lago_id, "wallet")
        ledger = self.published.wallet_transactions.get(lago_id)
        if ledger is None:
            ledger = [shown for t in catalog.wallet_transactions
                      if lago_id_of(resolve_wallet(catalog, t.wallet_id)) == lago_id
                      for shown in objects.wallet_transactions_as_created(catalog, t)]
        return api.page([t for t in reversed(ledger) if api.wallet_transaction_matches(t, params)],
                        params, "wallet_transactions")

    def get_wallet_transaction(self, params: dict, lago_id: str) -> dict:
        for ledger in self.published.wallet_transactions.values():
            for transaction in ledger:
                if transaction["lago_id"] == lago_id:
                    return {"wallet_transaction": transaction}
        raise api.not_found("wallet_transaction")

    def get_current_usage(self, params: dict, external_customer_id: str) -> dict:
        external_subscription_id = params.get("external_subscription_id")
        if not external_subscription_id:
            raise api.validation_errors({"external_subscription_id": ["value_is_mandatory"]})
        subs = [s for s in self.store.catalog.subscriptions
                if s.external_id == external_subscription_id and s.external_customer_id == external_customer_id]
        if not subs:
            raise api.not_found("subscription")
        usage = self.published.current_usage.get(external_subscription_id)
        if usage is None:  # not billed by a run yet
            raise api.not_found("customer_usage")
        return {"customer_usage": usage}

    def get_invoices(self, params: dict) -> dict:
        return api.page([i for i in self.published.invoices.values() if api.invoice_matches(i, params)],
                        params, "invoices")

    def get_invoice(self, params: dict, lago_id: str) -> dict:
        invoice = self.published.invoices.get(lago_id)
        if invoice is None:
            raise api.not_found("invoice")
        return {"invoice": invoice}


# (method, path pattern, App method name); the path's groups are the handler's arguments
ROUTES = [
    ("POST", r"/api/v1/events", "post_event"),
    ("POST", r"/api/v1/events/batch", "post_events_batch"),
    ("POST", r"/api/v1/billable_metrics", "post_billable_metric"),
    ("GET", r"/api/v1/billable_metrics", "get_billable_metrics"),
    ("GET", r"/api/v1/billable_metrics/([^/]+)", "get_billable_metric"),
    ("POST", r"/api/v1/plans", "post_plan"),
    ("GET", r"/api/v1/plans", "get_plans"),
    ("GET", r"/api/v1/plans/([^/]+)", "get_plan"),
    ("POST", r"/api/v1/customers", "post_customer"),
    ("GET", r"/api/v1/customers", "get_customers"),
    ("GET", r"/api/v1/customers/([^/]+)", "get_customer"),
    ("GET", r"/api/v1/customers/([^/]+)/current_usage", "get_current_usage"),
    ("POST", r"/api/v1/subscriptions", "post_subscription"),
    ("GET", r"/api/v1/subscriptions", "get_subscriptions"),
    ("GET", r"/api/v1/subscriptions/([^/]+)", "get_subscription"),
    ("POST", r"/api/v1/wallets", "post_wallet"),
    ("GET", r"/api/v1/wallets", "get_wallets"),
    ("GET", r"/api/v1/wallets/([^/]+)", "get_wallet"),
    ("GET", r"/api/v1/wallets/([^/]+)/wallet_transactions", "get_wallet_transactions"),
    ("POST", r"/api/v1/wallet_transactions", "post_wallet_transaction"),
    ("GET", r"/api/v1/wallet_transactions/([^/]+)", "get_wallet_transaction"),
    ("GET", r"/api/v1/invoices", "get_invoices"),
    ("GET", r"/api/v1/invoices/([^/]+)", "get_invoice"),
]
_COMPILED = [(method, re.compile(pattern), name) for method, pattern, name in ROUTES]


def route(method: str, path: str) -> tuple[str, list[str]] | None:
    """The App method for a request, and the path's arguments (unquoted); None when none matches."""
    for route_method, pattern, name in _COMPILED:
        if route_method == method and (match := pattern.fullmatch(path)):
            return name, [unquote(g) for g in match.groups()]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client sends its requests on one connection
    server_version = "meterhouse"
    app: App  # set on the class made by `make_server`

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass  # one line per request would cost more than the request; errors are answered in JSON

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        try:
            if url.path == "/health" and method == "GET":
                return self._answer(200, {"version": "meterhouse", "message": "Success", **self.app.health()})
            if not api.is_authorized(self.headers.get("Authorization"), self.app.api_key):
                raise api.unauthorized()
            found = route(method, url.path.rstrip("/"))
            if found is None:
                raise api.Refused(404, {"status": 404, "error": "Not Found", "code": "route_not_found"})
            name, args = found
            params = dict(parse_qsl(url.query))
            handler = getattr(self.app, name)
            result = handler(api.parse_body(raw), params, *args) if method == "POST" else handler(params, *args)
            self._answer(200, result)
        except api.Refused as refused:
            self._answer(refused.status, refused.body)
        except Exception as exc:  # an error of ours: said in JSON (Lago's client parses every body)
            print(f"serve: {method} {url.path} failed: {exc!r}", file=sys.stderr, flush=True)
            self._answer(500, {"status": 500, "error": "Internal Server Error", "code": "internal_error",
                               "message": str(exc)})

    def do_GET(self) -> None:  # noqa: N802 (the base class's names)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def make_server(app: App, host: str, port: int) -> Server:
    handler = type("BoundHandler", (Handler,), {"app": app})
    return Server((host, port), handler)
