"""`python -m codegen [--check]`: write the generated files, or check they are current."""

import argparse
import difflib
import sys
from pathlib import Path

from .generate import CATALOGUE_PATH, GENERATED_DIRS, ROOT, render
from .load import CatalogueError, load, roundtrip

MAX_DIFF_LINES = 80


def _stale(expected: dict[str, str], root: Path) -> list[str]:
    """Files under the generated folders that the catalogue no longer produces."""
    found = []
    for folder in GENERATED_DIRS:
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and "__pycache__" not in relative and relative not in expected:
                found.append(relative)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if files on disk differ")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    root: Path = args.root

    catalogue_file = root / CATALOGUE_PATH
    try:
        catalogue = load(catalogue_file)
    except CatalogueError as error:
        print(f"error: invalid catalogue\n{error}", file=sys.stderr)
        return 1
    text = catalogue_file.read_text()
    if roundtrip(text) != text:
        diff = difflib.unified_diff(
            text.splitlines(True), roundtrip(text).splitlines(True), CATALOGUE_PATH, "round-trip"
        )
        print(
            f"error: {CATALOGUE_PATH} does not survive a ruamel.yaml round-trip unchanged; "
            "use the layout below:\n" + "".join(list(diff)[:MAX_DIFF_LINES]),
            file=sys.stderr,
        )
        return 1

    expected = render(catalogue)
    changed = []
    for relative, content in expected.items():
        path = root / relative
        current = path.read_text() if path.exists() else None
        if current != content:
            changed.append((relative, current, content))
    stale = _stale(expected, root)

    if args.check:
        if not changed and not stale:
            print(f"generated files are up to date with {CATALOGUE_PATH} ({len(expected)} files)")
            return 0
        lines: list[str] = []
        for relative, current, content in changed:
            lines += difflib.unified_diff(
                (current or "").splitlines(True),
                content.splitlines(True),
                f"{relative} (on disk)",
                f"{relative} (from {CATALOGUE_PATH})",
            )
        shown = "".join(lines[:MAX_DIFF_LINES])
        hidden = len(lines) - MAX_DIFF_LINES
        more = f"\n... {hidden} more diff lines" if hidden > 0 else ""
        names = "\n".join(f"  {r}" for r, _, _ in changed) + "".join(
            f"\n  {s} (stale: no longer generated)" for s in stale
        )
        print(
            f"error: generated files differ from what {CATALOGUE_PATH} produces "
            f"(edited by hand, or the catalogue changed without regenerating):\n{names}\n"
            f"{shown}{more}\nrun `make generate` and commit the result",
            file=sys.stderr,
        )
        return 1

    for relative, _, content in changed:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        print(f"wrote {relative}")
    for relative in stale:
        (root / relative).unlink()
        print(f"removed {relative}")
    print(f"{len(changed)} written, {len(stale)} removed, {len(expected) - len(changed)} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
