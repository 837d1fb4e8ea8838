"""Shared helpers of the documentation tests: paths, page discovery, block extraction."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Folders of docs/ that are not pages: the hook's scripts and the generated tables
# (included into pages with `--8<--`, excluded from the build in mkdocs.yml).
NOT_PAGES = ("_scripts", "reference/generated")

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
SNIPPET = re.compile(r'^(?P<indent>[ \t]*)--8<--\s+"(?P<path>[^"]+)"\s*$', re.MULTILINE)
PYTHON_LANGUAGES = {"python", "py", "python3"}
# Fences that are explicitly not Python and are therefore not executed.
OTHER_LANGUAGES = {"bash", "console", "shell", "sh", "text"}


def pages() -> list[Path]:
    """Every Markdown page of the site, in a stable order."""
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if not any(p.relative_to(DOCS).as_posix().startswith(f"{d}/") for d in NOT_PAGES)
    )


def expand_snippets(text: str) -> str:
    """Replace `--8<-- "path"` lines by the file they include (paths from the repo root)."""

    def include(match: re.Match) -> str:
        indent = match["indent"]
        content = (ROOT / match["path"]).read_text()
        return "\n".join(indent + line if line else line for line in content.splitlines())

    return SNIPPET.sub(include, text)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, dedented code) of each fenced block, in page order."""
    blocks = []
    for match in FENCE.finditer(text):
        language = match["info"].strip().split(" ")[0].lower() if match["info"].strip() else ""
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines())
        blocks.append((language, code))
    return blocks


def python_blocks(page: Path) -> list[str]:
    """The code of each ```python block of a page, snippets expanded."""
    return [
        code
        for language, code in fenced_blocks(expand_snippets(page.read_text()))
        if language in PYTHON_LANGUAGES
    ]


def docs_script(name: str) -> ModuleType:
    """docs/_scripts/`name`.py, imported by path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"diffbio_docs_{name}_test", DOCS / "_scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
