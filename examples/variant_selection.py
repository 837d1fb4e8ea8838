"""Select causal variants with a differentiable top-k.

Genotypes of ``NUM_SAMPLES`` people at ``NUM_VARIANTS`` variants; a phenotype driven by
``K`` hidden causal variants plus noise. Every variant gets a learnable score;
`soft_ops.top_k` turns the scores into a soft membership of the top ``K`` (its SoftIndex,
summed over the ``K`` picks), and a linear model predicts the phenotype from the selected
variants only. Gradient descent through the top-k moves the causal variants' scores to
the top; the softness anneals from 1.0 to 0.2 so the selection hardens as it trains.

Why ``method="softsort"`` and not the default ``neuralsort``. The causal variants start
at random ranks among 200, so the relaxation must (a) give every variant a gradient at
the start, and (b) give a variant more membership the higher its score, so that the
gradient keeps pushing a causal variant up until it is in the top k. Both methods
standardise the scores to (0, 1) (``standardize=True``), where the softness is the width
of a row:

- SoftSort's row ``r`` is ``softmax(-|a_r - z| / softness)`` around the anchor ``a_r``,
  the exact r-th largest standardised score. At softness 1.0 every one of the 200
  variants receives gradient; the row stays centred on the right order statistic at any
  softness, and a variant's membership rises with its score until it reaches the top
  and stays there. Annealing to 0.2 sharpens the selection; annealing further (to 0.05
  or 0.01) lowered the recall over seeds, because the variants still outside the top k
  lose their gradient before they arrive. On the default seed the recall goes from 0.2
  to 1.0; over seeds 0 to 4 it ends between 0.6 and 1.0.
- NeuralSort's row ``r`` is ``softmax(((n + 1 - 2r) z - sum_i |z_i - z|) / softness)``
  with a smoothed ``|.|`` of the same softness. Its scores grow with ``n``, and when the
  softness is not far below the gaps between the top scores (about 0.01 here) the
  smoothed ``|.|`` moves the rows: at softness 1.0 all five rows put 55-70% of their
  mass on the current maximum, and at 0.2 even the first row peaks at rank 4 or 5. A
  variant's membership then rises to about 0.5 near rank 5 and falls back to 0 as its
  score keeps rising (`test_neuralsort_membership_falls_as_a_score_rises` checks it),
  so gradient descent holds the causal variants below the top instead of pushing them
  in. At softness 0.01, where the rows are in place, they are nearly hard and only about
  14 of the 200 variants receive any gradient. With the schedule below NeuralSort keeps
  the recall at its initial 0.2; constant softness 0.005, 0.01 or 0.02 reached at most
  0.4 on three seeds.

Run: ``python -m examples.variant_selection``.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffbio.core import soft_ops
from examples.quality_filtering import Result

NUM_SAMPLES = 400
NUM_VARIANTS = 200
K = 5
METHOD = "softsort"  # see the module docstring for why not the default "neuralsort"
OUTPUT = Path(__file__).parent / "output" / "variant_selection.png"


def simulate(seed: int = 0, num_samples: int = NUM_SAMPLES, num_variants: int = NUM_VARIANTS):
    """Standardised genotypes (0/1/2 copies), phenotype and the causal variants."""
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(0.05, 0.5, num_variants)
    genotypes = rng.binomial(2, frequency, (num_samples, num_variants)).astype(np.float32)
    genotypes = (genotypes - genotypes.mean(0)) / (genotypes.std(0) + 1e-6)
    causal = rng.choice(num_variants, K, replace=False)
    effects = rng.choice([-1.0, 1.0], K) * rng.uniform(0.4, 0.8, K)
    phenotype = genotypes[:, causal] @ effects + rng.normal(0.0, 1.0, num_samples)
    return jnp.asarray(genotypes), jnp.asarray(phenotype, jnp.float32), np.sort(causal)


def selection(scores: jax.Array, softness, method: str = METHOD) -> jax.Array:
    """Soft membership of each variant in the top ``K`` scores, in [0, 1]."""
    _, soft_index = soft_ops.top_k(scores, K, softness=softness, method=method)
    return soft_index.sum(axis=0)


def loss_fn(params: dict, genotypes, phenotype, softness, method: str = METHOD) -> jax.Array:
    weights = selection(params["scores"], softness, method) * params["effects"]
    prediction = genotypes @ weights + params["intercept"]
    return jnp.mean((prediction - phenotype) ** 2)


def recall(scores, causal) -> float:
    """Fraction of the causal variants among the ``K`` highest (hard) scores."""
    top = np.argsort(-np.asarray(scores))[:K]
    return len(set(top.tolist()) & set(np.asarray(causal).tolist())) / K


def softness_at(step: int, steps: int, start: float = 1.0, end: float = 0.2) -> float:
    return start * (end / start) ** (step / max(steps - 1, 1))


def train(
    steps: int = 400, seed: int = 0, verbose: bool = True, method: str = METHOD,
    **simulate_kwargs,
):
    """Returns (initial params, learned params, data)."""
    genotypes, phenotype, causal = simulate(seed, **simulate_kwargs)
    num_variants = genotypes.shape[1]
    params = {
        "scores": jax.random.normal(jax.random.key(seed + 1), (num_variants,)),
        "effects": jnp.zeros((num_variants,)),
        "intercept": jnp.zeros(()),
    }
    initial = params
    optimiser = optax.adam(0.05)
    state = optimiser.init(params)

    @jax.jit
    def step(params, state, softness):
        loss, grads = jax.value_and_grad(loss_fn)(params, genotypes, phenotype, softness, method)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    for i in range(steps):
        params, state, loss = step(params, state, softness_at(i, steps))
        if verbose and (i % 100 == 0 or i == steps - 1):
            print(
                f"  step {i:4d}  loss {float(loss):.4f}  softness {softness_at(i, steps):.2f}  "
                f"recall {recall(params['scores'], causal):.2f}"
            )
    return initial, params, (genotypes, phenotype, causal)


def plot(initial, learned, causal, path: Path = OUTPUT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=False)
    for ax, params, title in zip(axes, (initial, learned), ("before", "after"), strict=True):
        scores = np.asarray(params["scores"])
        ax.scatter(range(len(scores)), scores, s=6, color="grey", label="variant")
        ax.scatter(causal, scores[causal], s=30, color="crimson", label="causal")
        ax.axhline(np.sort(scores)[-K], color="k", lw=0.8, ls="--", label=f"top-{K} cut")
        ax.set_title(f"variant scores {title} training")
        ax.set_xlabel("variant")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(steps: int = 400) -> Result:
    start = time.perf_counter()
    print(f"Variant selection: learn scores so that soft top-{K} picks the causal variants")
    initial, learned, (_, _, causal) = train(steps)
    before, after = recall(initial["scores"], causal), recall(learned["scores"], causal)
    picked = np.sort(np.argsort(-np.asarray(learned["scores"]))[:K])
    print(f"  causal variants {causal.tolist()}, hard top-{K} after training {picked.tolist()}")
    print(f"  recall of the causal variants {before:.2f} -> {after:.2f}")
    print(f"  plot: {plot(initial, learned, causal)}")
    return Result(
        name="variant selection",
        metric=f"top-{K} recall",
        before=before,
        after=after,
        seconds=time.perf_counter() - start,
        details=f"{NUM_VARIANTS} variants, {NUM_SAMPLES} samples, soft_ops.top_k ({METHOD})",
    )


if __name__ == "__main__":
    main()
