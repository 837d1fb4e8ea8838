"""The quality-filtering demo as a Flax NNX / datarax operator.

`examples.quality_filtering` fits two thresholds and a softness held in a plain dict.
Here the same filter is a `TemperatureOperator`: the thresholds are ``nnx.Param``s, the
temperature is the base class's learnable log-space parameter, and each read is one
datarax record. Calling the operator on a ``Batch`` applies it to every read (datarax
vmaps ``apply``); ``nnx.value_and_grad`` and an ``nnx.Optimizer`` train it.

Run: ``python -m examples.quality_filter_operator``.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from datarax.core.config import OperatorConfig
from datarax.core.element_batch import Batch
from flax import nnx

from diffbio.core import soft_ops
from diffbio.core.base_operators import TemperatureOperator
from examples.quality_filtering import (
    LABEL_NOISE,
    TRUE_MAPPING_THRESHOLD,
    TRUE_QUALITY_THRESHOLD,
    Result,
    hard_accuracy,
    simulate_reads,
)

OUTPUT = Path(__file__).parent / "output" / "quality_filter_operator.png"


@dataclass(frozen=True)
class QualityFilterConfig(OperatorConfig):
    """Initial thresholds and temperature of the filter."""

    temperature: float = 4.0
    learnable_temperature: bool = True
    quality_threshold: float = 10.0
    mapping_threshold: float = 45.0


class QualityFilter(TemperatureOperator):
    """Keeps a read with probability ``greater(q, t_q) AND greater(mq, t_mq)``."""

    def __init__(self, config: QualityFilterConfig, *, rngs=None, name=None):
        super().__init__(config, rngs=rngs, name=name)
        dtype = jnp.result_type(float)
        self.quality_threshold = nnx.Param(jnp.asarray(config.quality_threshold, dtype))
        self.mapping_threshold = nnx.Param(jnp.asarray(config.mapping_threshold, dtype))

    def apply(self, data, state, metadata, random_params=None, stats=None):
        softness = self._temperature
        q_pass = soft_ops.greater(data["quality"], self.quality_threshold[...], softness=softness)
        mq_pass = soft_ops.greater(data["mapping"], self.mapping_threshold[...], softness=softness)
        return {**data, "keep": soft_ops.logical_and(q_pass, mq_pass)}, state, metadata

    def thresholds(self) -> dict:
        """The hard filter, in the format `quality_filtering.hard_accuracy` reads."""
        return {
            "quality_threshold": self.quality_threshold[...],
            "mapping_threshold": self.mapping_threshold[...],
        }


def train(steps: int = 400, learning_rate: float = 0.5, seed: int = 0, verbose: bool = True):
    """Returns (initial thresholds, trained operator, (quality, mapping, labels))."""
    quality, mapping, labels = simulate_reads(jax.random.key(seed))
    op = QualityFilter(QualityFilterConfig())
    initial = op.thresholds()
    batch = Batch.from_parts({"quality": quality, "mapping": mapping}, {})
    optimiser = nnx.Optimizer(op, optax.adam(learning_rate), wrt=nnx.Param)

    def loss_fn(op):
        keep = op(batch).data.get_value()["keep"]
        p = LABEL_NOISE + (1 - 2 * LABEL_NOISE) * keep
        return -jnp.mean(labels * jnp.log(p) + (1 - labels) * jnp.log1p(-p))

    @nnx.jit
    def step(op, optimiser):
        loss, grads = nnx.value_and_grad(loss_fn)(op)
        optimiser.update(op, grads)
        return loss

    for i in range(steps):
        loss = step(op, optimiser)
        if verbose and (i % 100 == 0 or i == steps - 1):
            print(
                f"  step {i:4d}  loss {float(loss):.4f}  "
                f"quality > {float(op.quality_threshold[...]):6.2f}  "
                f"mapq > {float(op.mapping_threshold[...]):6.2f}  "
                f"temperature {float(op._temperature):.3f}"
            )
    return initial, op, (quality, mapping, labels)


def plot(op: QualityFilter, data, path: Path = OUTPUT) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality, mapping, labels = (np.asarray(x) for x in data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(quality, mapping, c=labels, s=3, cmap="coolwarm", alpha=0.6)
    t_q, t_mq = float(op.quality_threshold[...]), float(op.mapping_threshold[...])
    ax.axvline(t_q, color="k", lw=1, label=f"learned q > {t_q:.1f}")
    ax.axhline(t_mq, color="k", lw=1, ls="--", label=f"learned mapq > {t_mq:.1f}")
    ax.set_xlabel("base quality")
    ax.set_ylabel("mapping quality")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(steps: int = 400) -> Result:
    start = time.perf_counter()
    print("Quality filter as an NNX operator: thresholds and temperature are nnx.Params")
    initial, op, data = train(steps)
    before, after = hard_accuracy(initial, *data), hard_accuracy(op.thresholds(), *data)
    t_q, t_mq = float(op.quality_threshold[...]), float(op.mapping_threshold[...])
    print(
        f"  learned thresholds {t_q:.2f} / {t_mq:.2f} "
        f"(true {TRUE_QUALITY_THRESHOLD} / {TRUE_MAPPING_THRESHOLD}), "
        f"temperature 4.0 -> {float(op._temperature):.3f}"
    )
    print(f"  hard-filter accuracy {before:.3f} -> {after:.3f}")
    print(f"  plot: {plot(op, data)}")
    return Result(
        name="quality filter (NNX)",
        metric="filter accuracy",
        before=before,
        after=after,
        seconds=time.perf_counter() - start,
        details=f"t_q {t_q:.2f}, t_mq {t_mq:.2f}, temperature {float(op._temperature):.3f}",
    )


if __name__ == "__main__":
    main()
