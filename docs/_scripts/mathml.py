"""TeX to MathML at build time, so that formulas render offline with no JavaScript.

`pymdownx.arithmatex` (generic mode) wraps the TeX of every formula of a page, of the
guide and of the API docstrings alike, in ``<span class="arithmatex">\\(...\\)</span>``
or ``<div class="arithmatex">\\[...\\]</div>``. `render` replaces the TeX inside those
wrappers by MathML from `latex2mathml`, which browsers render natively (MathML Core).
A command that `latex2mathml` does not know would come out as raw TeX; `render` reports
it as a problem instead, and the hook turns problems into build warnings, which fail
`mkdocs build --strict`.
"""

import html
import re

from latex2mathml.converter import convert

INLINE = re.compile(r'(<span class="arithmatex">)\\\((.*?)\\\)(</span>)', re.DOTALL)
BLOCK = re.compile(r'(<div class="arithmatex">)\\\[(.*?)\\\](</div>)', re.DOTALL)
# TeX that survived conversion: a backslash command inside a MathML token.
LEFTOVER = re.compile(r"<m(?:i|o|n|text)\b[^>]*>[^<]*\\[A-Za-z]")


def to_mathml(tex: str, display: bool) -> str:
    """MathML for one formula (its TeX as arithmatex wrote it, HTML-escaped)."""
    return convert(html.unescape(tex).strip(), display="block" if display else "inline")


def render(page_html: str) -> tuple[str, list[str]]:
    """Replace every arithmatex formula of a page by MathML.

    Returns:
        The new HTML and a list of problems (formulas that did not convert cleanly).
    """
    problems: list[str] = []

    def replace(display: bool):
        def sub(match: re.Match) -> str:
            tex = match[2]
            try:
                mathml = to_mathml(tex, display)
            except Exception as error:  # latex2mathml raises several exception types
                problems.append(f"cannot convert {html.unescape(tex)!r}: {error!r}")
                return match[0]
            if LEFTOVER.search(mathml):
                problems.append(f"unknown TeX command in {html.unescape(tex)!r}")
            return match[1] + mathml + match[3]

        return sub

    page_html = BLOCK.sub(replace(True), page_html)
    page_html = INLINE.sub(replace(False), page_html)
    return page_html, problems
