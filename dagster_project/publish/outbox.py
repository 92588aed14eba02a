"""The webhook outbox of a run: the messages its billing produced, addressed to the catalog's
endpoints and added to `state.webhook_outbox` once each (`store/webhook_outbox.py`). The objects
are read from the files `publish()` just wrote, so a message carries the object as published."""

from __future__ import annotations

import json
from pathlib import Path

from dagster_project.publish import webhooks
from dagster_project.store import publish_reads
from dagster_project.store import webhook_outbox as store


def _documents(folder: Path) -> list[dict]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))]


def fill_outbox(con, out_dir: Path) -> dict[str, int]:
    """Check the alerts and wallets, and add the run's messages to the outbox. A catalog without
    webhook endpoints or alerts touches nothing. Counts: messages found, webhooks added, alerts."""
    endpoints, alerts = store.endpoints(con), store.alerts(con)
    if not endpoints and not alerts:
        return {"webhook_messages": 0, "webhooks_added": 0, "alerts": 0}
    store.ensure_tables(con)
    organization = webhooks.organization_id(store.billing_entity_code(con))
    through = publish_reads.billed_through(con)
    invoices = [d["invoice"] for d in _documents(out_dir / "invoices")]
    usage = {path.stem: json.loads(path.read_text(encoding="utf-8"))["customer_usage"]
             for path in sorted((out_dir / "current_usage").glob("*.json"))}
    checks = webhooks.monitoring_checks(
        organization, through, alerts, store.subscriptions(con), usage, store.lifetime_usage_cents(con),
        [d["wallet"] for d in _documents(out_dir / "wallets")], store.previous_values(con), store.depleted_wallets(con))
    messages = checks.messages
    if endpoints:
        messages = [*webhooks.object_messages(
            organization, invoices, [d["credit_note"] for d in _documents(out_dir / "credit_notes")],
            [t for d in _documents(out_dir / "wallet_transactions") for t in d["wallet_transactions"]]), *messages]
    added = store.record_checks(con, webhooks.addressed(messages, endpoints), checks.alert_values, checks.depleted)
    return {"webhook_messages": len(messages), "webhooks_added": added, "alerts": len(alerts)}
