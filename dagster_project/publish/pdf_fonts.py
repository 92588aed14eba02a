"""fpdf2's TrueType font without its cost per document, and with the same PDF bytes.

For each document fpdf2 parses the font file (`add_font`) and, when it writes the PDF, cuts the
font to the glyphs the document uses and saves the cut (`fontTools.subset`): together about four
fifths of an invoice's render. Both depend only on the font file and, for the cut, on the set of
glyphs. So a process parses the font once (`add_font` gives each document a copy of that parse,
with its own glyph map) and cuts it once per set of glyphs (`_cut`, kept in memory): a document
whose glyphs were all used by an earlier one together costs neither.

How: the document's font object stands in for fontTools' font (`_CutSource`), and the subsetter
that fpdf2's output module calls (`fpdf.output.ftsubset.Subsetter`) is swapped, for the duration of
one `output()`, for `_CachedSubsetter`, which hands fpdf2 the cut made for that glyph set. A cut is
made the way fpdf2 makes it: from a font object fpdf2 itself parsed, with the options fpdf2 gives.
The bytes are therefore those of fpdf2 alone; `tests/unit/test_pdf_fonts.py` compares them with a
plain fpdf2 render, and the golden test compares every published PDF.
"""

from __future__ import annotations

import copy
import functools
import io
import threading
import types
from pathlib import Path

# How many glyph sets a process keeps cut (a cut of an invoice's 60-90 glyphs is 15-30 kB).
CUTS_KEPT = 2048

_SWAP = threading.Lock()


def add_font(pdf, family: str, path: Path) -> None:
    """`pdf.add_font(family, "", path)`, from this process's one parse of the file."""
    from fpdf.fonts import SubsetMap

    font = copy.copy(_parsed(str(path), family))
    font.i = len(pdf.fonts) + 1
    font.desc = copy.copy(font.desc)  # the output step names it and gives it an object number
    font.missing_glyphs, font.biggest_size_pt = [], 0
    font.ttfont = _CutSource(str(path), family, font.ttfont)
    font.subset = SubsetMap(font)
    pdf.fonts[family] = font


def output(pdf) -> bytes:
    """`pdf.output()`, with the fonts of `add_font` cut through the per-process cache."""
    import fpdf.output as fpdf_output

    with _SWAP:  # one swap at a time (another thread's render waits; processes are apart anyway)
        real = fpdf_output.ftsubset
        fpdf_output.ftsubset = types.SimpleNamespace(Options=real.Options, Subsetter=_CachedSubsetter)
        try:
            return bytes(pdf.output())
        finally:
            fpdf_output.ftsubset = real


@functools.cache
def _parsed(path: str, family: str):
    """fpdf2's parse of the font file (a `TTFFont`), made once per process."""
    from fpdf import FPDF

    holder = FPDF()
    holder.add_font(family, "", path)
    return holder.fonts[family]


class _CutSource:
    """Stands in for a document's fontTools font where fpdf2's output step uses it: `subset`
    (through `_CachedSubsetter`), then `getGlyphID` and `save` of the cut; reading a table reads
    the shared parse, which is never changed."""

    def __init__(self, path: str, family: str, parsed):
        self.path, self.family, self.parsed = path, family, parsed
        self.cut: _Cut | None = None

    def __contains__(self, tag) -> bool:
        return tag in self.parsed

    def __getitem__(self, tag):
        return self.parsed[tag]

    def getGlyphID(self, name: str) -> int:  # noqa: N802 (fontTools' name)
        return self.cut.glyph_ids[name]

    def save(self, file) -> None:
        file.write(self.cut.data)

    def close(self) -> None:
        pass


class _Cut(types.SimpleNamespace):
    data: bytes  # the saved cut font
    glyph_ids: dict[str, int]  # glyph name -> its id in the cut


class _CachedSubsetter:
    """`fontTools.subset.Subsetter` as fpdf2's output step calls it (`populate(glyphs=...)`, then
    `subset(font)`): a `_CutSource` gets the cached cut for its glyph set; any other font is cut
    by fontTools itself, as usual."""

    def __init__(self, options):
        from fontTools import subset

        self.options, self.real = options, subset.Subsetter(options)
        self.glyphs: frozenset[str] = frozenset()

    def populate(self, glyphs=(), **others) -> None:
        self.glyphs |= frozenset(glyphs)
        self.real.populate(glyphs=glyphs, **others)

    def subset(self, font) -> None:
        if not isinstance(font, _CutSource):
            self.real.subset(font)
            return
        options = tuple(sorted((name, repr(value)) for name, value in vars(self.options).items()))
        key = (font.path, font.family, self.glyphs, options)
        if key not in _CUTS:
            if len(_CUTS) >= CUTS_KEPT:
                _CUTS.pop(next(iter(_CUTS)))  # the oldest
            _CUTS[key] = _cut(font.path, font.family, self.glyphs, self.options)
        font.cut = _CUTS[key]


# (font file, family, glyph set, the options' text) -> the cut
_CUTS: dict[tuple, _Cut] = {}


def _cut(path: str, family: str, glyphs: frozenset[str], options) -> _Cut:
    """The font cut to `glyphs`, as fpdf2 cuts it: from a parse of fpdf2's own (`add_font`, which
    leaves the font as fpdf2 reads it), with the options of fpdf2's output step."""
    from fontTools import subset
    from fpdf import FPDF

    holder = FPDF()
    holder.add_font(family, "", path)
    font = holder.fonts[family].ttfont
    cutter = subset.Subsetter(options)
    cutter.populate(glyphs=sorted(glyphs))
    cutter.subset(font)
    saved = io.BytesIO()
    font.save(saved)
    return _Cut(data=saved.getvalue(), glyph_ids={name: font.getGlyphID(name) for name in glyphs})
