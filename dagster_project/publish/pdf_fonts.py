"""fpdf2's TrueType font without its cost per document, and with the same PDF bytes.

For each document fpdf2 parses the font file (`add_font`) and, when it writes the PDF, cuts the
font to the glyphs the document uses, saves the cut, deflates it, and builds and deflates a
128 KiB map from character codes to glyphs (the CIDToGIDMap, made as a Python list of 131,072
one-character strings). Together that is most of an invoice's render, and all of it depends only
on the font file, the set of glyphs and the codes the document gave them. So a process:
- parses the font once (`add_font` gives each document a copy of that parse, with its own glyph
  map);
- cuts, saves and deflates the font once per set of glyphs (`_cut`, kept in memory);
- builds and deflates the map once per assignment of codes to glyphs (`_glyph_map`), as bytes.

How: `output` writes the document with fpdf2's own writer, through its `output_producer_class`
hook, with one step replaced: `_Producer._add_fonts` adds the font objects of `add_font`'s fonts,
the same objects in the same order with the same values as fpdf2's `OutputProducer._add_fonts`
(fpdf2 2.8.9's TrueType branch, which the lock pins), its streams taken from the caches. A cut is
made the way fpdf2 makes it: from a font object fpdf2 itself parsed, with the options fpdf2 uses.
The bytes are therefore those of fpdf2 alone; `tests/unit/test_pdf_fonts.py` compares them with a
plain fpdf2 render, and the golden test compares every published PDF.
"""

from __future__ import annotations

import copy
import functools
import io
import logging
import types
import zlib
from pathlib import Path

# How many glyph sets a process keeps cut (a cut of an invoice's 60-90 glyphs is 15-30 kB), and how
# many code-to-glyph maps it keeps deflated (a few hundred bytes each).
CUTS_KEPT = 2048
MAPS_KEPT = 8192

# fpdf2's TrueType subset (`OutputProducer._add_fonts`): its options, and the tables it drops.
DROPPED_TABLES = ("FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT", "EBLC",
                  "EBSC", "SVG ", "CPAL", "COLR")


def add_font(pdf, family: str, path: Path) -> None:
    """`pdf.add_font(family, "", path)`, from this process's one parse of the file. Write the
    document with `output`: fpdf2's own `pdf.output()` refuses a font added here."""
    from fpdf.fonts import SubsetMap

    font = copy.copy(_parsed(str(path), family))
    font.i = len(pdf.fonts) + 1
    font.desc = copy.copy(font.desc)  # the output step names it and gives it an object number
    font.missing_glyphs, font.biggest_size_pt = [], 0
    font.ttfont = _SharedParse(str(path), family, font.ttfont)
    font.subset = SubsetMap(font)
    pdf.fonts[family] = font


def output(pdf) -> bytes:
    """`pdf.output()`, with the fonts of `add_font` written from the per-process caches."""
    return bytes(pdf.output(output_producer_class=_producer()))


@functools.cache
def _parsed(path: str, family: str):
    """fpdf2's parse of the font file (a `TTFFont`), made once per process."""
    from fpdf import FPDF

    holder = FPDF()
    holder.add_font(family, "", path)
    return holder.fonts[family]


class _SharedParse:
    """Stands in for a document's fontTools font: reading a table reads the process's one parse,
    which is never changed. Anything else fails (fpdf2's own output step would cut the font in
    place, which must not happen to a parse that every document shares)."""

    def __init__(self, path: str, family: str, parsed):
        self.path, self.family, self.parsed = path, family, parsed

    def __contains__(self, tag) -> bool:
        return tag in self.parsed

    def __getitem__(self, tag):
        return self.parsed[tag]


class _Cut(types.SimpleNamespace):
    deflated: bytes  # the saved cut font, deflated as fpdf2 deflates its font stream
    size: int  # the saved cut's size before deflating (the stream's /Length1)
    glyph_ids: dict[str, int]  # glyph name -> its id in the cut


# (font file, family, glyph set) -> the cut;  code -> glyph pairs -> the deflated CIDToGIDMap
_CUTS: dict[tuple, _Cut] = {}
_MAPS: dict[tuple, bytes] = {}


def _kept(cache: dict, most: int, key, make):
    """`cache[key]`, made by `make()` when missing; the oldest entry dropped beyond `most`."""
    if key not in cache:
        if len(cache) >= most:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]


def _deflate(data: bytes) -> bytes:
    """As fpdf2's `PDFContentStream(data, compress=True)` deflates."""
    from fpdf.syntax import PDFContentStream

    return zlib.compress(data, level=PDFContentStream._COMPRESSION_LEVEL)


def _cut(path: str, family: str, glyphs: frozenset[str]) -> _Cut:
    """The font cut to `glyphs`, as fpdf2 cuts it: from a parse of fpdf2's own (`add_font`, which
    leaves the font as fpdf2 reads it), with the options of fpdf2's output step."""
    from fontTools import subset
    from fpdf import FPDF

    holder = FPDF()
    holder.add_font(family, "", path)
    font = holder.fonts[family].ttfont
    options = subset.Options(notdef_outline=True, recommended_glyphs=True)
    options.drop_tables += list(DROPPED_TABLES)
    cutter = subset.Subsetter(options)
    cutter.populate(glyphs=sorted(glyphs))
    cutter.subset(font)
    saved = io.BytesIO()
    font.save(saved)
    return _Cut(deflated=_deflate(saved.getvalue()), size=len(saved.getvalue()), glyph_ids={name: font.getGlyphID(name) for name in glyphs})


