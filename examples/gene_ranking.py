"""Learn gene scores whose ranking matches a target, through a soft Spearman loss.

Genes carry a few observed features (expression summaries); a hidden linear rule
decides their true importance. A linear model scores the genes, `soft_ops.rank`
turns the scores into differentiable ranks, and the loss is one minus the Pearson
correlation of those ranks with the target ranks: a soft Spearman correlation.
Ranks are invariant to any monotone rescaling of the scores, which is exactly why a
ranking loss needs a differentiable rank.

With ``--devices N`` the example trains data-parallel over a mesh of N devices: a
batch of gene panels (each panel its own set of genes under the same hidden rule) is
sharded over the devices with `NamedSharding`, the model's weights are replicated, and
`jax.jit` partitions the step: each device ranks its own panels (the ranks need no
communication), and only the gradient is summed across devices. On a CPU-only machine
the N devices are simulated (`jax_num_cpu_devices`).

Run: ``python -m examples.gene_ranking`` (one device), or
``python -m examples.gene_ranking --devices 8``.
"""

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from diffbio.core import soft_ops
from examples.quality_filtering import Result

NUM_GENES = 300
NUM_FEATURES = 8
OUTPUT = Path(__file__).parent / "output" / "gene_ranking.png"


def simulate(key: jax.Array, num_genes: int = NUM_GENES):
    """Features, and target ranks from a hidden linear importance rule plus noise."""
    k_x, k_w, k_noise = jax.random.split(key, 3)
    features = jax.random.normal(k_x, (num_genes, NUM_FEATURES))
    true_weights = jax.random.normal(k_w, (NUM_FEATURES,))
    importance = features @ true_weights + 0.3 * jax.random.normal(k_noise, (num_genes,))
    target_ranks = soft_ops.rank(importance, mode="hard")
    return features, target_ranks


def soft_spearman(scores: jax.Array, target_ranks: jax.Array, softness: float) -> jax.Array:
    """Pearson correlation between soft ranks of ``scores`` and the target ranks, along
    the last axis (one correlation per panel for a batch of panels)."""
    ranks = soft_ops.rank(scores, axis=-1, softness=softness)
    a = ranks - ranks.mean(axis=-1, keepdims=True)
    b = target_ranks - target_ranks.mean(axis=-1, keepdims=True)
    return jnp.sum(a * b, axis=-1) / jnp.sqrt(
        jnp.sum(a * a, axis=-1) * jnp.sum(b * b, axis=-1)
    )


def spearman(scores, target_ranks) -> float:
    """The exact (hard) Spearman correlation, from scipy."""
    return float(scipy.stats.spearmanr(np.asarray(scores), np.asarray(target_ranks))[0])


def fit(steps: int = 200, softness: float = 0.05, seed: int = 0, verbose: bool = True):
    """Train the linear scores; returns `(features, target_ranks, initial, learned)`."""
    features, target_ranks = simulate(jax.random.key(seed))
    weights = 0.01 * jax.random.normal(jax.random.key(seed + 1), (NUM_FEATURES,))
    initial = weights
    optimiser = optax.adam(0.05)
    state = optimiser.init(weights)

    def loss_fn(w):
        return 1.0 - soft_spearman(features @ w, target_ranks, softness)

    @jax.jit
    def step(w, state):
        loss, grad = jax.value_and_grad(loss_fn)(w)
        updates, state = optimiser.update(grad, state)
        return optax.apply_updates(w, updates), state, loss

    for i in range(steps):
        weights, state, loss = step(weights, state)
        if verbose and (i % 50 == 0 or i == steps - 1):
            print(f"  step {i:4d}  soft Spearman loss {float(loss):.4f}")
    return features, target_ranks, initial, weights


def train(steps: int = 200, softness: float = 0.05, seed: int = 0, verbose: bool = True):
    """Spearman correlation of the scores with the target, before and after training."""
    features, target_ranks, initial, learned = fit(steps, softness, seed, verbose)
    return spearman(features @ initial, target_ranks), spearman(features @ learned, target_ranks)


