"""One font parse per process and one cut per glyph set (`publish/pdf_fonts.py`) give the bytes
fpdf2 gives alone: every PDF is compared with the PDF fpdf2 writes when it parses and cuts the
font itself, document by document (the independent route)."""

import datetime as dt
import sys
from pathlib import Path

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


def test_the_glyph_map_gives_two_big_endian_bytes_of_glyph_id_for_every_code():
    """Codes 1 and 2 drawn with glyphs 3 and 258 (0x0102): bytes 2-3 are 00 03, bytes 4-5 are
    01 02, and the other 131,066 of the 65,536 two-byte entries are zero."""
    data = pdf_fonts.glyph_map({1: 3, 2: 258})
    assert len(data) == 2 * 65536
    assert data[:6] == bytes([0, 0, 0, 3, 1, 2])
    assert data[6:] == bytes(len(data) - 6)


def test_a_document_writes_the_glyph_map_fpdf2_builds_itself(monkeypatch):
    """fpdf2 builds the map as a list of one-character strings; the deflated map in a document
    drawn by `pdf_fonts` inflates to that list's bytes."""
    import re
    import zlib

    pdf_fonts._MAPS.clear()
    invoice_document.render_pdf(_views()[0])
    (deflated,) = pdf_fonts._MAPS.values()
    pairs = [pair for pair in pdf_fonts._MAPS][0]
    listed = ["\x00"] * 256 * 256 * 2
    for code, glyph in pairs:
        listed[code * 2], listed[code * 2 + 1] = chr(glyph >> 8), chr(glyph & 0xFF)
    assert zlib.decompress(deflated) == "".join(listed).encode("latin1")
    assert re.search(rb"/CIDToGIDMap \d+ 0 R", invoice_document.render_pdf(_views()[0]))


def test_a_font_of_the_shared_parse_cannot_be_written_by_fpdf2s_own_output_step():
    """fpdf2's own writer would cut the font in place, in the parse every document shares: it is
    refused, and documents drawn afterwards keep their bytes."""
    from fpdf import FPDF

    before = invoice_document.render_pdf(_views()[0])
    pdf = FPDF()
    pdf_fonts.add_font(pdf, "body", invoice_document.UNICODE_FONT)
    pdf.add_page()
    pdf.set_font("body", size=12)
    pdf.cell(text="Zürich")
    with pytest.raises(AttributeError):  # fontTools' subsetter finds no tables it could change
        pdf.output()
    assert invoice_document.render_pdf(_views()[0]) == before


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


def test_a_text_that_fits_is_measured_once_per_process_and_the_bytes_stay(monkeypatch):
    """The second render of an invoice measures again only its texts that take several lines (the
    long addresses: fpdf2 breaks them each time), none of those found to fit on one line, and gives
    the same bytes as the first."""
    from fpdf import FPDF

    view = _views()[0]
    invoice_document._FITS.clear()
    first = invoice_document.render_pdf(view)
    fits = set(invoice_document._FITS.values())
    measured = []
    real = FPDF.get_string_width
    monkeypatch.setattr(FPDF, "get_string_width", lambda pdf, s, *a, **k: measured.append(s) or real(pdf, s, *a, **k))
    assert invoice_document.render_pdf(view) == first
    assert "Subtotal excluding taxes" in fits and "15 rue des Halles, escalier B, troisième étage, porte de gauche" in measured
    assert not set(measured) & fits
