"""The canonical JSON of every output file (`publish/files.json_bytes`) is byte for byte what the
standard library writes with `indent=2, sort_keys=True, ensure_ascii=False, default=str` and a
newline (the independent route), for every kind of value the outputs hold."""

import datetime as dt
import enum
import json
from decimal import Decimal

import pytest

from dagster_project.publish.files import json_bytes


class Status(str, enum.Enum):
    FINALIZED = "finalized"


def _standard(document) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


DOCUMENTS = [
    {"invoice": {"total_amount_cents": 12345, "currency": "EUR", "fees": [], "metadata": {}, "paid": False,
                 "voided_at": None, "taxes_rate": 19.6, "rate": 20, "units": Decimal("1234567.000000"),
                 "amount": Decimal("0.1"), "issuing_date": dt.date(2026, 11, 1),
                 "created_at": dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.timezone.utc),
                 "naive": dt.datetime(2026, 11, 1, 12, 30), "status": Status.FINALIZED,
                 "name": "Société Générale — Zürich ✓ 請求書", "zeta": 1, "Alpha": 2, "alpha": 3, "_x": 4, "é": 5}},
    {"wallet_transactions": [{"amount": "10.00000", "nested": [[], [{}], [1, [2, {"b": None, "a": True}]]]}]},
    {"big": 2**63 + 1, "negative": -(2**70)},  # beyond 64 bits: the standard library writes it
    {"tab\tand\nnewline": "quote \" backslash \\ control \x01 and emoji 🤖"},
    {},
    [],
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_canonical_json_is_the_standard_librarys_byte_for_byte(document):
    assert json_bytes(document) == _standard(document)


def test_a_document_with_integer_keys_is_written_as_the_standard_library_writes_it():
    document = {1: "one", 2: {"b": 1}}
    assert json_bytes(document) == _standard(document) == b'{\n  "1": "one",\n  "2": {\n    "b": 1\n  }\n}\n'


def test_a_folder_is_replaced_writing_only_the_files_whose_bytes_differ(tmp_path):
    """Same bytes: the file is left alone (same inode); other bytes of the same size or of another
    size: rewritten; a file no longer produced: removed; a `.partial` of another writer: kept."""
    from dagster_project.publish.files import replace_folder

    (tmp_path / "same.json").write_bytes(json_bytes({"a": 1}))
    (tmp_path / "same_size.json").write_bytes(json_bytes({"a": 2}))
    (tmp_path / "other_size.json").write_bytes(json_bytes({"a": 1234}))
    (tmp_path / "gone.pdf").write_bytes(b"%PDF-old")
    (tmp_path / "x.json.abc.partial").write_bytes(b"")
    before = (tmp_path / "same.json").stat().st_ino
    replace_folder(tmp_path, {"same.json": {"a": 1}, "same_size.json": {"a": 3}, "other_size.json": {"a": 5},
                              "new.pdf": b"%PDF-new"})
    assert (tmp_path / "same.json").stat().st_ino == before
    assert (tmp_path / "same_size.json").read_bytes() == b'{\n  "a": 3\n}\n'
    assert (tmp_path / "other_size.json").read_bytes() == b'{\n  "a": 5\n}\n'
    assert (tmp_path / "new.pdf").read_bytes() == b"%PDF-new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new.pdf", "other_size.json", "same.json", "same_size.json", "x.json.abc.partial"]
