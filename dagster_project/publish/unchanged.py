"""Published files recognized as unchanged without building them.

Each output file is made by a pure function of some warehouse rows (an invoice's JSON and its HTML
and PDF documents from the invoice, its fees, taxes, credits, customer and seller; a current-usage
file from its period and buckets; a wallet's two files from the wallet, its rules, balance and
ledger) and of the code. `group_digest` is the SHA-256 of those rows, digested in the warehouse
(`store.publish_reads.group_digests`: each table's rows of the group as JSON, sorted, MD5), and of
the code (`code_fingerprint`). After a publish, `state.published_files` keeps, for
every file written or found holding the right bytes, the digest it was made from and the file's
size, modification time and change time (nanoseconds).

A later publish builds nothing for a group of files (`Publication.unchanged`) when every one of
them is recorded with the same digest and still has the size and times recorded. A changed input
(a fee, a payment, a customer's name, the code) gives another digest, so the files are built again
and written if their bytes differ. A published file that was deleted, replaced or edited by hand
has another size or other times (an edit that keeps the size still sets the modification and change
times; the change time cannot be set back), so it is built again and rewritten. A file whose times
are not older than the end of the publish that wrote it is not stamped, since an edit within the
same tick of the file system's clock would keep them (`filesystem_now`). Only a file written with
the same size and both times restored (not possible without changing the clock) would go unnoticed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from dagster_project.publish import invoice_document
from dagster_project.publish.files import json_bytes, replace_folder, write_changed

PACKAGE = Path(__file__).resolve().parents[1]
# The code that makes the published files from the rows: the publisher, the billing rules it
# formats with (money, taxes, credits), and the queries that read the rows.
CODE = [PACKAGE / "publish", PACKAGE / "billing", PACKAGE / "store" / "publish_reads.py", PACKAGE / "store" / "periods.py"]
# Bump to build every file again once (a change of format that the code above does not show).
FORMAT_VERSION = 1


@functools.cache
def code_fingerprint() -> str:
    """The SHA-256 of every source file and template of `CODE`, of the document renderer's own
    fingerprint (fpdf2, fonttools, jinja2, the font: `invoice_document._renderer`), of orjson's
    version and of `FORMAT_VERSION`: any of them changed, every file is built again."""
    digest = hashlib.sha256(f"format {FORMAT_VERSION}\norjson {importlib.metadata.version('orjson')}\n".encode())
    digest.update(json_bytes({"renderer": invoice_document._renderer()}))
    for root in CODE:
        for path in sorted([root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())):
            if path.suffix != ".pyc":
                digest.update(f"\n{path.relative_to(PACKAGE)}\n".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def group_digest(kind: str, inputs: str) -> str:
    """The SHA-256 of what a group of files of `kind` is made from (`inputs`: the digests of its rows
    made in the warehouse, `store.publish_reads.group_digests`) and of the code that makes them."""
    return hashlib.sha256(f"{code_fingerprint()}\n{kind}\n{inputs}".encode()).hexdigest()


@dataclass(frozen=True)
class Stamp:
    """What a published file was made from (`inputs_sha256`; its document's cache key for an HTML
    or PDF) and how it was when it was last written or checked."""
    inputs_sha256: str
    document_key: str | None
    size: int
    mtime_ns: int
    ctime_ns: int


def stamp_of(path: str, inputs_sha256: str, document_key: str | None = None) -> Stamp | None:
    """`path`'s stamp as it is now, made from `inputs_sha256`; None if there is no such file."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return Stamp(inputs_sha256, document_key, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class Publication:
    """One publish into `out_dir`: each file built this run (`add`) or recognized unchanged
    (`unchanged`), by folder; `write` writes the folders and returns each file's new stamp.
    `flush` writes what was built so far and lets go of it (a publish of 100,000 invoices holds
    their documents a part at a time); `write` then writes the rest and removes the files no
    longer published."""

    def __init__(self, out_dir: Path, recorded: dict[tuple[str, str], Stamp]):
        self.out_dir = out_dir
        self.recorded = recorded
        self.built: dict[str, dict[str, dict | bytes]] = {}
        self.kept: dict[str, dict[str, Stamp]] = {}
        self.made_from: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.flushed: dict[str, dict[str, Stamp | None]] = {}  # written by `flush`: their stamps

    def unchanged(self, files: dict[str, list[str]], digest: str) -> bool:
        """Whether every file of `files` (folder: names) was recorded as made from `digest` and still
        has its recorded size and times; if so, they are kept as they are."""
        found = {}
        for folder, names in files.items():
            for name in names:
                recorded = self.recorded.get((folder, name))
                if recorded is None or recorded.inputs_sha256 != digest:
                    return False
                if stamp_of(os.path.join(self.out_dir, folder, name), digest, recorded.document_key) != recorded:
                    return False
                found[folder, name] = recorded
        for (folder, name), recorded in found.items():
            self.kept.setdefault(folder, {})[name] = recorded
        return True

    def add(self, folder: str, name: str, document: dict | bytes, digest: str, document_key: str | None = None) -> None:
        self.built.setdefault(folder, {})[name] = document
        self.made_from[folder, name] = (digest, document_key)

    def names(self, folder: str) -> list[str]:
        """The files of `folder` this run publishes, built or kept."""
        return [*self.flushed.get(folder, {}), *self.built.get(folder, {}), *self.kept.get(folder, {})]

    def kept_document_keys(self) -> set[str]:
        return {s.document_key for stamps in self.kept.values() for s in stamps.values() if s.document_key}

    def _stamps(self, folder: str, names) -> dict[str, Stamp | None]:
        base = os.path.join(self.out_dir, folder)
        return {name: stamp_of(os.path.join(base, name), *self.made_from[folder, name]) for name in names}

    def flush(self, folders: list[str]) -> None:
        """Write the files of `folders` built so far (where their bytes differ) and let go of their
        contents; `write` keeps them and their stamps as if it had written them."""
        for folder in folders:
            built = self.built.pop(folder, {})
            write_changed(self.out_dir / folder, built)
            self.flushed.setdefault(folder, {}).update(self._stamps(folder, built))

    def write(self, folders: list[str]) -> dict[tuple[str, str], Stamp]:
        """Write each of `folders` (`replace_folder`: a built file only where its bytes differ; kept
        and flushed files stay; any other file is removed), and return the stamp of every file
        published."""
        stamps: dict[tuple[str, str], Stamp | None] = {}
        for folder in folders:
            built, kept, flushed = self.built.get(folder, {}), self.kept.get(folder, {}), self.flushed.get(folder, {})
            replace_folder(self.out_dir / folder, built, keep=kept.keys() | flushed.keys())
            stamps.update({(folder, name): s for name, s in flushed.items()})
            stamps.update({(folder, name): s for name, s in self._stamps(folder, built).items()})
            stamps.update({(folder, name): s for name, s in kept.items()})
        return self._recordable(stamps)

    def recordable(self, folder: str) -> dict[tuple[str, str], Stamp]:
        """The stamps of the files of `folder` written by `flush` so far that can be recorded now."""
        return self._recordable({(folder, name): s for name, s in self.flushed.get(folder, {}).items()})

    def _recordable(self, stamps: dict[tuple[str, str], Stamp | None]) -> dict[tuple[str, str], Stamp]:
        """Of `stamps`, those of files written before the file system's current clock tick (a file
        written in it could still change without changing its times: not recorded)."""
        now = filesystem_now(self.out_dir)
        return {key: s for key, s in stamps.items() if s is not None and s.mtime_ns < now and s.ctime_ns < now}


def filesystem_now(folder: Path) -> int:
    """The file system's clock now, in nanoseconds (the times it gives a file written in `folder`).

    It ticks coarsely (a few milliseconds on Linux): a file edited in the same tick in which it was
    written keeps its times. So a file whose times are not older than this is not stamped (`write`
    drops its stamp: the next publish builds it again), as git treats a file as "racily clean"."""
    probe = folder / f".published-probe-{os.getpid()}.partial"
    probe.write_bytes(b"")
    try:
        return os.stat(probe).st_mtime_ns
    finally:
        probe.unlink()
