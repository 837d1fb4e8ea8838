"""The gallery's plots are drawn at build time: missing or stale ones are re-rendered by
docs/_scripts/example_figures.py (here with stand-in renderers, not the real training)."""

import os

import pytest

from ._helpers import ROOT, docs_script

figures = docs_script("example_figures")


def test_every_example_has_a_plot():
    examples = {p.stem for p in (ROOT / "examples").glob("*.py") if not p.stem.startswith("_")}
    assert set(figures.FIGURES) == examples


@pytest.fixture
def fake_renders(monkeypatch) -> list[str]:
    """Two examples whose "training" writes b"png"; the names rendered, in order."""
    calls = []

    def render(path):
        calls.append(path.name)
        figures._via_example_plot(lambda tmp: tmp.write_bytes(b"png"), path)

    monkeypatch.setattr(figures, "FIGURES", {"smith_waterman": render, "gene_ranking": render})
    return calls


def test_missing_and_stale_plots_are_rendered_fresh_ones_are_kept(tmp_path, fake_renders):
    calls = fake_renders
    assert figures.generate(tmp_path, stand_in=False) == [
        tmp_path / "smith_waterman.png",
        tmp_path / "gene_ranking.png",
    ]
    assert figures.generate(tmp_path, stand_in=False) == []  # both newer than their examples
    example = (ROOT / "examples" / "smith_waterman.py").stat().st_mtime
    os.utime(tmp_path / "smith_waterman.png", (example - 10, example - 10))
    assert figures.generate(tmp_path, stand_in=False) == [tmp_path / "smith_waterman.png"]
    assert calls == ["smith_waterman.png", "gene_ranking.png", "smith_waterman.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gene_ranking.png",
        "smith_waterman.png",
    ]  # no temp


def test_stand_ins_fill_only_missing_plots_and_a_real_build_replaces_them(
    tmp_path, monkeypatch, fake_renders
):
    calls = fake_renders
    figures.FIGURES["gene_ranking"](tmp_path / "gene_ranking.png")
    example = (ROOT / "examples" / "gene_ranking.py").stat().st_mtime
    os.utime(tmp_path / "gene_ranking.png", (example - 10, example - 10))  # stale
    monkeypatch.setenv(figures.STAND_IN_ENV, "1")
    stand_in = tmp_path / "smith_waterman.png"
    assert figures.generate(tmp_path) == [stand_in]  # the stale plot is kept
    assert stand_in.read_bytes().startswith(b"\x89PNG")
    assert stand_in.stat().st_mtime == 0
    assert calls == ["gene_ranking.png"]  # no training
    assert figures.generate(tmp_path) == []
    monkeypatch.delenv(figures.STAND_IN_ENV)
    assert figures.generate(tmp_path) == [stand_in, tmp_path / "gene_ranking.png"]
    assert calls == ["gene_ranking.png", "smith_waterman.png", "gene_ranking.png"]
    assert stand_in.read_bytes() == b"png"
