"""EU VAT per customer, a draft recomputed inside its grace period and frozen after it, and
invoice numbers that survive reruns (tests/scenarios/eu_vat).

The seller is a French billing entity with `eu_tax_management` and the number prefix MIS. Every
customer subscribes on Oct 1 (UTC, EUR) to a 10.50 monthly plan with two package charges on
mistral-large tokens: input 2.00 and output 1.50 per started million. Each uses 1.5M input tokens
(2 packages, 4.00) and 0.5M output tokens (1 package, 1.50) in October: fees 10.50 + 4.00 + 1.50 =
16.00, invoiced on Nov 1.

- fr_consumer (FR, no VAT number): the seller's country, 20%: 2.10 + 0.80 + 0.30 = 3.20; 19.20
  with taxes; its 5 granted credits (1 credit = 1 EUR) pay 5.00 after taxes: 14.20 due.
- de_consumer (DE, no VAT number): Germany's 19%. Per fee: 1.995, 0.76, 0.285 (shown rounded
  2.00, 0.76, 0.29, which add up to 3.05); the invoice rounds the sum once: 3.04. 19.04 due.
- de_business (DE, VAT number DE123456789): reverse charge, 0%: 16.00 due.
- us_customer (US): outside the EU, exempt: 16.00, with a 3-day grace period: its invoice is a
  draft until Nov 4 is complete. 0.6M more input tokens stamped Oct 31 arrive on Nov 3: input is
  2.1M, 3 packages, 6.00, and the draft is recomputed to 18.00. It is finalized by the run through
  Nov 5; 0.6M output tokens stamped Oct 31 arriving on Nov 5 are late: 1.1M output would be 2
  packages, 1.50 more, reported and not billed.

Customer numbers follow external ids (none has created_at): de_business 001, de_consumer 002,
fr_consumer 003, us_customer 004.
"""

import json
import shutil

import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas, run_meterhouse

SCENARIO = REPO / "tests" / "scenarios" / "eu_vat"


def _invoices(out) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())["invoice"] for p in sorted((out / "invoices").glob("*.json"))}


