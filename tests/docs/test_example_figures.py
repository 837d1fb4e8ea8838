"""The gallery's plots are drawn at build time: missing or stale ones are re-rendered by
docs/_scripts/example_figures.py (here with stand-in renderers, not the real training)."""

import importlib.util
import os

from ._helpers import DOCS, ROOT

_SPEC = importlib.util.spec_from_file_location(
    "diffbio_docs_example_figures_test", DOCS / "_scripts" / "example_figures.py"
)
figures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(figures)


def test_every_example_has_a_plot():
    examples = {p.stem for p in (ROOT / "examples").glob("*.py") if not p.stem.startswith("_")}
    assert set(figures.FIGURES) == examples


def test_missing_and_stale_plots_are_rendered_fresh_ones_are_kept(tmp_path, monkeypatch):
    calls = []

    def render(path):
        calls.append(path.name)
        figures._via_example_plot(lambda tmp: tmp.write_bytes(b"png"), path)

    monkeypatch.setattr(figures, "FIGURES", {"smith_waterman": render, "gene_ranking": render})
    assert figures.generate(tmp_path) == [tmp_path / "smith_waterman.png",
                                          tmp_path / "gene_ranking.png"]
    assert figures.generate(tmp_path) == []  # both newer than their examples
    example = (ROOT / "examples" / "smith_waterman.py").stat().st_mtime
    os.utime(tmp_path / "smith_waterman.png", (example - 10, example - 10))
    assert figures.generate(tmp_path) == [tmp_path / "smith_waterman.png"]
    assert calls == ["smith_waterman.png", "gene_ranking.png", "smith_waterman.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gene_ranking.png",
                                                          "smith_waterman.png"]  # no temp