def plot(features, target_ranks, initial, learned, path: Path = OUTPUT) -> Path:
    """Rank of the learned score against the target rank, before and after training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, w, name in zip(axes, (initial, learned), ("before", "after"), strict=True):
        scores = features @ w
        ranks = np.asarray(jax.scipy.stats.rankdata(scores))
        ax.scatter(np.asarray(target_ranks), ranks, s=6, alpha=0.7)
        ax.set_title(f"{name} training: Spearman rho {spearman(scores, target_ranks):.3f}")
        ax.set_xlabel("target rank")
    axes[0].set_ylabel("rank of the learned score")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def simulate_panels(key: jax.Array, num_panels: int, genes_per_panel: int):
    """Features (panels, genes, features) and target ranks (panels, genes): every panel
    its own genes and noise, one hidden importance rule for all."""
    k_x, k_w, k_noise = jax.random.split(key, 3)
    features = jax.random.normal(k_x, (num_panels, genes_per_panel, NUM_FEATURES))
    true_weights = jax.random.normal(k_w, (NUM_FEATURES,))
    noise = 0.3 * jax.random.normal(k_noise, (num_panels, genes_per_panel))
    target_ranks = soft_ops.rank(features @ true_weights + noise, axis=-1, mode="hard")
    return features, target_ranks


def train_data_parallel(
    devices: int,
    steps: int = 200,
    panels_per_device: int = 2,
    genes_per_panel: int = 64,
    softness: float = 0.05,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Data-parallel training over a mesh of ``devices`` devices: the panels are sharded
    over the mesh's "batch" axis, the weights and optimiser state replicated.

    Returns the mean per-panel Spearman correlation before and after training, and
    what the step did: the devices, the rows of the batch each one holds, and the
    collectives of the compiled step (an all-reduce of the gradient, nothing else).
    """
    available = jax.devices()
    if devices > len(available):
        raise ValueError(
            f"--devices {devices}: only {len(available)} device(s) visible; on a CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} (or call "
            f'jax.config.update("jax_num_cpu_devices", {devices}) right after importing jax)'
        )
    mesh = Mesh(np.array(available[:devices]), ("batch",))
    batch = NamedSharding(mesh, P("batch"))  # leading (panel) axis split over the devices
    replicated = NamedSharding(mesh, P())

    features, target_ranks = simulate_panels(
        jax.random.key(seed), devices * panels_per_device, genes_per_panel
    )
    features, target_ranks = jax.device_put((features, target_ranks), batch)
    weights = 0.01 * jax.random.normal(jax.random.key(seed + 1), (NUM_FEATURES,))
    optimiser = optax.adam(0.05)
    weights = jax.device_put(weights, replicated)
    state = jax.device_put(optimiser.init(weights), replicated)

    def loss_fn(w, features, target_ranks):
        scores = features @ w  # (panels, genes), sharded like the panels
        return 1.0 - jnp.mean(soft_spearman(scores, target_ranks, softness))

    def step(w, state, features, target_ranks):
        loss, grad = jax.value_and_grad(loss_fn)(w, features, target_ranks)
        updates, state = optimiser.update(grad, state)
        return optax.apply_updates(w, updates), state, loss

    step = jax.jit(
        step,
        in_shardings=(replicated, replicated, batch, batch),
        out_shardings=(replicated, replicated, replicated),
    )
    compiled = step.lower(weights, state, features, target_ranks).compile()

    def mean_spearman(w) -> float:
        scores = np.asarray(features @ w)
        targets = np.asarray(target_ranks)
        return float(np.mean([spearman(s, t) for s, t in zip(scores, targets, strict=True)]))

    before = mean_spearman(weights)
    for i in range(steps):
        weights, state, loss = compiled(weights, state, features, target_ranks)
        # One step at a time: with more simulated CPU devices than cores, overlapping
        # steps can starve the all-reduce of threads (XLA's CPU collectives then stall).
        loss.block_until_ready()
        if verbose and (i % 50 == 0 or i == steps - 1):
            print(f"  step {i:4d}  mean soft Spearman loss {float(loss):.4f}")
    after = mean_spearman(weights)
    hlo = compiled.as_text()
    return {
        "before": before,
        "after": after,
        "devices": devices,
        "panels": int(features.shape[0]),
        "rows_per_device": sorted({s.data.shape[0] for s in features.addressable_shards}),
        "weights_replicated": bool(weights.sharding.is_fully_replicated),
        "collectives": {
            kind: hlo.count(f" {kind}(") + hlo.count(f" {kind}-start(")
            for kind in ("all-reduce", "all-gather", "all-to-all", "collective-permute")
        },
    }


def main(steps: int = 200, path: Path = OUTPUT) -> Result:
    start = time.perf_counter()
    print(f"Gene ranking: learn scores for {NUM_GENES} genes through a soft Spearman loss")
    features, target_ranks, initial, learned = fit(steps)
    before = spearman(features @ initial, target_ranks)
    after = spearman(features @ learned, target_ranks)
    print(f"  Spearman rho {before:.3f} -> {after:.3f}")
    print(f"  plot: {plot(features, target_ranks, initial, learned, path)}")
    return Result(
        name="gene ranking",
        metric="Spearman rho",
        before=before,
        after=after,
        seconds=time.perf_counter() - start,
        details=f"{NUM_GENES} genes, rank via soft_ops.rank (softsort, smooth)",
    )


def main_data_parallel(devices: int, steps: int = 200) -> dict:
    print(f"Gene ranking, data-parallel over {devices} devices: panels sharded, weights "
          "replicated")
    result = train_data_parallel(devices, steps)
    print(f"  {result['panels']} panels, {result['rows_per_device']} per device; "
          f"collectives of one step: {result['collectives']}")
    print(f"  mean Spearman rho {result['before']:.3f} -> {result['after']:.3f}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Learn gene scores through a soft Spearman loss.")
    parser.add_argument("--devices", type=int, default=None,
                        help="train data-parallel over a mesh of N devices (simulated on CPU)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if args.devices is None:
        main(args.steps)
    else:
        # Before jax starts its backends: on a CPU-only machine, simulate the devices.
        jax.config.update("jax_num_cpu_devices", max(args.devices, 1))
        main_data_parallel(args.devices, args.steps)
