"""Published files recognized unchanged (`publish.unchanged`): by the digest of their inputs, and by
their size and times as recorded when they were written."""

import datetime as dt
import os
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from dagster_project.publish.unchanged import Publication, Stamp, group_digest
from dagster_project.store.publish_reads import group_digests


def digests(rows_a, rows_b=()) -> dict[str, str]:
    """`group_digests` of groups `g1` and `g2` of two parts (tables `a` and `b`, inserted in the
    order given), by key."""
    con = duckdb.connect()
    con.execute("create table a (k varchar, amount_cents bigint, precise decimal(18, 6), day date, note varchar)")
    con.execute("create table b (k varchar, amount_cents bigint)")
    for row in rows_a:
        con.execute("insert into a values (?, ?, ?, ?, ?)", row)
    for row in rows_b:
        con.execute("insert into b values (?, ?)", row)
    found = group_digests(con, "select 'g1' as k union all select 'g2'",
                          ["select a.k, a as r from a", "select b.k, b as r from b"])
    return {g["k"]: g["inputs"] for g in found}


ROW = ("g1", 400, Decimal("4.00"), dt.date(2026, 11, 1), None)


def test_a_groups_digest_is_that_of_its_rows_whatever_their_order_or_other_groups():
    other = ("g1", 401, Decimal("4.00"), dt.date(2026, 11, 1), None)
    assert digests([ROW, other])["g1"] == digests([other, ROW])["g1"]
    assert digests([ROW])["g1"] == digests([ROW, ("g2", 1, Decimal(1), None, None)])["g1"]


def test_a_groups_digest_changes_with_any_value_of_any_of_its_rows():
    """Each value changed by the least (a cent, a millionth, a day, a null made the text "NULL"), a
    row added to the other part, or a part's row moved to the other part: each a different digest."""
    variants = [[ROW], [("g1", 401, *ROW[2:])], [(*ROW[:2], Decimal("4.000001"), *ROW[3:])],
                [(*ROW[:3], dt.date(2026, 11, 2), None)], [(*ROW[:4], "NULL")]]
    found = [digests(rows)["g1"] for rows in variants]
    found += [digests([ROW], [("g1", 0)])["g1"], digests([], [("g1", 400)])["g1"]]
    assert len(set(found)) == len(found) == 7
    assert digests([ROW])["g2"] == "- -"  # no row in either part


def test_the_group_digest_covers_the_kind_and_the_inputs():
    assert len({group_digest("invoice", "a b"), group_digest("wallet", "a b"), group_digest("invoice", "a c")}) == 3


def by_file(stamps) -> dict[tuple[str, str], Stamp]:
    """A frame of stamps (what `Publication.write` returns) by folder and name."""
    return {(folder, name): Stamp(*rest) for folder, name, *rest in stamps.iter_rows()}


def publish_once(out, documents, digest, recorded=None):
    """One publish of `documents` ({folder: {name: bytes}}) as one group of files made from `digest`:
    (whether it was recognized unchanged, the stamps recorded)."""
    publication = Publication(out, recorded)
    files = {folder: list(names) for folder, names in documents.items()}
    unchanged = publication.unchanged(files, digest)
    if not unchanged:
        for folder, names in documents.items():
            for name, data in names.items():
                publication.add(folder, name, data, digest)
    return unchanged, publication.write(list(documents))


def stamped(out, documents, digest):
    """Published until every file is stamped (a file written in the file system's current clock
    tick is not stamped until a later publish finds it older)."""
    _, recorded = publish_once(out, documents, digest)
    while recorded.height < sum(map(len, documents.values())):
        _, recorded = publish_once(out, documents, digest, recorded)
    return recorded


DOCUMENTS = {"invoices": {"A-1.json": b'{"total": 1420}\n'}, "documents": {"A-1.pdf": b"%PDF-1"}}


def test_files_recorded_from_the_same_inputs_and_untouched_are_not_built(tmp_path):
    recorded = stamped(tmp_path, DOCUMENTS, "d1")
    assert sorted(by_file(recorded)) == [("documents", "A-1.pdf"), ("invoices", "A-1.json")]
    unchanged, again = publish_once(tmp_path, DOCUMENTS, "d1", recorded)
    assert unchanged and by_file(again) == by_file(recorded)


def test_other_inputs_build_the_files_again(tmp_path):
    recorded = stamped(tmp_path, DOCUMENTS, "d1")
    changed = {"invoices": {"A-1.json": b'{"total": 1520}\n'}, "documents": {"A-1.pdf": b"%PDF-2"}}
    unchanged, _ = publish_once(tmp_path, changed, "d2", recorded)
    assert not unchanged
    assert (tmp_path / "invoices" / "A-1.json").read_bytes() == b'{"total": 1520}\n'


def test_a_deleted_or_edited_file_of_the_same_size_is_built_again(tmp_path):
    recorded = stamped(tmp_path, DOCUMENTS, "d1")
    (tmp_path / "documents" / "A-1.pdf").unlink()
    assert not publish_once(tmp_path, DOCUMENTS, "d1", recorded)[0]
    assert (tmp_path / "documents" / "A-1.pdf").read_bytes() == b"%PDF-1"

    recorded = stamped(tmp_path, DOCUMENTS, "d1")
    edited = tmp_path / "invoices" / "A-1.json"
    edited.write_bytes(b'{"total": 9999}\n')  # the same size, in place (the same inode)
    unchanged, after = publish_once(tmp_path, DOCUMENTS, "d1", recorded)
    assert not unchanged and edited.read_bytes() == b'{"total": 1420}\n'


