"""Formulas render offline: the hook turns every arithmatex formula into MathML at build
time, so the built HTML holds MathML and no raw TeX, and no script renders math."""

import re

import pytest

from ._helpers import docs_script

mathml = docs_script("mathml")

MATH = re.compile(r"<math\b.*?</math>", re.DOTALL)
NOT_TEXT = re.compile(r"<(pre|code|script|style)\b.*?</\1>", re.DOTALL)
RAW_TEX = re.compile(r"\\(frac|tfrac|mathrm|operatorname|text|sum|log|exp|sigma|tau|left|"
                     r"right|qquad|in)\b|\$\$|\\\(|\\\[")


def raw_tex(html: str) -> list[str]:
    """TeX left in the page's text, outside <math>, code, scripts and styles."""
    text = NOT_TEXT.sub("", MATH.sub("", html))
    return [text[max(0, m.start() - 40) : m.end() + 20] for m in RAW_TEX.finditer(text)]


def test_render_converts_inline_and_display_formulas():
    page = (
        '<p>Here <span class="arithmatex">\\(s &lt; \\tfrac{1}{2}\\)</span> and</p>\n'
        '<div class="arithmatex">\\[\n\\mathrm{argsort}(x) = \\frac{a}{b}\n\\]</div>'
    )
    out, problems = mathml.render(page)
    assert problems == []
    assert out.count("<math") == 2
    assert 'display="inline"' in out and 'display="block"' in out
    assert "<mfrac>" in out
    assert "<mo>&#x0003C;</mo>" in out  # the escaped < came through as an operator
    assert raw_tex(out) == []
    assert raw_tex(page) != []  # the detector sees the TeX before conversion


def test_an_unknown_command_is_a_problem_not_silent_tex():
    _, problems = mathml.render('<span class="arithmatex">\\(\\notacommand{x}\\)</span>')
    assert len(problems) == 1 and "notacommand" in problems[0]


@pytest.fixture(scope="module")
def built_html(site_build):
    assert site_build.returncode == 0, site_build.output
    return {p.relative_to(site_build.site).as_posix(): p.read_text()
            for p in site_build.site.rglob("*.html")}


def test_built_pages_hold_mathml_and_no_raw_tex(built_html):
    with_math = [name for name, html in built_html.items() if "<math" in html]
    # The guide (modes, straight-through, operators) and the API docstrings.
    for page in ("guide/modes/index.html", "guide/straight-through/index.html",
                 "reference/api/sorting/index.html", "reference/api/elementwise/index.html"):
        assert page in with_math, page
    leftovers = {name: found for name, html in built_html.items() if (found := raw_tex(html))}
    assert leftovers == {}
    # Every formula wrapper holds MathML, and no page loads a math renderer.
    for name, html in built_html.items():
        for wrapper in re.findall(r'class="arithmatex">(.{0,6})', html):
            assert wrapper.startswith("<math"), (name, wrapper)
        assert not re.search(r"mathjax|katex", html, re.IGNORECASE), name