def _files(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.json"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Bill through Nov 2, Nov 3, Nov 5 and Nov 5 again on one warehouse, keeping each run's outputs."""
    work = tmp_path_factory.mktemp("eu_vat")
    shutil.copytree(SCENARIO / "events", work / "events")
    snapshots = {}
    for label, through in (("nov2", "2026-11-02"), ("nov3", "2026-11-03"), ("nov5", "2026-11-05"), ("nov5_again", "2026-11-05")):
        out = run_meterhouse(SCENARIO / "catalog", work / "events", work, through)
        snapshots[label] = work / f"out_{label}"
        shutil.copytree(out, snapshots[label])
    return snapshots


def _by_customer(invoices: dict[str, dict]) -> dict[str, tuple]:
    return {
        d["customer"]["external_id"]: (name, d["status"], d["fees_amount_cents"], d["taxes_amount_cents"],
                                       d["prepaid_credit_amount_cents"], d["total_amount_cents"])
        for name, d in invoices.items()
    }


def test_vat_for_a_french_and_a_german_consumer_a_german_business_and_a_us_customer(runs):
    got = _by_customer(_invoices(runs["nov2"]))
    draft = got["us_customer"][0]
    assert got == {
        "de_business": ("MIS-001-001.json", "finalized", 1600, 0, 0, 1600),
        "de_consumer": ("MIS-002-001.json", "finalized", 1600, 304, 0, 1904),
        "fr_consumer": ("MIS-003-001.json", "finalized", 1600, 320, 500, 1420),
        "us_customer": (draft, "draft", 1600, 0, 0, 1600),
    }
    assert draft.startswith("draft-")


def test_each_invoice_shows_the_tax_applied_and_the_rule(runs):
    invoices = {d["customer"]["external_id"]: d for d in _invoices(runs["nov5"]).values()}
    expected = {
        "fr_consumer": ("lago_eu_fr_standard", 20, 1600, 320, "VAT at the seller's rate: customer in the seller's country"),
        "de_consumer": ("lago_eu_de_standard", 19, 1600, 304, "VAT at the customer's country's standard rate: consumer in the EU"),
        "de_business": ("lago_eu_reverse_charge", 0, 1600, 0, "VAT reverse charge: EU business customer with a VAT number in another member state (Article 196, Directive 2006/112/EC)"),
        "us_customer": ("lago_eu_tax_exempt", 0, 1800, 0, "No EU VAT: customer outside the EU"),
    }
    for customer, (code, rate, base, amount, rule) in expected.items():
        doc = invoices[customer]
        (tax,) = doc["applied_taxes"]
        assert (tax["tax_code"], tax["tax_rate"], tax["fees_amount_cents"], tax["amount_cents"]) == (code, rate, base, amount)
        assert [(m["key"], m["value"]) for m in doc["metadata"]] == [("tax_rule", rule)]
        assert doc["billing_entity_code"] == "mistral"


def test_fee_taxes_are_rounded_per_fee_and_the_invoice_once(runs):
    doc = next(d for d in _invoices(runs["nov2"]).values() if d["customer"]["external_id"] == "de_consumer")
    fees = sorted((f["amount_cents"], f["taxes_amount_cents"], f["taxes_precise_amount"], f["total_amount_cents"]) for f in doc["fees"])
    assert fees == [(150, 29, "0.285", 179), (400, 76, "0.76", 476), (1050, 200, "1.995", 1250)]
    assert sum(f[1] for f in fees) == 305 and doc["taxes_amount_cents"] == 304


def test_a_draft_is_recomputed_inside_its_grace_period_then_frozen(runs):
    us = {label: _by_customer(_invoices(runs[label]))["us_customer"] for label in ("nov2", "nov3", "nov5", "nov5_again")}
    assert us["nov2"][1:] == ("draft", 1600, 0, 0, 1600)
    assert us["nov3"][1:] == ("draft", 1800, 0, 0, 1800)  # the Nov 3 arrival is on the draft
    assert us["nov3"][0] == us["nov2"][0]  # still the same draft (its id), no number yet
    assert us["nov5"] == ("MIS-004-001.json", "finalized", 1800, 0, 0, 1800)
    summary = json.loads((runs["nov5"] / "run_summary.json").read_text())
    assert (summary["events_late"], summary["late_amount_cents"]) == (1, 150)


def test_numbers_and_files_survive_a_rerun(runs):
    assert _files(runs["nov5_again"]) == _files(runs["nov5"])
    # Invoices finalized on Nov 2 keep their numbers and bytes in every later run.
    for name in ("MIS-001-001.json", "MIS-002-001.json", "MIS-003-001.json"):
        assert (runs["nov5"] / "invoices" / name).read_bytes() == (runs["nov2"] / "invoices" / name).read_bytes()


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_taxed_outputs_validate_against_lagos_openapi_schemas(runs):
    assert_lago_schemas(runs["nov5"])


def test_each_finalized_invoice_has_an_html_and_a_pdf_document_with_its_figures(runs):
    documents = runs["nov5"] / "documents"
    assert sorted(p.name for p in documents.iterdir()) == [
        f"MIS-00{c}-001.{ext}" for c in range(1, 5) for ext in ("html", "pdf")
    ]
    html = (documents / "MIS-003-001.html").read_text()  # fr_consumer
    for expected in (
        "Invoice MIS-003-001", "<dt>Billing period</dt><dd>2026-10-01 to 2026-10-31</dd>", "<dt>Plan</dt><dd>EU plan</dd>",
        "<dt>Due date</dt><dd>2026-11-01</dd>",  # no net payment term: due on issue
        "<p>Mistral AI SAS</p><p>15 rue des Halles</p><p>75001 Paris</p><p>FR</p><p>Tax ID FR12345678901</p>",
        "<p>Camille Martin</p>",
        # one line per model and type, with units and the price in the charge model's words
        "AI Tokens — mistral-large input<div class=\"detail\">2 packages of 1,000,000 units at 2.00 EUR</div></td>"
        "<td class=\"right\">1,500,000</td><td class=\"right\">20 %</td><td class=\"right\">4.00 EUR</td>",
        "AI Tokens — mistral-large output<div class=\"detail\">1 package of 1,000,000 units at 1.50 EUR</div></td>"
        "<td class=\"right\">500,000</td>",
        "Subscription: EU plan<div class=\"detail\">10.50 EUR per month</div>",
        "16.00 EUR", "VAT FR standard (20 %) on 16.00 EUR</td><td class=\"right\">3.20 EUR",
        "Total including taxes</td><td class=\"right\">19.20 EUR", "Prepaid credits applied</td><td class=\"right\">-5.00 EUR",
        "Amount due</td><td class=\"right\">14.20 EUR", "VAT at the seller&#39;s rate: customer in the seller&#39;s country",
    ):
        assert expected in html, expected
    reverse = (documents / "MIS-001-001.html").read_text()
    assert "Reverse charge (0 %) on 16.00 EUR</td><td class=\"right\">0.00 EUR" in reverse
    assert "Article 196, Directive 2006/112/EC" in reverse and "Tax ID DE123456789" in reverse
    pdf = (documents / "MIS-002-001.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"Invoice MIS-002-001" in pdf
    # Documents are bytes-stable across reruns, like the JSON.
    assert pdf == (runs["nov5_again"] / "documents" / "MIS-002-001.pdf").read_bytes()
