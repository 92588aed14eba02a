"""Invoice and credit note PDFs rendered once per content, kept between runs beside the warehouse."""

from pathlib import Path

from dagster_project.publish import invoice_document
from dagster_project.publish.files import write_atomically


class PdfCache:
    """Invoice PDFs already rendered, kept between runs in a folder and found by `pdf_key`.

    Every run publishes every finalized invoice again, and fpdf2 parses and subsets the TTF font
    for each PDF (≈ 70 ms a document, nearly all of this step at 200 invoices). A PDF rendered
    earlier from an equal view by an equal renderer has the same bytes, so it is read back
    instead. Anything the document shows (customer, seller, catalog names) is in the view, so an
    edited catalog renders again. `None`: no folder, render every time. The folder can be
    deleted at any time."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.used: set[str] = set()

    def pdfs(self, views: list[dict]) -> list[bytes]:
        """The PDF of each view, in order: read back where rendered before; the others rendered
        together (`render_pdfs`: on every core when there are many) and kept."""
        if self.folder is None:
            return invoice_document.render_pdfs(views)
        paths = [self.folder / f"{invoice_document.pdf_key(view)}.pdf" for view in views]
        found: dict[int, bytes] = {}
        for i, path in enumerate(paths):
            self.used.add(path.name)
            try:
                found[i] = path.read_bytes()
            except FileNotFoundError:
                pass
        missing = [i for i in range(len(views)) if i not in found]
        for i, data in zip(missing, invoice_document.render_pdfs([views[i] for i in missing]), strict=True):
            write_atomically(paths[i], data)
            found[i] = data
        return [found[i] for i in range(len(views))]

    def prune(self) -> None:
        """Remove the PDFs no document asked for since the cache was opened."""
        if self.folder is not None and self.folder.is_dir():
            for path in self.folder.glob("*.pdf"):
                if path.name not in self.used:
                    path.unlink(missing_ok=True)


def pdf_cache_dir(warehouse: Path) -> Path:
    """Beside the warehouse (`<warehouse>.pdf-cache/`, like dbt's `<warehouse>.dbt/`), not among
    the published files."""
    return warehouse.parent / f"{warehouse.name}.pdf-cache"
