"""Render the examples gallery's plots into docs/assets/generated/examples/.

Run by the MkDocs hook (docs/_scripts/hooks.py) before every build, or by hand:
``python docs/_scripts/example_figures.py [--force]``. Each plot comes from training the
example itself (its ``train`` on the configuration below, then its ``plot`` where it has
one), so the gallery always shows what the current code does. A PNG is re-rendered only
when it is missing or older than its example or than this script. The documentation
tests' build sets `DIFFBIO_DOCS_STAND_IN_PLOTS` and gets dated stand-ins for missing
plots instead (`generate`).
"""

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `examples` is a top-level package of the repository
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "assets" / "generated" / "examples"


def quality_filtering(path: Path) -> None:
    from examples import quality_filtering as example

    initial, learned, data = example.train(verbose=False)
    _via_example_plot(lambda tmp: example.plot(initial, learned, data, tmp), path)


def quality_filter_operator(path: Path) -> None:
    from examples import quality_filter_operator as example

    _, op, data = example.train(verbose=False)
    _via_example_plot(lambda tmp: example.plot(op, data, tmp), path)


def gene_ranking(path: Path) -> None:
    from examples import gene_ranking as example

    fitted = example.fit(verbose=False)
    _via_example_plot(lambda tmp: example.plot(*fitted, tmp), path)


def variant_selection(path: Path) -> None:
    from examples import variant_selection as example

    initial, learned, (_, _, causal) = example.train(verbose=False)
    _via_example_plot(lambda tmp: example.plot(initial, learned, causal, tmp), path)


def median_normalization(path: Path) -> None:
    from examples import median_normalization as example

    initial, learned, truth, _ = example.train(verbose=False)
    _via_example_plot(lambda tmp: example.plot(initial, learned, truth, tmp), path)


def smith_waterman(path: Path) -> None:
    from examples import smith_waterman as example

    # Fewer, longer pairs and fewer steps than `main`: about a third of its time.
    op, data, _, _, _ = example.train(steps=100, num_pairs=96, length=40, verbose=False)
    _via_example_plot(lambda tmp: example.plot(op, data, tmp), path)


FIGURES: dict[str, Callable[[Path], None]] = {
    "quality_filtering": quality_filtering,
    "quality_filter_operator": quality_filter_operator,
    "gene_ranking": gene_ranking,
    "variant_selection": variant_selection,
    "median_normalization": median_normalization,
    "smith_waterman": smith_waterman,
}


def _via_example_plot(write: Callable[[Path], object], path: Path) -> None:
    """Let `write` draw into a temporary PNG beside `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


STAND_IN_ENV = "DIFFBIO_DOCS_STAND_IN_PLOTS"
"""Set (to any non-empty value) by the documentation tests: their site build draws a
labelled stand-in for each missing plot instead of training the example (the examples'
own tests train them and check their plots)."""


def _stand_in(name: str, path: Path) -> None:
    """A small labelled PNG for `name`, dated 1970 so that the next real build finds it
    stale and renders the plot."""
    import matplotlib.pyplot as plt

    def write(tmp: Path) -> None:
        fig, ax = plt.subplots(figsize=(3, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{name}: plot drawn by make docs", ha="center", va="center")
        fig.savefig(tmp, dpi=50)
        plt.close(fig)

    _via_example_plot(write, path)
    os.utime(path, (0, 0))


def generate(
    out: Path = OUT, force: bool = False, verbose: bool = False, stand_in: bool | None = None
) -> list[Path]:
    """Render the plots that are missing or stale; return the paths written. With
    `stand_in` (default: the `DIFFBIO_DOCS_STAND_IN_PLOTS` environment variable), only
    missing plots are written, as stand-ins (`_stand_in`), and stale ones are kept."""
    if stand_in is None:
        stand_in = bool(os.environ.get(STAND_IN_ENV))
    script = Path(__file__).stat().st_mtime
    written = []
    for name, render in FIGURES.items():
        path = out / f"{name}.png"
        source = (ROOT / "examples" / f"{name}.py").stat().st_mtime
        if stand_in:
            if not path.exists():
                _stand_in(name, path)
                written.append(path)
        elif force or not path.exists() or path.stat().st_mtime < max(script, source):
            start = time.perf_counter()
            render(path)
            written.append(path)
            if verbose:
                print(f"{path} ({time.perf_counter() - start:.1f} s)")
    return written


if __name__ == "__main__":
    generate(force="--force" in sys.argv, verbose=True)
