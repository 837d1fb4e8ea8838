"""Every ```python block of the documentation runs, page by page, in page order."""

import sys

import pytest

from ._helpers import (
    DOCS,
    OTHER_LANGUAGES,
    PYTHON_LANGUAGES,
    ROOT,
    expand_snippets,
    fenced_blocks,
    pages,
    python_blocks,
)

PAGES = pages()
PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]
# Raise this when you add blocks; it guards against the extractor silently finding none.
MIN_BLOCKS = 33


def test_the_extractor_finds_the_documented_blocks():
    total = sum(len(python_blocks(p)) for p in PAGES)
    assert total >= MIN_BLOCKS, f"only {total} python blocks found in docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_every_fence_names_a_known_language(page):
    """No block escapes execution by leaving its language out or misspelling it."""
    for language, code in fenced_blocks(expand_snippets(page.read_text())):
        assert language in PYTHON_LANGUAGES | OTHER_LANGUAGES, (
            f"{page.name}: fenced block with language {language!r}:\n{code[:200]}"
        )


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_python_blocks_run(page, monkeypatch):
    if str(ROOT) not in sys.path:  # the examples gallery includes `examples/*.py`
        monkeypatch.syspath_prepend(str(ROOT))
    # Included example scripts locate their output folder from `__file__`.
    namespace = {"__name__": f"docs_page_{page.stem}", "__file__": str(ROOT / "examples" / "x.py")}
    for number, code in enumerate(python_blocks(page), start=1):
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}[block {number}]", "exec"), namespace)
        except Exception as error:
            raise AssertionError(
                f"{page.relative_to(ROOT)}: python block {number} failed: {error!r}\n{code}"
            ) from error
