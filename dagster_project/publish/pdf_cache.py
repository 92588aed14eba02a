"""Invoice and credit note documents (HTML and PDF) rendered once per content, kept between runs
beside the warehouse."""

from pathlib import Path

from dagster_project.publish import invoice_document
from dagster_project.publish.files import write_atomically


class PdfCache:
    """Documents already rendered, kept between runs in a folder as `<key>.html` and `<key>.pdf`,
    found by `document_key`.

    Every run publishes every finalized invoice again, and a PDF costs about 3 ms of CPU to lay
    out and write (more for long invoices). A document rendered earlier from an equal view by an equal
    renderer has the same bytes, so it is read back instead: a run with no new or changed document
    renders none (`rendered` counts the files it rendered: an HTML and a PDF a document). Anything the document shows (customer, seller,
    catalog names) is in the view, so an edited catalog renders again. `None`: no folder, render
    every time. The folder can be deleted at any time."""

    def __init__(self, folder: Path | None):
        self.folder = folder
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
                pass
        missing = [i for i in range(len(views)) if i not in found]
        for i, (html, pdf) in zip(missing, _render([views[i] for i in missing]), strict=True):
            write_atomically(self.folder / f"{keys[i]}.html", html)
            write_atomically(self.folder / f"{keys[i]}.pdf", pdf)
            found[i] = (html, pdf)
        self.rendered += 2 * len(missing)
        return [found[i] for i in range(len(views))]

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


def _render(views: list[dict]) -> list[tuple[bytes, bytes]]:
    if not views:  # (nothing to render: not even the renderers' imports)
        return []
    pdfs = invoice_document.render_pdfs(views)
    return [(invoice_document.render_html(view).encode("utf-8"), pdf) for view, pdf in zip(views, pdfs, strict=True)]


def pdf_cache_dir(warehouse: Path) -> Path:
    """Beside the warehouse (`<warehouse>.pdf-cache/`, like dbt's `<warehouse>.dbt/`), not among
    the published files."""
    return warehouse.parent / f"{warehouse.name}.pdf-cache"
