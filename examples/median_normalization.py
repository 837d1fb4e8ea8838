"""Median-of-ratios normalisation learned through a soft median.

Single-cell counts ``k[c, g] ~ Poisson(s_c * mu_g * f[c, g])``: each cell has a hidden
size factor ``s_c`` (sequencing depth), and a block of genes is strongly up-regulated in
half the cells (``f = 8``). Library-size normalisation (dividing by total counts)
mistakes that up-regulation for depth; the median of each cell's log-ratios to a
reference profile does not, because a median ignores a minority of outlying genes.

We learn per-cell log scalings ``theta_c`` by gradient descent: the loss is the squared
`soft_ops.median`, over genes, of the log-ratios between a cell's normalised expression
and the gene-wise mean profile (which itself moves with ``theta``). Starting from library
size, the scalings converge to the median-of-ratios answer. Metric: RMS error of the
(centred) log size factors against the truth.

Run: ``python -m examples.median_normalization``.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffbio.core import soft_ops
from examples.quality_filtering import Result

NUM_CELLS = 120
NUM_GENES = 150
UP_FRACTION = 0.2  # genes up-regulated in the second cell type
UP_FOLD = 8.0
OUTPUT = Path(__file__).parent / "output" / "median_normalization.png"


def simulate(seed: int = 0, num_cells: int = NUM_CELLS, num_genes: int = NUM_GENES):
    """Counts and the true log size factors (centred)."""
    rng = np.random.default_rng(seed)
    log_size = rng.normal(0.0, 0.5, num_cells)
    mean = np.exp(rng.normal(np.log(30.0), 0.7, num_genes))
    fold = np.ones((num_cells, num_genes))
    up = rng.choice(num_genes, int(UP_FRACTION * num_genes), replace=False)
    fold[np.ix_(np.arange(num_cells) % 2 == 1, up)] = UP_FOLD
    counts = rng.poisson(np.exp(log_size)[:, None] * mean[None, :] * fold)
    return jnp.asarray(counts, jnp.float32), jnp.asarray(log_size - log_size.mean(), jnp.float32)


def log_ratios(theta: jax.Array, log_counts: jax.Array) -> jax.Array:
    """Each cell's normalised log expression minus the gene-wise mean across cells."""
    normalised = log_counts - theta[:, None]
    return normalised - normalised.mean(axis=0, keepdims=True)


def loss_fn(theta: jax.Array, log_counts: jax.Array, softness: float) -> jax.Array:
    medians = soft_ops.median(log_ratios(theta, log_counts), axis=-1, softness=softness)
    return jnp.mean(medians**2)


def rms_error(theta, true_log_size) -> float:
    centred = np.asarray(theta) - np.mean(np.asarray(theta))
    return float(np.sqrt(np.mean((centred - np.asarray(true_log_size)) ** 2)))


def train(steps: int = 200, softness: float = 0.05, seed: int = 0, verbose=True, **simulate_kw):
    """Returns (library-size theta, learned theta, true log size factors, counts)."""
    counts, true_log_size = simulate(seed, **simulate_kw)
    log_counts = jnp.log(counts + 0.5)
    library = jnp.log(counts.sum(axis=1))
    theta = library - library.mean()
    initial = theta
    optimiser = optax.adam(0.02)
    state = optimiser.init(theta)

    @jax.jit
    def step(theta, state):
        loss, grad = jax.value_and_grad(loss_fn)(theta, log_counts, softness)
        updates, state = optimiser.update(grad, state)
        return optax.apply_updates(theta, updates), state, loss

    for i in range(steps):
        theta, state, loss = step(theta, state)
        if verbose and (i % 50 == 0 or i == steps - 1):
            print(
                f"  step {i:4d}  loss {float(loss):.5f}  "
                f"RMS error {rms_error(theta, true_log_size):.4f}"
            )
    return initial, theta, true_log_size, counts


def hard_median_of_ratios(counts: jax.Array) -> np.ndarray:
    """The classical (hard) median-of-ratios log size factors, centred, for reference."""
    log_counts = np.log(np.asarray(counts) + 0.5)
    ratios = log_counts - log_counts.mean(axis=0, keepdims=True)
    factors = np.median(ratios, axis=1)
    return factors - factors.mean()


def plot(initial, learned, truth, path: Path = OUTPUT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    truth = np.asarray(truth)
    cell_type = np.arange(len(truth)) % 2
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for theta, label, marker in ((initial, "library size", "x"), (learned, "soft median", "o")):
        theta = np.asarray(theta) - np.mean(np.asarray(theta))
        for kind in (0, 1):
            sel = cell_type == kind
            ax.scatter(truth[sel], theta[sel], s=14, marker=marker, label=f"{label}, type {kind}")
    lims = [truth.min() - 0.3, truth.max() + 0.3]
    ax.plot(lims, lims, "k--", lw=0.8)
    ax.set_xlabel("true log size factor")
    ax.set_ylabel("estimated log size factor")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(steps: int = 200) -> Result:
    start = time.perf_counter()
    print("Median normalisation: learn per-cell scalings through a soft median of log-ratios")
    initial, learned, truth, counts = train(steps)
    before, after = rms_error(initial, truth), rms_error(learned, truth)
    hard = rms_error(hard_median_of_ratios(counts), truth)
    print(f"  RMS error of log size factors {before:.3f} (library size) -> {after:.3f}")
    print(f"  (the hard median-of-ratios estimate: {hard:.3f})")
    print(f"  plot: {plot(initial, learned, truth)}")
    return Result(
        name="median normalisation",
        metric="size-factor RMSE",
        before=before,
        after=after,
        seconds=time.perf_counter() - start,
        details=f"{NUM_CELLS} cells x {NUM_GENES} genes; hard median-of-ratios RMSE {hard:.3f}",
    )


if __name__ == "__main__":
    main()