def test_a_file_not_older_than_the_publish_that_wrote_it_is_not_stamped(tmp_path):
    """Its times could be those of an edit in the same tick of the file system's clock."""
    publication = Publication(tmp_path)
    publication.add("invoices", "A-1.json", b"{}\n", "d1")
    future = 2**62  # its times set far ahead: never older than the publish's end
    publication.write(["invoices"])
    os.utime(tmp_path / "invoices" / "A-1.json", ns=(future, future))
    publication = Publication(tmp_path)
    publication.add("invoices", "A-1.json", b"{}\n", "d1")
    assert by_file(publication.write(["invoices"])) == {}


def test_files_no_longer_published_are_removed_and_kept_ones_stay(tmp_path):
    recorded = stamped(tmp_path, {"invoices": {"A-1.json": b"1\n", "A-2.json": b"2\n"}}, "d1")
    publication = Publication(tmp_path, recorded)
    assert publication.unchanged({"invoices": ["A-1.json"]}, "d1")
    assert by_file(publication.write(["invoices"])) == {("invoices", "A-1.json"): by_file(recorded)["invoices", "A-1.json"]}
    assert sorted(p.name for p in (tmp_path / "invoices").iterdir()) == ["A-1.json"]


def publish_in_two_parts(out, recorded=None):
    """A-1 built and flushed, then A-2 built and everything written (`write`): the stamps recorded."""
    publication = Publication(out, recorded)
    publication.add("invoices", "A-1.json", b"1\n", "d1")
    publication.flush(["invoices"])
    assert (out / "invoices" / "A-1.json").read_bytes() == b"1\n"  # written by the flush, not at the end
    publication.add("invoices", "A-2.json", b"2\n", "d2")
    assert publication.names("invoices") == ["A-1.json", "A-2.json"]
    return publication.write(["invoices"])


def test_files_flushed_before_the_end_are_kept_and_stamped_as_if_written_at_the_end(tmp_path):
    (tmp_path / "invoices").mkdir()
    (tmp_path / "invoices" / "OLD.json").write_bytes(b"0\n")  # no longer published: removed
    recorded = publish_in_two_parts(tmp_path)
    while recorded.height < 2:  # (a file written in the clock's current tick is stamped by a later publish)
        recorded = publish_in_two_parts(tmp_path, recorded)
    assert sorted(p.name for p in (tmp_path / "invoices").iterdir()) == ["A-1.json", "A-2.json"]
    assert {name: s.inputs_sha256 for (_, name), s in by_file(recorded).items()} == {"A-1.json": "d1", "A-2.json": "d2"}
    later = Publication(tmp_path, recorded)
    assert later.unchanged({"invoices": ["A-1.json"]}, "d1") and later.unchanged({"invoices": ["A-2.json"]}, "d2")


def test_a_folder_missing_or_replaced_by_a_file_holds_nothing_unchanged(tmp_path):
    recorded = stamped(tmp_path, DOCUMENTS, "d1")
    for folder in ("invoices", "documents"):
        for path in (tmp_path / folder).iterdir():
            path.unlink()
        (tmp_path / folder).rmdir()
    (tmp_path / "documents").write_bytes(b"")  # a file where the folder was
    publication = Publication(tmp_path, recorded)
    assert not publication.unchanged({"invoices": ["A-1.json"]}, "d1")
    assert not publication.unchanged({"documents": ["A-1.pdf"]}, "d1")
    publication.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc/self/fd to count open files in")
def test_the_folders_opened_to_recognize_files_are_closed_by_the_write(tmp_path):
    recorded = stamped(tmp_path, DOCUMENTS, "d1")
    before = len(os.listdir("/proc/self/fd"))
    publication = Publication(tmp_path, recorded)
    assert publication.unchanged({folder: list(names) for folder, names in DOCUMENTS.items()}, "d1")
    publication.write(list(DOCUMENTS))
    assert len(os.listdir("/proc/self/fd")) == before


def test_groups_are_recognized_together_each_on_its_own_files(tmp_path):
    """Three groups of two files, recognized in one call: the first as recorded, the second made
    from other inputs now, the third with one of its files edited. Only the first is unchanged, and
    only its files are kept (the others' are built again)."""
    files = {k: {"invoices": {f"{k}.json": f'"{k}"\n'.encode()}, "documents": {f"{k}.pdf": f"%PDF-{k}".encode()}}
             for k in ("A", "B", "C")}
    recorded = None
    while recorded is None or recorded.height < 6:  # (a file written in the clock's current tick is stamped later)
        publication = Publication(tmp_path, recorded)
        for k, documents in files.items():
            for folder, names in documents.items():
                for name, data in names.items():
                    publication.add(folder, name, data, f"d{k}")
        recorded = publication.write(["invoices", "documents"])
    (tmp_path / "documents" / "C.pdf").write_bytes(b"%PDF-X")
    publication = Publication(tmp_path, recorded)
    assert publication.recognize(_group_files(files, {"A": "dA", "B": "dB2", "C": "dC"})) == {"A"}
    assert sorted(publication.names("invoices") + publication.names("documents")) == ["A.json", "A.pdf"]
    assert sorted(by_file(publication.write(["invoices", "documents"]))) == [("documents", "A.pdf"), ("invoices", "A.json")]


def _group_files(files, digests):
    return pl.DataFrame([(k, folder, name, digests[k]) for k, documents in files.items()
                         for folder, names in documents.items() for name in names],
                        schema={"k": pl.String, "folder": pl.String, "name": pl.String, "digest": pl.String}, orient="row")
