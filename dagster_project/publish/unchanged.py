"""Published files recognized as unchanged without building them.

Each output file is made by a pure function of some warehouse rows (an invoice's JSON and its HTML
and PDF documents from the invoice, its fees, taxes, credits, customer and seller; a current-usage
file from its period and buckets; a wallet's two files from the wallet, its rules, balance and
ledger) and of the code. `group_digest` is the SHA-256 of those rows, digested in the warehouse
(`store.publish_reads.group_digests`: each table's rows of the group as JSON, sorted, MD5), and of
the code (`code_fingerprint`). After a publish, `state.published_files` keeps, for
every file written or found holding the right bytes, the digest it was made from and the file's
size, modification time and change time (nanoseconds).

A later publish builds nothing for a group of files (`Publication.recognize`) when every one of
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
from pathlib import Path
from typing import NamedTuple

import polars as pl

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
    fingerprint (fpdf2, fonttools, jinja2, the font: `invoice_document.renderer`), of orjson's
    version and of `FORMAT_VERSION`: any of them changed, every file is built again."""
    digest = hashlib.sha256(f"format {FORMAT_VERSION}\norjson {importlib.metadata.version('orjson')}\n".encode())
    digest.update(json_bytes({"renderer": invoice_document.renderer()}))
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


class Stamp(NamedTuple):
    """What a published file was made from (`inputs_sha256`; its document's cache key for an HTML
    or PDF) and how it was when it was last written or checked. (A tuple: a publish of 100,000
    invoices reads, compares and records half a million of them.)"""
    inputs_sha256: str
    document_key: str | None
    size: int
    mtime_ns: int
    ctime_ns: int


