"""One font parse per process and one cut per glyph set (`publish/pdf_fonts.py`) give the bytes
fpdf2 gives alone: every PDF is compared with the PDF fpdf2 writes when it parses and cuts the
font itself, document by document (the independent route)."""

import datetime as dt
import sys
from pathlib import Path

import fpdf.output
import pytest

from dagster_project.publish import invoice_document, pdf_fonts

sys.path.insert(0, str(Path(__file__).parent))
from test_invoice_layout import _long_invoice  # noqa: E402

pytestmark = pytest.mark.skipif(not invoice_document.UNICODE_FONT.exists(), reason="DejaVu Sans is not installed")


def _views() -> list[dict]:
    """Documents with glyph sets that differ, repeat and nest (cache misses and hits), and one with
    characters outside the cut font (the whole font)."""
    views = []
    for number, (lines, title) in enumerate([(1, "Invoice"), (3, "Invoice"), (1, "Invoice"), (2, "Facture Ωμέγα"),
                                             (45, "Invoice"), (2, "Invoice 請求書"), (1, "Invoice")]):
        view = dict(_long_invoice(lines))
        view["title"], view["number"] = title, f"MIS-042-{number:03d}"
        views.append(view)
    views.append(dict(views[0]))  # the same document again
    return views


def _fpdf2_alone(monkeypatch) -> list[bytes]:
    """The PDFs as fpdf2 writes them when it parses the font for each document and cuts it itself."""
    with monkeypatch.context() as plain:
        plain.setattr(pdf_fonts, "add_font", lambda pdf, family, path: pdf.add_font(family, "", str(path)))
        plain.setattr(pdf_fonts, "output", lambda pdf: bytes(pdf.output()))
        return [invoice_document.render_pdf(view) for view in _views()]


def test_documents_drawn_from_the_shared_parse_and_cached_cuts_have_fpdf2s_own_bytes(monkeypatch):
    expected = _fpdf2_alone(monkeypatch)
    pdf_fonts._CUTS.clear()
    first = [invoice_document.render_pdf(view) for view in _views()]  # cuts made
    again = [invoice_document.render_pdf(view) for view in _views()]  # every cut from the cache
    assert first == expected
    assert again == expected
    assert len(set(expected)) == len(expected) - 1  # (the views differ, but for the repeated one)


def test_documents_with_the_same_glyphs_share_one_cut_and_others_get_their_own():
    pdf_fonts._CUTS.clear()
    views = _views()
    invoice_document.render_pdf(views[0])
    invoice_document.render_pdf(views[2])  # one line instead of one line: the same glyphs
    assert len(pdf_fonts._CUTS) == 1
    invoice_document.render_pdf(views[3])  # Greek letters added
    assert len(pdf_fonts._CUTS) == 2


def test_fpdf2s_subsetter_is_put_back_after_each_document_also_when_writing_fails(monkeypatch):
    real = fpdf.output.ftsubset
    invoice_document.render_pdf(_views()[0])
    assert fpdf.output.ftsubset is real

    class Broken:
        def output(self):
            assert fpdf.output.ftsubset is not real  # swapped while writing
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        pdf_fonts.output(Broken())
    assert fpdf.output.ftsubset is real


def test_a_font_added_the_usual_way_in_the_same_process_is_cut_by_fonttools_as_before():
    """Another fpdf2 document in the process (its font parsed by fpdf2) is unaffected, also while
    written through `pdf_fonts.output`."""
    from fpdf import FPDF

    def plain(write) -> bytes:
        pdf = FPDF()
        pdf.set_creation_date(dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
        pdf.add_font("other", "", str(invoice_document.UNICODE_FONT))
        pdf.add_page()
        pdf.set_font("other", size=12)
        pdf.cell(text="Zürich — 12,50 €")
        return write(pdf)

    assert plain(pdf_fonts.output) == plain(lambda pdf: bytes(pdf.output()))
