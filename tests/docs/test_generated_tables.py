"""The docs tables follow the catalogue: edit a mode list, regenerate, the table changes."""

import re
import shutil
from pathlib import Path

import pytest

from codegen.__main__ import main
from codegen.generate import CATALOGUE_PATH, GENERATED_DIRS, ROOT

from ._helpers import DOCS, pages

TABLES = ROOT / "docs/reference/generated"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the catalogue, templates and generated files (as tests/codegen does)."""
    for folder in ("spec", "codegen/templates", *GENERATED_DIRS):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(
        ROOT / "src/diffbio/core/soft_ops/__init__.py",
        tmp_path / "src/diffbio/core/soft_ops/__init__.py",
    )
    return tmp_path


def set_modes(catalogue: Path, op: str, modes: str) -> None:
    """Replace the `modes:` line of one catalogue entry (a list or an alias)."""
    text = catalogue.read_text()
    start = text.index(f"  - name: {op}\n")
    match = re.compile(r"^    modes: .*$", re.MULTILINE).search(text, start)
    assert match, op
    catalogue.write_text(text[: match.start()] + f"    modes: {modes}" + text[match.end() :])


def row(table: str, op: str) -> str:
    (line,) = [line for line in table.splitlines() if line.startswith(f"| `{op}` |")]
    return line


@pytest.mark.parametrize(
    ("op", "category", "new_modes", "expected_cell"),
    [
        ("greater", "comparison", "[hard, smooth, c2]", "`hard`, `smooth`, `c2`"),
        ("argmax", "sorting", "[hard, smooth, c1]", "`hard`, `smooth`, `c1`"),
    ],
)
def test_changing_a_mode_list_changes_the_docs_table(tree, capsys, op, category, new_modes,
                                                     expected_cell):
    table_path = tree / f"docs/reference/generated/{category}.md"
    before = table_path.read_text()
    assert "`hard`, `smooth`, `c0`, `c1`, `c2`" in row(before, op)

    set_modes(tree / CATALOGUE_PATH, op, new_modes)
    assert main(["--root", str(tree)]) == 0, capsys.readouterr().err

    after = table_path.read_text()
    assert row(after, op).split(" | ")[2] == expected_cell
    # Only that row changed.
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert [b for _, b in changed] == [row(after, op)]
    if category == "sorting":  # ops with methods also appear in the support matrix
        matrix = (tree / "docs/reference/generated/support-matrix.md").read_text()
        assert row(matrix, op).split(" | ")[1:4] == ["hard, smooth, c1"] * 3


def test_every_generated_table_is_included_by_a_page():
    included = {
        m for p in pages() for m in re.findall(r'--8<--\s+"([^"]+)"', p.read_text())
    }
    for table in sorted(TABLES.glob("*.md")):
        relative = table.relative_to(ROOT).as_posix()
        assert relative in included, f"{relative} is not included by any page of {DOCS.name}/"