def stamp_of(path: str, inputs_sha256: str, document_key: str | None = None) -> Stamp | None:
    """`path`'s stamp as it is now, made from `inputs_sha256`; None if there is no such file."""
    stat = _stat_or_none(path)
    return None if stat is None else Stamp(inputs_sha256, document_key, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _stat_or_none(path: str, dir_fd: int | None = None) -> os.stat_result | None:
    try:
        return os.stat(path, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None


# A published file's stamp as a row; `recorded`, `kept` and what `write` returns are frames of them
# (a day at 100,000 subscriptions recognizes half a million files unchanged: as Python objects,
# reading, comparing and recording them cost seconds).
STAMP_SCHEMA = {"folder": pl.String, "name": pl.String, "inputs_sha256": pl.String, "document_key": pl.String,
                "size": pl.Int64, "mtime_ns": pl.Int64, "ctime_ns": pl.Int64}
# Each file of each group of files (`k`: the group's key), and the digest of the group's inputs.
GROUP_FILES_SCHEMA = {"k": pl.String, "folder": pl.String, "name": pl.String, "digest": pl.String}


def stamps_frame(stamps: dict[tuple[str, str], Stamp]) -> pl.DataFrame:
    """`stamps` (by folder and name) as rows of `STAMP_SCHEMA`."""
    return pl.DataFrame([(folder, name, *s) for (folder, name), s in stamps.items()], schema=STAMP_SCHEMA, orient="row")


class Publication:
    """One publish into `out_dir`: each file built this run (`add`) or recognized unchanged
    (`recognize`), by folder; `write` writes the folders and returns each file's new stamp.
    `flush` writes what was built so far and lets go of it (a publish of 100,000 invoices holds
    their documents a part at a time); `write` then writes the rest and removes the files no
    longer published. `recorded`: the stamps recorded by the last publish (`STAMP_SCHEMA`)."""

    def __init__(self, out_dir: Path, recorded: pl.DataFrame | None = None):
        self.out_dir = out_dir
        self.recorded = pl.DataFrame(schema=STAMP_SCHEMA) if recorded is None else recorded
        self.built: dict[str, dict[str, dict | bytes]] = {}
        self.kept: list[pl.DataFrame] = []  # the recorded stamps of the files recognized unchanged
        self.made_from: dict[tuple[str, str], tuple[str, str | None]] = {}
        self.flushed: dict[str, dict[str, Stamp | None]] = {}  # written by `flush`: their stamps
        self._folders: dict[str, int | None] = {}  # opened by `_stat`, closed by `close`

    def recognize(self, files: pl.DataFrame) -> set[str]:
        """The keys of the groups of `files` (`GROUP_FILES_SCHEMA`: every file of each group) whose
        every file was recorded as made from the group's digest and still has its recorded size and
        times; those files are kept as they are. Only the files of groups whose every file was
        recorded from their digest are looked at on disk."""
        recorded = files.join(self.recorded, left_on=["folder", "name", "digest"],
                              right_on=["folder", "name", "inputs_sha256"], how="inner")
        complete = (recorded.group_by("k").len().join(files.group_by("k").len(), on="k", suffix="_files")
                    .filter(pl.col("len") == pl.col("len_files")).select("k"))
        candidates = recorded.join(complete, on="k", how="semi")
        stats = [self._stat(folder, name) for folder, name in zip(candidates["folder"].to_list(),
                                                                  candidates["name"].to_list(), strict=True)]
        on_disk = pl.DataFrame({
            "size_now": [None if s is None else s.st_size for s in stats],
            "mtime_now": [None if s is None else s.st_mtime_ns for s in stats],
            "ctime_now": [None if s is None else s.st_ctime_ns for s in stats],
        }, schema={"size_now": pl.Int64, "mtime_now": pl.Int64, "ctime_now": pl.Int64})
        checked = pl.concat([candidates, on_disk], how="horizontal").with_columns(same=(
            (pl.col("size_now") == pl.col("size")) & (pl.col("mtime_now") == pl.col("mtime_ns"))
            & (pl.col("ctime_now") == pl.col("ctime_ns"))).fill_null(False))
        unchanged = checked.group_by("k").agg(pl.col("same").all()).filter("same").select("k")
        kept = checked.join(unchanged, on="k", how="semi")
        self.kept.append(kept.select(*(pl.col("digest" if c == "inputs_sha256" else c).alias(c) for c in STAMP_SCHEMA)))
        return set(unchanged["k"].to_list())

    def unchanged(self, files: dict[str, list[str]], digest: str) -> bool:
        """Whether the one group of `files` (folder: names), made from `digest`, is recognized
        unchanged (`recognize`)."""
        group = [("", folder, name, digest) for folder, names in files.items() for name in names]
        return bool(self.recognize(pl.DataFrame(group, schema=GROUP_FILES_SCHEMA, orient="row")))

    def _stat(self, folder: str, name: str) -> os.stat_result | None:
        """The file's status, or None if there is none. Looked up from its folder's open descriptor
        where the system allows it (half a million files on a day at 100,000 subscriptions: each
        full path walked again cost a third more)."""
        if os.stat not in os.supports_dir_fd:
            return _stat_or_none(os.path.join(self.out_dir, folder, name))
        if folder not in self._folders:
            try:
                self._folders[folder] = os.open(os.path.join(self.out_dir, folder), os.O_RDONLY | os.O_DIRECTORY)
            except (FileNotFoundError, NotADirectoryError):
                self._folders[folder] = None
        fd = self._folders[folder]
        return None if fd is None else _stat_or_none(name, dir_fd=fd)

    def close(self) -> None:
        """Close the folders opened to look files up (`write` does it)."""
        for fd in self._folders.values():
            if fd is not None:
                os.close(fd)
        self._folders.clear()

    def add(self, folder: str, name: str, document: dict | bytes, digest: str, document_key: str | None = None) -> None:
        self.built.setdefault(folder, {})[name] = document
        self.made_from[folder, name] = (digest, document_key)

    def _kept(self) -> pl.DataFrame:
        return pl.concat(self.kept) if self.kept else pl.DataFrame(schema=STAMP_SCHEMA)

    def names(self, folder: str) -> list[str]:
        """The files of `folder` this run publishes, built or kept."""
        kept = self._kept().filter(pl.col("folder") == folder)["name"].to_list()
        return [*self.flushed.get(folder, {}), *self.built.get(folder, {}), *kept]

    def kept_document_keys(self) -> set[str]:
        return set(self._kept()["document_key"].drop_nulls().to_list())

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

    def write(self, folders: list[str]) -> pl.DataFrame:
        """Write each of `folders` (`replace_folder`: a built file only where its bytes differ; kept
        and flushed files stay; any other file is removed), and return the stamp of every file
        published (`STAMP_SCHEMA`)."""
        self.close()
        kept = self._kept().filter(pl.col("folder").is_in(folders))
        stamps: dict[tuple[str, str], Stamp | None] = {}
        for folder in folders:
            built, flushed = self.built.get(folder, {}), self.flushed.get(folder, {})
            kept_names = set(kept.filter(pl.col("folder") == folder)["name"].to_list())
            replace_folder(self.out_dir / folder, built, keep=kept_names | flushed.keys())
            stamps.update({(folder, name): s for name, s in flushed.items()})
            stamps.update({(folder, name): s for name, s in self._stamps(folder, built).items()})
        return pl.concat([self._recordable(stamps), kept])

    def recordable(self, folder: str) -> pl.DataFrame:
        """The stamps of the files of `folder` written by `flush` so far that can be recorded now."""
        return self._recordable({(folder, name): s for name, s in self.flushed.get(folder, {}).items()})

    def _recordable(self, stamps: dict[tuple[str, str], Stamp | None]) -> pl.DataFrame:
        """Of `stamps`, those of files written before the file system's current clock tick (a file
        written in it could still change without changing its times: not recorded)."""
        now = filesystem_now(self.out_dir)
        return stamps_frame({key: s for key, s in stamps.items() if s is not None and s.mtime_ns < now and s.ctime_ns < now})


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
