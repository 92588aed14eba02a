"""What `meterhouse run` reads back after its steps: the invoices it shows (`pipeline.invoices`)."""

import datetime as dt

import duckdb

from dagster_project.pipeline import Invoice, invoices


def _warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute("""create table marts.fct_invoices as select * from (values
        ('inv-b', 'MH-0002', 'finalized', 'subscription', 'cust-2', date '2026-10-01', date '2026-10-31', 250, 'EUR'),
        ('inv-a', 'MH-0001', 'finalized', 'subscription', 'cust-1', date '2026-10-01', date '2026-10-31', 1200, 'EUR'),
        ('inv-c', 'MH-0003', 'draft', 'subscription', 'cust-3', date '2026-11-01', date '2026-11-30', 99, 'EUR')
    ) as t(invoice_id, number, status, invoice_type, external_customer_id, period_start_date, period_end_date,
           total_amount_cents, currency)""")
    con.close()
    return path


def test_every_invoice_by_number_without_a_set_of_earlier_ones(tmp_path):
    assert [i.invoice_id for i in invoices(_warehouse(tmp_path))] == ["inv-a", "inv-b", "inv-c"]


def test_given_the_invoices_finalized_before_only_those_finalized_since_and_the_drafts(tmp_path):
    read = invoices(_warehouse(tmp_path), finalized_before={"inv-a", "inv-x"})
    assert read == [
        Invoice("inv-b", "MH-0002", "finalized", "subscription", "cust-2", dt.date(2026, 10, 1), dt.date(2026, 10, 31), 250, "EUR"),
        Invoice("inv-c", "MH-0003", "draft", "subscription", "cust-3", dt.date(2026, 11, 1), dt.date(2026, 11, 30), 99, "EUR"),
    ]


def test_with_no_invoice_finalized_before_every_invoice(tmp_path):
    assert [i.invoice_id for i in invoices(_warehouse(tmp_path), finalized_before=set())] == ["inv-a", "inv-b", "inv-c"]
