"""Mistakes made loud and correctable (tests/scenarios/corrections): usage that no charge prices, and
credit notes.

The scenario: plan `pay_go` (10.00 USD a month) prices AI tokens by model in packages of 1,000,000
(small 1.00, large 4.00) and has no price of its own for other models. Acme pays 20% VAT and holds a
wallet of 10 granted credits (1 credit = 1 USD); it pays 9.20 for its October invoice on 2026-11-03.

October (invoice MTH-001-001, issued and finalized 2026-11-01):
  subscription 10.00; small 2,000,000 tokens = 2 packages = 2.00; large 1,000,000 = 4.00;
  codestral 3,000,000 and 500,000 without a model: no filter, no price: 0.00 on a line named by its values
  fees 16.00, VAT 20% = 3.20, total 19.20; the wallet pays 10.00; due 9.20, paid on 2026-11-03.
November (MTH-001-002, issued 2026-12-01): subscription 10.00 + small 1,000,000 = 1.00: fees 11.00,
  VAT 2.20, total 13.20; the wallet is empty; due 13.20.

With a credit note (issued 2026-11-05) for the large tokens of October, billed twice by mistake:
  item 4.00 + VAT 0.80 = 4.80, split into 1.80 of credit and 3.00 refunded (of the 9.20 paid).
  The November invoice takes the 1.80 of credit before the wallet: 13.20 - 1.80 = 11.40 due.
  The October invoice does not change. Gross revenue of November (the month October's invoice was
  issued): 9.20 - 3.00 refunded = 6.20; of December: 11.40.
"""

import json
import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas, published_invoice, run_meterhouse, snapshot

SCENARIO = REPO / "tests" / "scenarios" / "corrections"


def _work(tmp_path_factory, name):
    work = tmp_path_factory.mktemp(name)
    shutil.copytree(SCENARIO / "events", work / "events")
    shutil.copytree(SCENARIO / "catalog", work / "catalog")
    return work


def _bill(work, through):
    return run_meterhouse(work / "catalog", work / "events", work, through, payments=SCENARIO / "payments")


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    """The scenario billed through 2026-12-02, no credit note."""
    work = _work(tmp_path_factory, "billed")
    _bill(work, "2026-12-02")
    return work


@pytest.fixture(scope="module")
def credited(tmp_path_factory):
    """Billed through 2026-11-04 (October finalized); then the credit note added to the catalog, as
    a user writes it from the invoice JSON, and billed through 2026-12-02 on the same warehouse."""
    work = _work(tmp_path_factory, "credited")
    _bill(work, "2026-11-04")
    october = published_invoice(work / "out", "MTH-001-001")
    large = next(f for f in october["fees"] if f["item"]["filter_invoice_display_name"] == "Large")
    (work / "catalog" / "credit_notes.json").write_text(json.dumps({"credit_note": {
        "invoice_id": "MTH-001-001", "reason": "duplicated_charge", "description": "Large tokens billed twice",
        "credit_amount_cents": 180, "refund_amount_cents": 300,
        "items": [{"fee_id": large["lago_id"], "amount_cents": 400}], "created_at": "2026-11-05T10:00:00Z"}}))
    # and acme's payment term changes from none (0 days) to 30: invoices issued from now on are due later
    bodies = json.loads((work / "catalog" / "catalog.json").read_text())
    next(b for b in bodies if "customer" in b)["customer"]["net_payment_term"] = 30
    (work / "catalog" / "catalog.json").write_text(json.dumps(bodies))
    before = snapshot(work / "out")
    _bill(work, "2026-12-02")
    return work, before


# --- usage that no charge prices ---------------------------------------------------------------------


def test_the_invoices_bill_what_is_priced_and_nothing_else(billed):
    october, november = published_invoice(billed / "out", "MTH-001-001"), published_invoice(billed / "out", "MTH-001-002")
    assert (october["fees_amount_cents"], october["taxes_amount_cents"], october["prepaid_credit_amount_cents"],
            october["total_amount_cents"], october["payment_status"]) == (1600, 320, 1000, 920, "succeeded")
    assert (november["fees_amount_cents"], november["taxes_amount_cents"], november["prepaid_credit_amount_cents"],
            november["total_amount_cents"]) == (1100, 220, 0, 1320)


