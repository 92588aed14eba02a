"""`meterhouse serve` killed with SIGKILL while a client sends batches: after a restart, every
acknowledged transaction id is billed exactly once. Bounded: at most 60 batches of 100 events, each
wait with a deadline, traffic to 127.0.0.1 only."""

from __future__ import annotations

import json
import threading

import httpx

from tests.e2e.serve_process import API_KEY, poll, start

CATALOG = {
    "billable_metric": {"name": "Tokens", "code": "tokens", "aggregation_type": "sum_agg", "field_name": "tokens",
                        "filters": [{"key": "model", "values": ["small"]}]},
    "plan": {"name": "Per token", "code": "per_token", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
             "charges": [{"billable_metric_code": "tokens", "charge_model": "standard", "properties": {"amount": "0.001"}}]},
    "customer": {"external_id": "acme", "currency": "USD"},
    "subscription": {"external_customer_id": "acme", "plan_code": "per_token", "external_id": "sub_acme"},
}
TOKENS = 1000  # per event: the usage in tokens is 1,000 x the number of distinct events billed


def batch(number: int) -> list[dict]:
    return [{"transaction_id": f"k{number:03d}-{i:02d}", "code": "tokens", "external_subscription_id": "sub_acme",
             "properties": {"tokens": TOKENS, "model": "small"}} for i in range(100)]


def landed_ids(events_dir) -> set[str]:
    """The transaction ids of the whole lines in the server's landing files, read independently of
    the loader."""
    ids = set()
    for path in sorted(events_dir.glob("*/serve-*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            try:
                ids.add(json.loads(line)["transaction_id"])
            except ValueError:
                continue
    return ids


def test_every_acknowledged_event_is_billed_exactly_once_after_a_kill_9_under_load(tmp_path):
    (tmp_path / "catalog").mkdir()
    for kind, body in CATALOG.items():
        (tmp_path / "catalog" / f"{kind}.json").write_text(json.dumps({kind: body}))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    server = start(tmp_path, refresh_seconds=3600)  # its one refresh starts with the first events, killed with it
    acked: list[str] = []
    in_flight: list[list[dict]] = []
    ten_acknowledged = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for number in range(60):
                events = batch(number)
                in_flight[:] = [events]
                try:
                    answer = http.post("api/v1/events/batch", json={"events": events})
                except httpx.HTTPError:
                    return  # killed: this batch was not acknowledged
                if answer.status_code != 200:
                    return
                acked.extend(e["transaction_id"] for e in events)
                in_flight.clear()
                if number == 9:
                    ten_acknowledged.set()

    client = threading.Thread(target=send)
    client.start()
    try:
        assert ten_acknowledged.wait(120), "ten batches were not acknowledged within 120 s"
        server.kill9()
    finally:
        client.join(120)
    assert not client.is_alive() and len(acked) >= 1000

    restarted = start(tmp_path, refresh_seconds=1, name="restarted")
    try:
        with httpx.Client(base_url=restarted.url, headers=headers, timeout=60) as http:
            for events in [*in_flight, batch(100)]:  # the client retries what was not acknowledged
                assert http.post("api/v1/events/batch", json={"events": events}).status_code == 200
                acked.extend(e["transaction_id"] for e in events)
            landed = landed_ids(tmp_path / "events")
            assert set(acked) <= landed

            def usage():
                return http.get("api/v1/customers/acme/current_usage",
                                params={"external_subscription_id": "sub_acme"}).json()["customer_usage"]

            billed = poll(usage, lambda u: sum(c["events_count"] for c in u["charges_usage"]) >= len(landed),
                          600, f"{len(landed)} events in current usage")
    finally:
        log = restarted.stop()
    (charge,) = billed["charges_usage"]
    # exactly once: each distinct id once (a copy billed twice would add 1,000 tokens and an event)
    assert charge["events_count"] == len(landed), log[-3000:]
    assert int(float(charge["units"])) == TOKENS * len(landed)
    # 0.001 USD a token: 1 USD = 100 cents per 1,000-token event
    assert billed["amount_cents"] == 100 * len(landed)
