"""A day's publish recognizes unchanged files without building them (issue #25), on
tests/scenarios/eu_vat (figures in tests/test_cli.py's docstring):

- billed through Nov 2: MIS-001-001, MIS-002-001 and MIS-003-001 finalized (6 documents), us_customer's
  invoice a draft of 16.00 EUR (3-day grace period), fr_consumer's wallet;
- then through Nov 3, a day with one event (0.6M input tokens for us_customer's October) and no new
  finalized invoice: only the draft changes (16.00 -> 18.00 EUR: 3 packages of 2.00 instead of 2).

Counted, never timed: what the run says it built (its log), and in-process, calls to the builders
and renderers themselves (replaced by spies or by functions that fail the test).
"""

import json
import os
import shutil
from decimal import Decimal

import duckdb
import pytest

from dagster_project.publish import invoice_document, lago_json, unchanged
from dagster_project.publish.outputs import publish
from dagster_project.publish.pdf_cache import PdfCache
from dagster_project.store import publish_reads, publish_state
from tests.conftest import REPO, run_meterhouse

SCENARIO = REPO / "tests" / "scenarios" / "eu_vat"
FINALIZED = ["MIS-001-001", "MIS-002-001", "MIS-003-001"]


def files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def published(tree):
    """The files `publish` writes (`reports/` is the revenue report asset's)."""
    return {name: data for name, data in tree.items() if not name.startswith("reports/")}