def test_the_unpriced_line_is_named_by_its_values(billed):
    fees = {(f["item"]["name"], f["item"]["filter_invoice_display_name"]): f
            for f in published_invoice(billed / "out", "MTH-001-001")["fees"]}
    line = fees[("AI Tokens", "codestral; no filter values (not priced)")]
    assert (line["units"], line["amount_cents"], line["events_count"]) == ("3500000.0", 0, 2)
    html = (billed / "out" / "documents" / "MTH-001-001.html").read_text()
    assert "AI Tokens — codestral; no filter values (not priced)" in html


def test_the_run_summary_lists_and_warns_about_unpriced_usage(billed):
    summary = json.loads((billed / "out" / "run_summary.json").read_text())
    assert summary["unpriced_usage"] == [
        {"external_subscription_id": "sub_acme", "billable_metric_code": "tokens", "filter_values": {"model": "codestral"},
         "units": "3000000", "events_count": 1},
        {"external_subscription_id": "sub_acme", "billable_metric_code": "tokens", "filter_values": {},
         "units": "500000", "events_count": 1},
    ]
    assert summary["warnings"][0].startswith("3,000,000 units of tokens on sub_acme (model codestral, 1 event)")


def test_the_unpriced_usage_mart_has_one_row_per_values_and_day(billed):
    con = duckdb.connect(str(billed / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        """select external_customer_id, billable_metric_code, filter_values_json, arrival_date::varchar, units::varchar,
                  events_count, is_late
           from marts.fct_unpriced_usage order by filter_values_json"""
    ).fetchall()
    assert rows == [
        ("acme", "tokens", '{"model":"codestral"}', "2026-10-10", "3000000.000000000000", 1, False),
        ("acme", "tokens", "{}", "2026-10-10", "500000.000000000000", 1, False),
    ]


# --- credit notes ------------------------------------------------------------------------------------


def test_the_credit_note_is_published_in_lagos_schema_with_its_figures(credited):
    work, _ = credited
    note = json.loads((work / "out" / "credit_notes" / "MTH-001-001-CN001.json").read_text())["credit_note"]
    assert (note["invoice_number"], note["issuing_date"], note["reason"], note["sub_total_excluding_taxes_amount_cents"],
            note["taxes_amount_cents"], note["total_amount_cents"], note["credit_amount_cents"],
            note["refund_amount_cents"], note["balance_amount_cents"], note["credit_status"], note["refund_status"]) == (
        "MTH-001-001", "2026-11-05", "duplicated_charge", 400, 80, 480, 180, 300, 0, "consumed", "pending")
    assert [(i["amount_cents"], i["fee"]["item"]["filter_invoice_display_name"]) for i in note["items"]] == [(400, "Large")]
    assert [(t["tax_code"], t["base_amount_cents"], t["amount_cents"]) for t in note["applied_taxes"]] == [("vat20", 400, 80)]


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_credit_note_and_the_invoices_validate_against_lagos_schemas(credited):
    work, _ = credited
    assert_lago_schemas(work / "out", folders=(("credit_notes", "CreditNote"), ("invoices", "Invoice")))


def test_the_next_invoice_takes_the_credit_before_the_wallet(credited):
    work, _ = credited
    november = published_invoice(work / "out", "MTH-001-002")
    assert (november["sub_total_including_taxes_amount_cents"], november["credit_notes_amount_cents"],
            november["prepaid_credit_amount_cents"], november["total_amount_cents"]) == (1320, 180, 0, 1140)
    assert [(c["item"]["type"], c["item"]["code"], c["amount_cents"], c["before_taxes"]) for c in november["credits"]] == [
        ("credit_note", "MTH-001-001-CN001", 180, False)]


def test_the_credit_note_and_the_invoice_it_pays_are_documents_too(credited):
    work, _ = credited
    note = (work / "out" / "documents" / "MTH-001-001-CN001.html").read_text()
    for text in ("Credit note", "MTH-001-001-CN001", "MTH-001-001 of 2026-11-01", "Duplicated charge", "Large tokens billed twice",
                 "AI Tokens — Large", "4.00 USD", "VAT (20 %) on 4.00 USD", "0.80 USD", "4.80 USD", "1.80 USD", "3.00 USD"):
        assert text in note, text
    assert (work / "out" / "documents" / "MTH-001-001-CN001.pdf").read_bytes().startswith(b"%PDF")
    november = (work / "out" / "documents" / "MTH-001-002.html").read_text()
    assert "Credit note MTH-001-001-CN001" in november and "-1.80 USD" in november and "11.40 USD" in november


def test_the_corrected_invoice_never_changes(credited):
    # neither its figures nor its due date (issued 2026-11-01 with no payment term: due that day); its
    # JSON's `customer` shows the customer as it is now (its new payment term), as Lago's API does
    work, before = credited
    after = snapshot(work / "out")
    for name in ("documents/MTH-001-001.html", "documents/MTH-001-001.pdf"):
        assert after[name] == before[name], name
    old, new = (json.loads(files["invoices/MTH-001-001.json"])["invoice"] for files in (before, after))
    assert {k: v for k, v in new.items() if k != "customer"} == {k: v for k, v in old.items() if k != "customer"}
    assert new["payment_due_date"] == "2026-11-01" and new["customer"]["net_payment_term"] == 30


def test_an_invoice_issued_after_the_term_changed_is_due_30_days_later(credited):
    work, _ = credited
    november = published_invoice(work / "out", "MTH-001-002")
    assert (november["issuing_date"], november["net_payment_term"], november["payment_due_date"]) == (
        "2026-12-01", 30, "2026-12-31")


def test_the_marts_hold_the_credit_note_and_net_the_refund_from_gross_revenue(credited):
    work, _ = credited
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    assert con.execute(
        "select number, credit_amount_cents, refund_amount_cents, balance_amount_cents, credit_status from marts.fct_credit_notes"
    ).fetchall() == [("MTH-001-001-CN001", 180, 300, 0, "consumed")]
    assert con.execute(
        "select number, credit_notes_amount_cents, total_amount_cents from marts.fct_invoices order by number"
    ).fetchall() == [("MTH-001-001", 0, 920), ("MTH-001-002", 180, 1140)]
    assert con.execute("select month::varchar, amount_cents from marts.fct_gross_revenue order by month").fetchall() == [
        ("2026-11-01", 620), ("2026-12-01", 1140)]


def test_a_rerun_with_the_credit_note_changes_no_byte(credited):
    work, _ = credited
    first = snapshot(work / "out")
    _bill(work, "2026-12-02")
    assert snapshot(work / "out") == first


def _copy(work, to):
    shutil.copytree(work, to, ignore=shutil.ignore_patterns("*.dbt", "*.pdf-cache"))
    return to


def _run(work, through):
    """`meterhouse run` on a work folder, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(work / "catalog"), "--events",
         str(work / "events"), "--warehouse", str(work / "warehouse.duckdb"), "--out", str(work / "out"),
         "--through", through, "--payments", str(SCENARIO / "payments")],
        capture_output=True, text=True, cwd=REPO,
    )


def _small_fee_id(work):
    october = published_invoice(work / "out", "MTH-001-001")
    return next(f for f in october["fees"] if f["item"]["filter_invoice_display_name"] == "small")["lago_id"]


def test_a_note_filed_before_an_issued_one_takes_the_next_number_and_a_void_cannot_be_undone(credited, tmp_path):
    """A second note on October's invoice (small tokens, 2.00 + 0.40 of VAT, all as credit), dated like the first
    and in a file that sorts first, voided on 2026-12-01: it is MTH-001-001-CN002 (CN001 stays the first note's).
    The November invoice was finalized with CN001's 1.80 only: CN002's 2.40 stays unused until its void."""
    work = _copy(credited[0], tmp_path / "work")
    second = {"credit_note": {"invoice_id": "MTH-001-001", "reason": "order_change", "credit_amount_cents": 240,
                              "items": [{"fee_id": _small_fee_id(work), "amount_cents": 200}],
                              "created_at": "2026-11-05T09:00:00Z", "voided_at": "2026-12-01T00:00:00Z"}}
    (work / "catalog" / "a_second.json").write_text(json.dumps(second))
    assert _run(work, "2026-12-02").returncode == 0
    notes = {p.name: json.loads(p.read_text())["credit_note"] for p in (work / "out" / "credit_notes").iterdir()}
    cn2 = notes["MTH-001-001-CN002.json"]
    assert (cn2["reason"], cn2["credit_amount_cents"], cn2["balance_amount_cents"], cn2["credit_status"]) == (
        "order_change", 240, 0, "voided")
    assert notes["MTH-001-001-CN001.json"]["description"] == "Large tokens billed twice"
    # the void, once recorded, cannot be taken back
    del second["credit_note"]["voided_at"]
    (work / "catalog" / "a_second.json").write_text(json.dumps(second))
    undone = _run(work, "2026-12-02")
    assert undone.returncode == 2
    assert ("credit note MTH-001-001-CN002 was voided on 2026-12-01 by an earlier run: a void cannot be undone or "
            "moved (its voided_at must stay 2026-12-01)") in undone.stderr
    # billing again as of an earlier day, before either note: nothing refused
    assert _run(work, "2026-11-04").returncode == 0


def test_a_credit_note_larger_than_its_fee_is_refused_and_nothing_is_billed(credited, tmp_path):
    copy = _copy(credited[0], tmp_path / "work")
    (copy / "catalog" / "more.json").write_text(json.dumps({"credit_note": {
        "invoice_id": "MTH-001-001", "credit_amount_cents": 6000,
        "items": [{"fee_id": _small_fee_id(copy), "amount_cents": 5000}], "created_at": "2026-11-06T00:00:00Z"}}))
    before = snapshot(copy / "out")
    result = _run(copy, "2026-12-02")
    assert result.returncode == 2, result.stderr[-2000:]
    assert ("more.json, body 1 (credit_note 'MTH-001-001'), field items.0.amount_cents: 5000 is more than the 200 "
            "cents left to credit on this fee") in result.stderr
    assert snapshot(copy / "out") == before


def test_the_month_a_credit_note_is_issued_in_holds_it_in_its_period_folder(credited):
    """outputs/period_invoices for November (invoked on the billed warehouse): October's invoice was
    issued in a period that starts in October, the credit note in November."""
    import dagster as dg

    from dagster_project.defs.outputs import period_invoices
    from dagster_project.defs.resources import MeterhouseSettings

    work, _ = credited
    settings = MeterhouseSettings(catalog_dir=str(work / "catalog"), events_dir=str(work / "events"),
                                  warehouse_path=str(work / "warehouse.duckdb"), out_dir=str(work / "out"))
    period_invoices(dg.build_asset_context(partition_key="2026-11-01"), settings)
    folder = work / "out" / "periods" / "2026-11"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["credit_notes"] == [{"number": "MTH-001-001-CN001", "invoice_number": "MTH-001-001",
                                         "external_customer_id": "acme", "currency": "USD", "total_amount_cents": 480,
                                         "credit_amount_cents": 180, "refund_amount_cents": 300}]
    assert {p.name for p in folder.iterdir() if "CN" in p.name} == {
        "MTH-001-001-CN001.json", "MTH-001-001-CN001.html", "MTH-001-001-CN001.pdf"}


def test_pricing_codestral_later_leaves_the_finalized_line_and_its_name_as_they_were(credited, tmp_path):
    """The warning is followed: the plan gains a filter for codestral at 2.00 per million. Invoices finalized
    before keep their line, named as it was; only usage still to be invoiced is priced."""
    work = _copy(credited[0], tmp_path / "work")
    bodies = json.loads((work / "catalog" / "catalog.json").read_text())
    plan = next(b for b in bodies if "plan" in b)["plan"]
    plan["charges"][0]["filters"].append({"values": {"model": ["codestral"]},
                                          "properties": {"amount": "2", "package_size": 1000000}})
    next(b for b in bodies if "billable_metric" in b)["billable_metric"]["filters"][0]["values"].append("codestral")
    (work / "catalog" / "catalog.json").write_text(json.dumps(bodies))
    before = (work / "out" / "invoices" / "MTH-001-001.json").read_bytes()
    assert _run(work, "2026-12-02").returncode == 0
    assert (work / "out" / "invoices" / "MTH-001-001.json").read_bytes() == before
    names = [f["item"]["filter_invoice_display_name"] for f in published_invoice(work / "out", "MTH-001-001")["fees"]]
    assert "codestral; no filter values (not priced)" in names
