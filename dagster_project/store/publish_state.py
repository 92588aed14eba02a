"""`state.published_files`: what each published file was made from, and how it was when last written
or checked (`publish.unchanged`). One row per file of an output folder (`out_dir`, the folder's
absolute path, so that a publish into another folder finds nothing recorded and builds every file):
`folder` (`invoices`, `documents`, ...), `name`, `inputs_sha256`, `document_key` (an HTML or PDF's
key in the document cache, kept while its file is published), `size`, `mtime_ns`, `ctime_ns`.
Replaced whole for its `out_dir` at the end of each publish; deleting it only makes the next
publish build every file again."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from dagster_project.publish.unchanged import STAMP_SCHEMA, Stamp

_DDL = [
    "create schema if not exists state",
    """create table if not exists state.published_files (
        out_dir varchar not null, folder varchar not null, name varchar not null, inputs_sha256 varchar not null,
        document_key varchar, size bigint not null, mtime_ns bigint not null, ctime_ns bigint not null)""",
]


def _key(out_dir: Path) -> str:
    return str(Path(out_dir).resolve())


def recorded(con, out_dir: Path) -> pl.DataFrame:
    """The stamps recorded for the files under `out_dir` (`unchanged.STAMP_SCHEMA`)."""
    for statement in _DDL:
        con.execute(statement)
    return con.execute("select folder, name, inputs_sha256, document_key, size, mtime_ns, ctime_ns "
                       "from state.published_files where out_dir = ?", [_key(out_dir)]).pl().cast(STAMP_SCHEMA)


def published_documents(con) -> dict[str, dict[str, list[tuple[str, Stamp]]]]:
    """Every HTML and PDF document recorded as published, in any folder: by document key and
    suffix, its paths and stamps (for `PdfCache`, which reads a document from them while they are
    as recorded)."""
    for statement in _DDL:
        con.execute(statement)
    found: dict[str, dict[str, list[tuple[str, Stamp]]]] = {}
    for out_dir, folder, name, *rest in con.execute(
            "select out_dir, folder, name, inputs_sha256, document_key, size, mtime_ns, ctime_ns "
            "from state.published_files where document_key is not null order by all").fetchall():
        stamp = Stamp(*rest)
        found.setdefault(stamp.document_key, {}).setdefault(os.path.splitext(name)[1], []).append(
            (os.path.join(out_dir, folder, name), stamp))
    return found


def record(con, out_dir: Path, stamps: pl.DataFrame) -> None:
    """Replace the rows of `out_dir` with `stamps` (`unchanged.STAMP_SCHEMA`; a file gone since it
    was written has none), in one transaction."""
    key = _key(out_dir)
    frame = stamps.select(pl.lit(key, pl.String).alias("out_dir"), *STAMP_SCHEMA)
    con.execute("begin")
    try:
        con.execute("delete from state.published_files where out_dir = ?", [key])
        con.register("_stamps", frame.to_arrow())
        con.execute("insert into state.published_files by name select * from _stamps")
        con.unregister("_stamps")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
