"""Invoice and credit note documents (HTML and PDF) rendered once per content, kept between runs
beside the warehouse."""

import os
from collections.abc import Callable
from pathlib import Path

from dagster_project.publish import invoice_document
from dagster_project.publish.files import write_atomically
from dagster_project.publish.unchanged import Stamp


class PdfCache:
    """Documents already rendered, kept between runs in a folder as `<key>.html` and `<key>.pdf`,
    found by `document_key`.

    Every run publishes every finalized invoice again, and a PDF costs about 3 ms of CPU to lay
    out and write (more for long invoices). A document rendered earlier from an equal view by an equal
    renderer has the same bytes, so it is read back instead: a run with no new or changed document
    renders none (`rendered` counts the files it rendered: an HTML and a PDF a document). Anything the document shows (customer, seller,
    catalog names) is in the view, so an edited catalog renders again. `None`: no folder, render
    every time. The folder can be deleted at any time.

    `published`: what gives the documents recorded as published (`state.published_files`: path and
    stamp by document key, `publish_state.published_documents`; asked only if a document is not in
    the folder). A document whose published HTML and PDF are
    as recorded (size and times: untouched since written) is read from them, and a document
    rendered is kept in the folder only when `save` is not told that its published files were
    recorded: each document is written once, where it is published, not twice. Without
    `published`, a document rendered is kept at once."""

    def __init__(self, folder: Path | None,
                 published: Callable[[], dict[str, dict[str, list[tuple[str, Stamp]]]]] | None = None):
        self.folder = folder
        self.published_source = published
        self.published: dict[str, dict[str, list[tuple[str, Stamp]]]] | None = None  # (asked once, when needed)
        self.pending: dict[str, tuple[bytes, bytes]] = {}  # rendered, kept by `save`
        self.used: set[str] = set()
        self.rendered = 0

    def documents(self, views: list[dict], keys: list[str] | None = None) -> list[tuple[bytes, bytes]]:
        """The HTML and PDF of each view, in order: read back where rendered before; the others
        rendered together (`render_pdfs`: on every core when there are many) and kept. `keys`: each
        view's `document_key`, when the caller has them."""
        if self.folder is None:
            self.rendered += 2 * len(views)
            return _render(views)
        keys = keys or [invoice_document.document_key(view) for view in views]
        found = {}
        for i, key in enumerate(keys):
            html, pdf = self.folder / f"{key}.html", self.folder / f"{key}.pdf"
            self.used.update((html.name, pdf.name))
            try:
                found[i] = (html.read_bytes(), pdf.read_bytes())
            except FileNotFoundError:
                if (published := self._published(key)) is not None:
                    found[i] = published
        missing = [i for i in range(len(views)) if i not in found]
        for i, (html, pdf) in zip(missing, _render([views[i] for i in missing]), strict=True):
            self.pending[keys[i]] = found[i] = (html, pdf)
        self.rendered += 2 * len(missing)
        if self.published_source is None:
            self.save()
        return [found[i] for i in range(len(views))]

    def _published(self, key: str) -> tuple[bytes, bytes] | None:
        """The HTML and PDF of `key` read from published files still as recorded, if there are."""
        if self.published is None and self.published_source is not None:
            self.published = self.published_source()
        found = {}
        for suffix, copies in (self.published or {}).get(key, {}).items():
            for path, recorded in copies:
                data = _read_as_recorded(path, recorded)
                if data is not None:
                    found[suffix] = data
                    break
        return (found[".html"], found[".pdf"]) if len(found) == 2 else None

    def save(self, published_keys=frozenset()) -> None:
        """Keep in the folder each document rendered since the last `save`, but those of
        `published_keys` (their published HTML and PDF are recorded, so a later run reads them)."""
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)  # (there even when it keeps nothing)
            for key, (html, pdf) in self.pending.items():
                if key not in published_keys:
                    write_atomically(self.folder / f"{key}.html", html)
                    write_atomically(self.folder / f"{key}.pdf", pdf)
        self.pending = {}

    def keep(self, keys: set[str]) -> None:
        """Keep the documents of these keys at the next `prune` (documents still published, whose
        files were recognized unchanged without asking for them)."""
        self.used.update(name for key in keys for name in (f"{key}.html", f"{key}.pdf"))

    def prune(self) -> None:
        """Remove the documents no one asked for since the cache was opened."""
        if self.folder is not None and self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.suffix in (".html", ".pdf") and path.name not in self.used:
                    path.unlink(missing_ok=True)


def _read_as_recorded(path: str, recorded: Stamp) -> bytes | None:
    """The bytes of the file at `path` if it still has its recorded size and times (and keeps
    them while read); None otherwise."""
    try:
        with open(path, "rb") as file:
            data = file.read()
            stat = os.fstat(file.fileno())
    except FileNotFoundError:
        return None
    same = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns) == (recorded.size, recorded.mtime_ns, recorded.ctime_ns)
    return data if same and len(data) == recorded.size else None


def _render(views: list[dict]) -> list[tuple[bytes, bytes]]:
    if not views:  # (nothing to render: not even the renderers' imports)
        return []
    pdfs = invoice_document.render_pdfs(views)
    return [(invoice_document.render_html(view).encode("utf-8"), pdf) for view, pdf in zip(views, pdfs, strict=True)]


def pdf_cache_dir(warehouse: Path) -> Path:
    """Beside the warehouse (`<warehouse>.pdf-cache/`, like dbt's `<warehouse>.dbt/`), not among
    the published files."""
    return warehouse.parent / f"{warehouse.name}.pdf-cache"
