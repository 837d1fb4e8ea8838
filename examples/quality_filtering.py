"""Learn read-filter thresholds by gradient descent through soft comparisons.

Reads carry a base-quality score and a mapping quality. A hidden rule decides which
reads are good: ``quality > 23.7 AND mapping_quality > 31.0`` (with 3% label noise).
The filter ``logical_and(greater(q, t_q), greater(mq, t_mq))`` is differentiable in
both thresholds and in its softness, so a plain optimiser recovers the hidden rule.

Run: ``python -m examples.quality_filtering``; the plot is saved to
``examples/output/quality_filtering.png``.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffbio.core import soft_ops

TRUE_QUALITY_THRESHOLD = 23.7
TRUE_MAPPING_THRESHOLD = 31.0
LABEL_NOISE = 0.03
OUTPUT = Path(__file__).parent / "output" / "quality_filtering.png"


@dataclass(frozen=True)
class Result:
    name: str
    metric: str
    before: float
    after: float
    seconds: float
    details: str


def simulate_reads(key: jax.Array, num_reads: int = 4000, noise: float = LABEL_NOISE):
    """Quality ~ U(0, 40), mapping quality ~ U(0, 60), labels from the hidden rule."""
    k_q, k_mq, k_flip = jax.random.split(key, 3)
    quality = jax.random.uniform(k_q, (num_reads,), minval=0.0, maxval=40.0)
    mapping = jax.random.uniform(k_mq, (num_reads,), minval=0.0, maxval=60.0)
    good = (quality > TRUE_QUALITY_THRESHOLD) & (mapping > TRUE_MAPPING_THRESHOLD)
    flip = jax.random.bernoulli(k_flip, noise, (num_reads,))
    return quality, mapping, jnp.where(flip, ~good, good).astype(jnp.float32)


def keep_probability(params: dict, quality: jax.Array, mapping: jax.Array) -> jax.Array:
    """The soft filter: a SoftBool per read. Softness is learned in log space."""
    softness = jnp.exp(params["log_softness"])
    q_pass = soft_ops.greater(quality, params["quality_threshold"], softness=softness)
    mq_pass = soft_ops.greater(mapping, params["mapping_threshold"], softness=softness)
    return soft_ops.logical_and(q_pass, mq_pass)


def loss_fn(params: dict, quality, mapping, labels, noise: float = LABEL_NOISE) -> jax.Array:
    """Binary cross-entropy of the labels under the soft filter and the known label-noise
    rate (a label is flipped with probability ``noise``)."""
    p = noise + (1 - 2 * noise) * keep_probability(params, quality, mapping)
    return -jnp.mean(labels * jnp.log(p) + (1 - labels) * jnp.log1p(-p))


def hard_accuracy(params: dict, quality, mapping, labels) -> float:
    keep = (quality > params["quality_threshold"]) & (mapping > params["mapping_threshold"])
    return float(jnp.mean(keep == labels.astype(bool)))


def train(steps: int = 400, learning_rate: float = 0.5, seed: int = 0, verbose: bool = True):
    """Fit both thresholds and the softness; returns (initial, learned) parameters."""
    quality, mapping, labels = simulate_reads(jax.random.key(seed))
    params = {
        "quality_threshold": jnp.float32(10.0),
        "mapping_threshold": jnp.float32(45.0),
        "log_softness": jnp.log(jnp.float32(4.0)),
    }
    initial = params
    optimiser = optax.adam(learning_rate)
    state = optimiser.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, quality, mapping, labels)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    for i in range(steps):
        params, state, loss = step(params, state)
        if verbose and (i % 50 == 0 or i == steps - 1):
            print(
                f"  step {i:4d}  loss {float(loss):.4f}  "
                f"quality > {float(params['quality_threshold']):6.2f}  "
                f"mapq > {float(params['mapping_threshold']):6.2f}  "
                f"softness {float(jnp.exp(params['log_softness'])):.3f}"
            )
    return initial, params, (quality, mapping, labels)


def plot(initial: dict, learned: dict, data, path: Path = OUTPUT, shown: int = 1500) -> Path:
    """Reads by base and mapping quality, coloured by label (the first ``shown`` of
    them), with the hidden rule and the initial and learned thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before, after = hard_accuracy(initial, *data), hard_accuracy(learned, *data)
    quality, mapping, labels = (np.asarray(x)[:shown] for x in data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(quality, mapping, c=labels, s=4, cmap="coolwarm", alpha=0.6)
    true = {
        "quality_threshold": TRUE_QUALITY_THRESHOLD,
        "mapping_threshold": TRUE_MAPPING_THRESHOLD,
    }
    # The hidden rule is drawn dashed on top, so that it stays visible where the learned
    # thresholds cover it.
    for params, style, color, name, z in (
        (true, "--", "tab:green", "hidden rule", 3),
        (initial, ":", "k", "initial", 2),
        (learned, "-", "k", "learned", 2),
    ):
        t_q, t_mq = float(params["quality_threshold"]), float(params["mapping_threshold"])
        label = f"{name}: q > {t_q:.1f}, mapq > {t_mq:.1f}"
        ax.axvline(t_q, color=color, ls=style, lw=1.2, zorder=z, label=label)
        ax.axhline(t_mq, color=color, ls=style, lw=1.2, zorder=z)
    ax.set_title(f"hard-filter accuracy {before:.2f} -> {after:.2f}", fontsize=9)
    ax.set_xlabel("base quality")
    ax.set_ylabel("mapping quality")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(steps: int = 400, path: Path = OUTPUT) -> Result:
    """Train, print the before/after accuracy, and save the plot to ``path``."""
    start = time.perf_counter()
    print("Soft quality filtering: learn 'quality > t_q AND mapq > t_mq' from labelled reads")
    initial, learned, data = train(steps)
    before, after = hard_accuracy(initial, *data), hard_accuracy(learned, *data)
    t_q, t_mq = float(learned["quality_threshold"]), float(learned["mapping_threshold"])
    print(f"  learned quality threshold {t_q:.2f} (true {TRUE_QUALITY_THRESHOLD})")
    print(f"  learned mapping threshold {t_mq:.2f} (true {TRUE_MAPPING_THRESHOLD})")
    print(f"  hard-filter accuracy {before:.3f} -> {after:.3f}")
    print(f"  plot: {plot(initial, learned, data, path)}")
    return Result(
        name="quality filtering",
        metric="filter accuracy",
        before=before,
        after=after,
        seconds=time.perf_counter() - start,
        details=f"t_q {t_q:.2f} (true {TRUE_QUALITY_THRESHOLD}), "
        f"t_mq {t_mq:.2f} (true {TRUE_MAPPING_THRESHOLD})",
    )


if __name__ == "__main__":
    main()