def glyph_map(code_to_glyph: dict[int, int]) -> bytes:
    """The CIDToGIDMap stream's contents: two bytes (big-endian) of glyph id per character code,
    for every code from 0 to 65535, zero where the code is unused (fpdf2's map)."""
    data = bytearray(2 * 65536)
    for code, glyph in code_to_glyph.items():
        data[2 * code:2 * code + 2] = glyph.to_bytes(2, "big")
    return bytes(data)


def _glyph_map(code_to_glyph: dict[int, int]) -> bytes:
    """`glyph_map`, deflated, once per assignment of codes to glyphs."""
    key = tuple(sorted(code_to_glyph.items()))
    return _kept(_MAPS, MAPS_KEPT, key, lambda: _deflate(glyph_map(code_to_glyph)))


@functools.cache
def _producer():
    """fpdf2's `OutputProducer`, adding the fonts of `add_font` from the caches (made on first
    use: importing fpdf2 waits until a document is written)."""
    from fpdf.output import OutputProducer

    class _Producer(OutputProducer):
        def _add_fonts(self, *args, **kwargs):
            fonts = sorted(self.fpdf.fonts.values(), key=lambda font: font.i)
            ours = [font for font in fonts if isinstance(getattr(font, "ttfont", None), _SharedParse)]
            if not ours:
                return super()._add_fonts(*args, **kwargs)
            if len(ours) != len(fonts) or self.fpdf._compliance:
                raise TypeError("pdf_fonts.output writes documents whose fonts all come from pdf_fonts.add_font, "
                                "without PDF/A compliance")
            return {font.i: _add_font_objects(self, font) for font in fonts}

    return _Producer


def _add_font_objects(producer, font):
    """The objects of one TrueType font, as fpdf2 2.8.9's `OutputProducer._add_fonts` adds them
    (the branch for a TrueType font that is neither a colour nor a CFF font), in its order: the
    Type0 font, its CIDFont, the ToUnicode map, the CIDSystemInfo, the descriptor, the CIDToGIDMap
    and the font file. The last two come from the caches."""
    from fpdf.output import PDFFont, _build_cmap_blocks, _tt_font_widths, CIDSystemInfo
    from fpdf.syntax import Name, PDFArray, PDFContentStream

    if font.color_font or font.is_cff:
        raise TypeError(f"pdf_fonts writes TrueType outlines only, not {font.fontkey}")
    fontname = f"MPDFAA+{font.name}"
    if font.missing_glyphs:
        shown = ", ".join(f"'{chr(x)}' ({chr(x).encode('unicode-escape').decode()})" for x in font.missing_glyphs[:10])
        more = f", ... (and {len(font.missing_glyphs) - 10} others)" if len(font.missing_glyphs) > 10 else ""
        logging.getLogger("fpdf.output").warning("Font %s is missing the following glyphs: %s", fontname, shown + more)
    source = font.ttfont
    glyphs = frozenset(font.subset.get_all_glyph_names())
    cut = _kept(_CUTS, CUTS_KEPT, (source.path, source.family, glyphs), lambda: _cut(source.path, source.family, glyphs))
    code_to_glyph = {code: cut.glyph_ids[glyph.glyph_name] for glyph, code in font.subset.items() if glyph is not None}

    composite = PDFFont(subtype="Type0", base_font=fontname, encoding="Identity-H")
    producer._add_pdf_obj(composite, "fonts")
    cid_font = PDFFont(subtype="CIDFontType2", base_font=fontname, d_w=font.desc.missing_width, w=_tt_font_widths(font))
    producer._add_pdf_obj(cid_font, "fonts")
    composite.descendant_fonts = PDFArray([cid_font])

    def unicode_hex(code: int) -> str:
        if code > 0xFFFF:  # a surrogate pair
            return f"{0xD800 | (code - 0x10000) >> 10:04X}{0xDC00 | (code & 0x3FF):04X}"
        return f"{code:04X}"

    characters = [f'<{code:04X}> <{"".join(unicode_hex(c) for c in glyph.unicode)}>\n'
                  for glyph, code in font.subset.items()
                  if glyph is not None and isinstance(glyph.unicode, tuple) and len(glyph.unicode) > 0]
    to_unicode = PDFContentStream((
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo\n<</Registry (Adobe)\n"
        "/Ordering (UCS)\n/Supplement 0\n>> def\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{_build_cmap_blocks(characters, 'bfchar')}"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    ).encode("latin-1"))
    producer._add_pdf_obj(to_unicode, "fonts")
    composite.to_unicode = to_unicode

    system_info = CIDSystemInfo()
    producer._add_pdf_obj(system_info, "fonts")
    cid_font.c_i_d_system_info = system_info

    descriptor = font.desc
    descriptor.font_name = Name(fontname)
    producer._add_pdf_obj(descriptor, "fonts")
    cid_font.font_descriptor = descriptor

    glyph_map_stream = _deflated_stream(_glyph_map(code_to_glyph))
    producer._add_pdf_obj(glyph_map_stream, "fonts")
    cid_font.c_i_d_to_g_i_d_map = glyph_map_stream

    font_file = _deflated_stream(cut.deflated)
    font_file.length1 = cut.size  # (fpdf2's `PDFFontStream`)
    producer._add_pdf_obj(font_file, "fonts")
    descriptor.font_file2 = font_file

    font.subset.pick.cache_clear()
    font.subset.get_glyph.cache_clear()
    return composite


def _deflated_stream(deflated: bytes):
    """A stream object whose contents are already deflated: what `PDFContentStream(data,
    compress=True)` is, given `_deflate(data)`."""
    from fpdf.syntax import Name, PDFContentStream

    stream = PDFContentStream(b"")
    stream._contents, stream.filter, stream.length = deflated, Name("FlateDecode"), len(deflated)
    return stream
