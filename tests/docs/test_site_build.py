"""`mkdocs build --strict` succeeds and builds every page, with the generated figures."""

from ._helpers import DOCS, pages

# docs/*.md pages, excluding docs/_scripts/ and docs/reference/generated/ (snippets only).
EXPECTED_PAGES = 23
FIGURES = ("sigmoidal-modes.png", "soft-vs-hard.png", "argsort-heatmaps.png",
           "sort-rank-softness.png")
# The gallery's plots, one per example, drawn at build time by docs/_scripts/example_figures.py.
EXAMPLE_FIGURES = tuple(
    f"examples/{name}.png"
    for name in ("quality_filtering", "quality_filter_operator", "gene_ranking",
                 "variant_selection", "median_normalization", "smith_waterman")
)


def built_pages(site):
    return sorted(p for p in site.rglob("index.html"))


def test_strict_build_succeeds(site_build):
    assert site_build.returncode == 0, site_build.output
    assert "WARNING" not in site_build.output, site_build.output


def test_every_page_is_built(site_build):
    assert site_build.returncode == 0, site_build.output
    assert len(pages()) == EXPECTED_PAGES, [p.relative_to(DOCS).as_posix() for p in pages()]
    assert len(built_pages(site_build.site)) == EXPECTED_PAGES
    for page in pages():
        relative = page.relative_to(DOCS).with_suffix("")
        target = (
            site_build.site / relative.parent / "index.html"
            if relative.name == "index"
            else site_build.site / relative / "index.html"
        )
        assert target.exists(), f"{page} was not built"


def test_generated_tables_are_not_pages_but_are_included(site_build):
    assert not (site_build.site / "reference/generated").exists()
    tables = (site_build.site / "reference/index.html").read_text()
    assert "<td><code>support-matrix</code>" not in tables
    assert "<code>sorting_network</code>" in tables
    assert "--8&lt;--" not in tables and "--8<--" not in tables


def test_figures_are_generated_and_used(site_build):
    for name in FIGURES:
        figure = site_build.site / "assets/generated" / name
        assert figure.exists() and figure.stat().st_size > 10_000, name
    # the gallery's plots may be this build's stand-ins (tests/docs/conftest.py): PNGs
    for name in EXAMPLE_FIGURES:
        figure = site_build.site / "assets/generated" / name
        assert figure.exists() and figure.read_bytes().startswith(b"\x89PNG"), name
    used = "".join(p.read_text() for p in built_pages(site_build.site))
    for name in FIGURES + EXAMPLE_FIGURES:
        assert f"assets/generated/{name}" in used, f"{name} is not shown on any page"


def test_the_gallery_shows_each_example_with_its_code_and_plot(site_build):
    html = (site_build.site / "examples/index.html").read_text()
    for figure in EXAMPLE_FIGURES:
        name = figure.removeprefix("examples/").removesuffix(".png")
        image = html.index(f'src="../assets/generated/{figure}"')
        code = html.index(f"examples/{name}.py</summary>")
        assert 0 < code - image < 2000, f"{name}: the plot is not next to its code"
        following = html.find("</details>", code)
        assert '<span class="nf">main</span>' in html[code:following], name  # its code


def test_api_page_renders_the_markdown_docstring(site_build):
    html = (site_build.site / "reference/api/sorting/index.html").read_text()
    assert 'id="diffbio.core.soft_ops.sort"' in html
    assert "<strong>Arguments:</strong>" in html
    # The docstring's formula is MathML (see test_math.py), not TeX.
    assert '<div class="arithmatex"><math xmlns="http://www.w3.org/1998/Math/MathML" ' \
        'display="block">' in html