def inodes(out):
    return {str(p.relative_to(out)): p.stat().st_ino for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    """The scenario billed through Nov 2, then through Nov 3: the output files after each, the
    inodes after the first, and the second run's own log."""
    work = tmp_path_factory.mktemp("daily_publish")
    shutil.copytree(SCENARIO / "events", work / "events")
    out = run_meterhouse(SCENARIO / "catalog", work / "events", work, "2026-11-02")
    first, first_inodes = files(out), inodes(out)
    log = work / "warehouse.duckdb.log"
    first_log = log.read_text()
    run_meterhouse(SCENARIO / "catalog", work / "events", work, "2026-11-03")
    return {"work": work, "first": first, "first_inodes": first_inodes, "second": files(out),
            "second_inodes": inodes(out), "second_log": log.read_text()[len(first_log):]}


@pytest.fixture
def copy(billed, tmp_path):
    """The billed warehouse, outputs and document cache copied, and published once into the copy
    (another folder: everything is built there once, with nothing rendered)."""
    work = billed["work"]
    for name in ("warehouse.duckdb", "out", "warehouse.duckdb.pdf-cache"):
        source = work / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("set TimeZone = 'UTC'")
    summary = publish(con, tmp_path / "out", tmp_path / "warehouse.duckdb.pdf-cache")
    assert summary["documents_rendered"] == 0 and summary["invoices_built"] == 4
    yield con, tmp_path
    con.close()


def again(con, folder):
    return publish(con, folder / "out", folder / "warehouse.duckdb.pdf-cache")


def test_a_day_with_no_new_invoice_renders_no_document_and_builds_only_the_changed_draft(billed):
    """The Nov 3 run: of the 4 invoices, only the draft whose usage changed is built (its file
    changed: 16.00 -> 18.00 EUR); the 3 finalized invoices and their 6 documents are neither built
    nor rewritten (same bytes, same inodes), and no document is rendered."""
    log = billed["second_log"]
    assert "document files rendered: 0 of 6 " in log
    assert "built: 1 invoices, 0 of 0 credit notes, " in log
    draft = next(name for name in billed["second"] if name.startswith("invoices/draft-"))
    assert billed["first"][draft] != billed["second"][draft]
    assert json.loads(billed["first"][draft])["invoice"]["total_amount_cents"] == 1600
    assert json.loads(billed["second"][draft])["invoice"]["total_amount_cents"] == 1800
    for number in FINALIZED:
        for name in (f"invoices/{number}.json", f"documents/{number}.html", f"documents/{number}.pdf"):
            assert billed["second"][name] == billed["first"][name]
            assert billed["second_inodes"][name] == billed["first_inodes"][name]  # not written again


def test_a_wallet_whose_balance_and_ongoing_usage_did_not_move_is_neither_built_nor_written(billed):
    """fr_consumer's wallet: its credits paid MIS-003-001 on Nov 2 (its last transaction) and its
    customer has no event on Nov 3, so the Nov 3 run leaves its file alone (same bytes, same inode),
    and says so. Its `last_balance_sync_at` is the day its balance last changed, as Lago stamps it
    (on credits in or out, not on each refresh): its ledger's last `settled_at`, not the billing date."""
    (name,) = [n for n in billed["second"] if n.startswith("wallets/")]
    assert billed["second"][name] == billed["first"][name]
    assert billed["second_inodes"][name] == billed["first_inodes"][name]  # not written again
    assert "0 of 1 wallets (the others recognized unchanged, not built)" in billed["second_log"]
    ledger = json.loads(billed["second"][name.replace("wallets/", "wallet_transactions/")])["wallet_transactions"]
    last_settled = max(t["settled_at"] for t in ledger if t["status"] == "settled")
    assert json.loads(billed["second"][name])["wallet"]["last_balance_sync_at"] == last_settled == "2026-11-02T00:00:00Z"


def test_a_publish_with_nothing_changed_builds_and_renders_nothing_and_leaves_every_file(copy, monkeypatch):
    con, folder = copy
    before, before_inodes = files(folder / "out"), inodes(folder / "out")

    def fail(*args, **kwargs):
        pytest.fail("a file was built although nothing changed")

    for module, name in ((lago_json, "invoice_object"), (lago_json, "credit_note_object"),
                         (lago_json, "customer_usage_object"), (lago_json, "wallet_object"),
                         (invoice_document, "invoice_view"), (invoice_document, "render_pdfs"),
                         (invoice_document, "render_html")):
        monkeypatch.setattr(module, name, fail)
    summary = again(con, folder)
    assert {k: summary[k] for k in ("documents_rendered", "invoices_built", "credit_notes_built",
                                    "current_usage_built", "wallets_built")} == dict.fromkeys(
        ("documents_rendered", "invoices_built", "credit_notes_built", "current_usage_built", "wallets_built"), 0)
    assert summary["invoice_documents"] == 6 and summary["invoices_finalized"] == 3 and summary["wallets"] == 1
    after = files(folder / "out")
    assert after == before
    # run_summary.json is written each run (same bytes); no other file is written again
    assert {n for n, i in inodes(folder / "out").items() if before_inodes[n] != i} == {"run_summary.json"}


def test_a_changed_fee_builds_its_invoice_and_renders_its_documents_again(copy, monkeypatch):
    """One fee of MIS-002-001 (de_consumer) raised by 1.00 EUR: its JSON shows 100 cents more on that
    fee, and its HTML and PDF are rendered again (2 files); the other invoices are not built."""
    con, folder = copy
    fee_id, cents = con.execute(
        """select f.fee_id, f.amount_cents from marts.fct_fee_lines f join billing.invoices i using (invoice_id)
           where i.number = 'MIS-002-001' and f.amount_cents > 0 order by f.fee_id limit 1""").fetchone()
    con.execute("update billing.fees set amount_cents = amount_cents + 100 where fee_id = ?", [fee_id])  # (the mart is a view of it)
    before = files(folder / "out")
    built = []
    original = lago_json.invoice_object
    monkeypatch.setattr(lago_json, "invoice_object", lambda inv, *a: built.append(inv["number"]) or original(inv, *a))
    summary = again(con, folder)
    assert built == ["MIS-002-001"] and summary["invoices_built"] == 1
    assert summary["documents_rendered"] == 2
    after = files(folder / "out")
    changed = sorted(n for n in after if after[n] != before[n])
    assert changed == ["documents/MIS-002-001.html", "documents/MIS-002-001.pdf", "invoices/MIS-002-001.json"]
    fees = {f["lago_id"]: f for f in json.loads(after["invoices/MIS-002-001.json"])["invoice"]["fees"]}
    was = {f["lago_id"]: f for f in json.loads(before["invoices/MIS-002-001.json"])["invoice"]["fees"]}
    assert fees[fee_id]["amount_cents"] == was[fee_id]["amount_cents"] + 100 == cents + 100


def test_only_the_rows_of_the_changed_invoice_are_read(copy, monkeypatch):
    """One fee of MIS-002-001 changed: of the 4 invoices, 4 current-usage files and 1 wallet, the
    publish reads the rows of that invoice alone (its invoice row and its fees), none of any current
    usage or wallet (their digests, made in the warehouse, are as recorded)."""
    con, folder = copy
    raise_fee(con, "MIS-002-001", 100)
    read: dict[str, list] = {}
    for name in ("invoices", "fees", "current_usage", "wallets", "wallet_transactions"):
        original = getattr(publish_reads, name)
        monkeypatch.setattr(publish_reads, name, lambda *a, original=original, name=name: read.setdefault(name, []).append(
            found := original(*a)) or found)
    invoice_id = con.execute("select invoice_id from billing.invoices where number = 'MIS-002-001'").fetchone()[0]
    summary = again(con, folder)
    assert summary["invoices_built"] == 1 and summary["current_usage_subscriptions"] == 4 and summary["wallets"] == 1
    assert [[i["number"] for i in found] for found in read["invoices"]] == [["MIS-002-001"], ["MIS-002-001"]]  # (invoices, notes)
    assert {f["invoice_id"] for f in read["fees"][0]} == {invoice_id} and len(read["fees"]) == 1
    assert read["current_usage"] == [[]] and read["wallets"] == [[]] and read["wallet_transactions"] == [{}]


def raise_fee(con, number, cents):
    con.execute("""update billing.fees set amount_cents = amount_cents + ? where fee_id = (
                       select f.fee_id from marts.fct_fee_lines f join billing.invoices i using (invoice_id)
                       where i.number = ? and f.amount_cents > 0 order by f.fee_id limit 1)""", [cents, number])


def test_a_rendered_document_is_written_once_where_it_is_published(copy, monkeypatch, tmp_path_factory):
    """A fee of MIS-002-001 raised: its HTML and PDF are rendered (2 files) and written into
    documents/ alone when both are recorded (`state.published_files`), not into the document cache
    too; a publish into another folder then reads them from there (nothing rendered). When they
    cannot be recorded (written within the file system's current clock tick: `filesystem_now`,
    replaced here so as not to depend on timing), the cache keeps them."""
    con, folder = copy
    cache = folder / "warehouse.duckdb.pdf-cache"
    cached = {p.name for p in cache.iterdir()}
    monkeypatch.setattr(unchanged, "filesystem_now", lambda _: 2**62)  # every file older than "now"
    raise_fee(con, "MIS-002-001", 100)
    assert again(con, folder)["documents_rendered"] == 2
    assert {p.name for p in cache.iterdir()} <= cached  # no file added (the old document's files may go)
    elsewhere = publish(con, tmp_path_factory.mktemp("elsewhere") / "out", cache)
    assert elsewhere["documents_rendered"] == 0 and elsewhere["invoices_built"] == 4
    monkeypatch.setattr(unchanged, "filesystem_now", lambda _: 0)  # every file too new to be recorded
    raise_fee(con, "MIS-002-001", 100)
    assert again(con, folder)["documents_rendered"] == 2
    recorded = con.execute("select count(*) from state.published_files where out_dir = ? and folder = 'documents' "
                           "and name like 'MIS-002-001.%'", [str((folder / "out").resolve())]).fetchone()[0]
    assert recorded == 0
    added = {p.name for p in cache.iterdir()} - cached
    assert len(added) == 2 and {name.rsplit(".", 1)[1] for name in added} == {"html", "pdf"}


def test_a_changed_balance_builds_the_wallet_and_not_its_ledger(copy, monkeypatch):
    """fr_consumer's wallet with 1.00 EUR more consumed (no transaction): its wallet file is built
    again and shows it; its ledger file is neither built nor rewritten."""
    con, folder = copy
    (wallet_id,) = con.execute("select wallet_id from billing.wallet_balances").fetchone()
    con.execute("update billing.wallet_balances set consumed_cents = consumed_cents + 100")
    before, before_inodes = files(folder / "out"), inodes(folder / "out")
    monkeypatch.setattr(lago_json, "wallet_transaction_object", lambda *a: pytest.fail("a ledger was built"))
    summary = again(con, folder)
    assert summary["wallets_built"] == 1
    after = files(folder / "out")
    assert sorted(n for n in after if after[n] != before[n]) == [f"wallets/{wallet_id}.json"]
    ledger = f"wallet_transactions/{wallet_id}.json"
    assert inodes(folder / "out")[ledger] == before_inodes[ledger]
    credits = [Decimal(json.loads(tree[f"wallets/{wallet_id}.json"])["wallet"]["consumed_credits"]) for tree in (before, after)]
    assert credits[1] - credits[0] == 1  # 100 cents at 1.00 EUR a credit (`rate_amount` "1")


def test_a_deleted_or_hand_edited_file_is_written_again_without_rendering(copy):
    """MIS-001-001.pdf deleted and MIS-003-001.json edited by hand with its size kept: both invoices
    are built again and their files get back their bytes; the PDF is read from the document cache or
    from another published copy still as recorded (the billed folder's), so nothing is rendered."""
    con, folder = copy
    out = folder / "out"
    before = files(out)
    (out / "documents" / "MIS-001-001.pdf").unlink()
    edited = out / "invoices" / "MIS-003-001.json"
    text = edited.read_bytes()
    edited.write_bytes(text.replace(b'"total_amount_cents": 1420', b'"total_amount_cents": 9999'))
    assert len(edited.read_bytes()) == len(text) and edited.read_bytes() != text
    summary = again(con, folder)
    assert summary["invoices_built"] == 2 and summary["documents_rendered"] == 0
    assert files(out) == before


def test_the_files_are_those_of_a_publish_from_nothing(billed, copy, tmp_path_factory):
    """The files kept from run to run are byte for byte those of a publish into an empty folder with
    no document cache (every file built and rendered)."""
    con, folder = copy
    fresh = tmp_path_factory.mktemp("fresh") / "out"
    summary = publish(con, fresh, None)
    assert summary["documents_rendered"] == 6 and summary["invoices_built"] == 4
    assert files(fresh) == published(files(folder / "out")) == published(billed["second"])
    assert files(fresh)["documents/MIS-001-001.pdf"] == billed["first"]["documents/MIS-001-001.pdf"]


def test_invoices_published_one_at_a_time_give_the_files_and_stamps_of_all_at_once(billed, copy, tmp_path_factory):
    """`invoices_at_once=1`: each of the 4 invoices is built, rendered and written (`flush`) before
    the next (as a publish of 100,000 invoices does 20,000 at a time): the same bytes as the run's
    own publish and as a publish of all 4 at once, and each file recorded as made from the same
    inputs (where both publishes recorded it: a file written in the clock's current tick is not)."""
    con, _ = copy
    whole, parts = (tmp_path_factory.mktemp(name) / "out" for name in ("whole", "parts"))
    publish(con, whole, None)
    summary = publish(con, parts, None, invoices_at_once=1)
    assert summary["invoices_built"] == 4 and summary["documents_rendered"] == 6
    assert files(parts) == files(whole) == published(billed["second"])
    # (those are by the same code: every file is also named here)
    names = set(files(parts))
    assert {f"invoices/{n}.json" for n in FINALIZED} | {f"documents/{n}.{x}" for n in FINALIZED for x in ("html", "pdf")} <= names
    assert [sum(n.startswith(f) for n in names) for f in ("invoices/draft-", "current_usage/", "wallets/")] == [1, 4, 1]
    digests = {out: {(folder, name): digest for folder, name, digest in publish_state.recorded(con, out).select(
        "folder", "name", "inputs_sha256").iter_rows()} for out in (whole, parts)}
    assert all(digests[whole].get(key, digest) == digest for key, digest in digests[parts].items())


def test_invoices_published_one_at_a_time_let_go_of_each_parts_documents(copy, monkeypatch, tmp_path_factory):
    """With a document cache and `invoices_at_once=1`, the documents rendered for a part are let go
    of (`PdfCache.save`) before the next part is rendered: never more than one invoice's documents
    held at once (the 3 finalized invoices, each a part of one document, and the draft, a part of
    none, rendered into an empty cache, no recorded copy read; then the final save, of none). Their files recorded (`filesystem_now` replaced so
    that every file is older than "now"), none goes into the cache as well."""
    con, _ = copy
    monkeypatch.setattr(unchanged, "filesystem_now", lambda _: 2**62)
    monkeypatch.setattr(publish_state, "published_documents", lambda _: {})  # no copy to read: render
    held = []
    save = PdfCache.save

    def counting_save(self, published_keys=frozenset()):
        held.append(len(self.pending))
        return save(self, published_keys)

    monkeypatch.setattr(PdfCache, "save", counting_save)
    cache = tmp_path_factory.mktemp("cache") / "pdf-cache"
    summary = publish(con, tmp_path_factory.mktemp("parts") / "out", cache, invoices_at_once=1)
    assert summary["documents_rendered"] == 6  # 3 finalized invoices' HTML and PDF (the draft has no document)
    assert sorted(held) == [0, 0, 1, 1, 1]  # the draft's part holds none, nor the final save
    assert not any(cache.iterdir())
