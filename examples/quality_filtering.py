"""Learn read-filter thresholds by gradient descent through soft comparisons.

Reads carry a base-quality score and a mapping quality. A hidden rule decides which
reads are good: ``quality > 23.7 AND mapping_quality > 31.0`` (with 3% label noise).
The filter ``logical_and(greater(q, t_q), greater(mq, t_mq))`` is differentiable in
both thresholds and in its softness, so a plain optimiser recovers the hidden rule.

Run: ``python -m examples.quality_filtering``.
"""

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from diffbio.core import soft_ops

TRUE_QUALITY_THRESHOLD = 23.7
TRUE_MAPPING_THRESHOLD = 31.0
LABEL_NOISE = 0.03


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


def main(steps: int = 400) -> Result:
    start = time.perf_counter()
    print("Soft quality filtering: learn 'quality > t_q AND mapq > t_mq' from labelled reads")
    initial, learned, data = train(steps)
    before, after = hard_accuracy(initial, *data), hard_accuracy(learned, *data)
    t_q, t_mq = float(learned["quality_threshold"]), float(learned["mapping_threshold"])
    print(f"  learned quality threshold {t_q:.2f} (true {TRUE_QUALITY_THRESHOLD})")
    print(f"  learned mapping threshold {t_mq:.2f} (true {TRUE_MAPPING_THRESHOLD})")
    print(f"  hard-filter accuracy {before:.3f} -> {after:.3f}")
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
