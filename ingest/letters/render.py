"""PDF from the letter's data: Typst (PyPI ``typst``, in-process) lays out ``letter.typ``; pypdf merges.

One :class:`Renderer` keeps one Typst compiler, so the fonts are loaded once for a whole month's letters.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("letter.typ")
PAGES = 2  # one sheet, printed on both sides


class RenderError(Exception):
    """Typst refused the letter (a template or font problem, never the resident's data)."""


class Renderer:
    def __init__(self, template: Path = TEMPLATE) -> None:
        import typst  # here: the rest of the command line starts without it

        self._typst = typst
        # by path: a compiler made from bytes finds its input only on the first compile (typst 0.15)
        self._compiler = typst.Compiler(str(template), root=str(template.parent))

    def pdf(self, document: dict[str, Any]) -> bytes:
        """The letter of :func:`ingest.letters.wording.document`'s data, as PDF bytes."""
        data = json.dumps(document, ensure_ascii=False)
        try:
            out = self._compiler.compile(format="pdf", sys_inputs={"data": data})
        except self._typst.TypstError as exc:
            raise RenderError(f"Typst: {exc.message} {exc.diagnostic}".strip()) from exc
        assert isinstance(out, bytes)  # one PDF, not one PNG per page
        pages = page_count(out)
        if pages != PAGES:  # a longer letter would shift every later one in the two-sided print file
            raise RenderError(f"the letter has {pages} pages, not {PAGES}: shorten the configured texts")
        return out


def merge(pdfs: Iterable[bytes]) -> bytes:
    """The letters one after another in one PDF (the file to print)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(io.BytesIO(pdf))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)
