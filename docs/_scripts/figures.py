"""Render the user guide's figures with matplotlib (Agg) into docs/assets/generated/.

Run by the MkDocs hook (docs/_scripts/hooks.py) before every build, or by hand:
``python docs/_scripts/figures.py``. Figures are only re-rendered when a PNG is missing
or older than this script, so `mkdocs serve` does not rebuild in a loop.
"""

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diffbio.core import soft_ops  # noqa: E402

DOCS = Path(__file__).resolve().parents[1]
OUT = DOCS / "assets" / "generated"
MODES = ("hard", "smooth", "c0", "c1", "c2")
SOFTNESSES = (0.1, 0.3, 1.0)
METHODS = ("softsort", "neuralsort", "sorting_network", "ot")


def _save(fig: plt.Figure, path: Path) -> None:
    """Write atomically, so that concurrent builds never read half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp, dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
    os.replace(tmp, path)


def sigmoidal_modes(path: Path) -> None:
    """sigmoidal and its derivative in the five modes (softness 0.1)."""
    x = jnp.linspace(-1.0, 1.0, 401)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for mode in MODES:
        y = soft_ops.sigmoidal(x, softness=0.1, mode=mode)
        dy = jax.vmap(jax.grad(lambda v, m=mode: soft_ops.sigmoidal(v, softness=0.1, mode=m)))(x)
        style = "k--" if mode == "hard" else "-"
        left.plot(x, y, style, label=mode, lw=1.6)
        right.plot(x, dy, style, label=mode, lw=1.6)
    left.set_title("sigmoidal(x, softness=0.1)")
    right.set_title("d/dx sigmoidal (hard: 0 almost everywhere)")
    for ax in (left, right):
        ax.set_xlabel("x")
        ax.axvspan(-0.5, 0.5, color="0.92", zorder=0)
        ax.legend(fontsize=8)
    _save(fig, path)


def soft_vs_hard(path: Path) -> None:
    """greater, relu, round and clip: hard against three softness values."""
    x = jnp.linspace(-2.0, 2.0, 401)
    ops: list[tuple[str, Callable]] = [
        ("greater(x, 0)", lambda v, s, m: soft_ops.greater(v, 0.0, softness=s, mode=m)),
        ("relu(x)", lambda v, s, m: soft_ops.relu(v, softness=s, mode=m)),
        ("round(x)", lambda v, s, m: soft_ops.round(v, softness=s, mode=m)),
        ("clip(x, -1, 1)", lambda v, s, m: soft_ops.clip(v, -1.0, 1.0, softness=s, mode=m)),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, (title, fn) in zip(axes, ops, strict=True):
        ax.plot(x, fn(x, 0.1, "hard"), "k--", lw=1.4, label="hard")
        for s in SOFTNESSES:
            ax.plot(x, fn(x, s, "smooth"), lw=1.5, label=f"softness={s}")
        ax.set_title(title)
        ax.set_xlabel("x")
    axes[0].legend(fontsize=8)
    _save(fig, path)


def argsort_heatmaps(path: Path) -> None:
    """The soft permutation matrix of argsort, one panel per method."""
    x = jnp.array([0.3, -1.2, 2.0, 0.9, 0.1, -0.4, 1.5, -2.0])
    fig, axes = plt.subplots(1, len(METHODS), figsize=(4.3 * len(METHODS), 4))
    for ax, method in zip(axes, METHODS, strict=True):
        p = np.asarray(soft_ops.argsort(x, softness=0.05, method=method))
        image = ax.imshow(p, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(f"method={method!r}", fontsize=10)
        ax.set_xlabel("input position j")
        ax.set_ylabel("sorted position i")
    fig.colorbar(image, ax=axes, shrink=0.8, label="P[i, j]")
    _save(fig, path)


def sort_rank_softness(path: Path) -> None:
    """Soft sort and soft rank of a fixed vector as softness grows."""
    x = jnp.array([0.3, -1.2, 2.0, 0.9, -0.4])
    softness = jnp.geomspace(0.01, 3.0, 60)
    sorted_values = jax.vmap(lambda s: soft_ops.sort(x, softness=s))(softness)
    ranks = jax.vmap(lambda s: soft_ops.rank(x, softness=s))(softness)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i in range(x.shape[0]):
        left.plot(softness, sorted_values[:, i], label=f"sorted[{i}]")
        right.plot(softness, ranks[:, i], label=f"rank of x[{i}]={float(x[i]):+.1f}")
    left.set_title("sort(x, softness)")
    right.set_title("rank(x, softness)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("softness")
        ax.legend(fontsize=7)
    _save(fig, path)


FIGURES: dict[str, Callable[[Path], None]] = {
    "sigmoidal-modes.png": sigmoidal_modes,
    "soft-vs-hard.png": soft_vs_hard,
    "argsort-heatmaps.png": argsort_heatmaps,
    "sort-rank-softness.png": sort_rank_softness,
}


def generate(out: Path = OUT, force: bool = False) -> list[Path]:
    """Render the figures that are missing or stale; return the paths written."""
    stamp = Path(__file__).stat().st_mtime
    written = []
    for name, render in FIGURES.items():
        path = out / name
        if force or not path.exists() or path.stat().st_mtime < stamp:
            render(path)
            written.append(path)
    return written


if __name__ == "__main__":
    for written_path in generate(force="--force" in sys.argv):
        print(written_path)
