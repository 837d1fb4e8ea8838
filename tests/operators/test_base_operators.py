"""TemperatureOperator: the datarax operator base class with a (learnable) temperature."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from datarax import Pipeline
from datarax.core.config import OperatorConfig
from datarax.core.element_batch import Batch
from datarax.sources.memory_source import MemorySource, MemorySourceConfig
from flax import nnx

from diffbio.core import soft_ops
from diffbio.core.base_operators import TemperatureOperator

# The reference document's "Integration with Operators" example, character for character.
REFERENCE_EXAMPLE = """
from diffbio.core.base_operators import TemperatureOperator
from datarax.core.config import OperatorConfig
from dataclasses import dataclass

@dataclass(frozen=True)
class MyFilterConfig(OperatorConfig):
    \"\"\"Configuration for a quality-aware filter.\"\"\"
    temperature: float = 0.5
    learnable_temperature: bool = False
    quality_threshold: float = 20.0

class QualityFilter(TemperatureOperator):
    def __init__(self, config, *, rngs=None, name=None):
        super().__init__(config, rngs=rngs, name=name)
        self.threshold = config.quality_threshold

    def apply(self, data, state, metadata, random_params=None, stats=None):
        from diffbio.core import soft_ops
        quality = data["quality_scores"]
        # self._temperature comes from TemperatureOperator
        mask = soft_ops.greater(
            quality,
            self.threshold,
            softness=self._temperature,
        )
        filtered = soft_ops.where(mask, data["reads"], 0.0)
        return {**data, "filtered_reads": filtered}, state, metadata
"""


@pytest.fixture(scope="module")
def reference():
    scope = {"__name__": "reference_operator_example"}
    exec(REFERENCE_EXAMPLE, scope)  # noqa: S102
    return scope


@dataclass(frozen=True)
class TempConfig(OperatorConfig):
    temperature: float = 0.5
    learnable_temperature: bool = False


class Identity(TemperatureOperator):
    def apply(self, data, state, metadata, random_params=None, stats=None):
        return data, state, metadata


def make(temperature=0.5, learnable=False):
    return Identity(TempConfig(temperature=temperature, learnable_temperature=learnable))


def reads_batch(num=6, length=5):
    quality = np.linspace(0.0, 40.0, num, dtype=np.float32)[:, None].repeat(length, axis=1)
    reads = np.arange(1.0, num * length + 1, dtype=np.float32).reshape(num, length)
    return quality, reads


def soft_filtered(quality, reads, threshold=20.0, temperature=0.5):
    """What the reference filter computes: reads weighted by sigmoid((q - t) / softness)."""
    return reads * jax.nn.sigmoid((quality - threshold) / temperature)


# --- fixed and learnable temperature ----------------------------------------------------


def test_fixed_temperature_is_a_python_float_and_not_a_parameter():
    op = make(0.25)
    assert isinstance(op._temperature, float)
    assert op._temperature == 0.25
    assert op.temperature == 0.25
    assert jax.tree.leaves(nnx.state(op, nnx.Param)) == []


def test_learnable_temperature_is_a_log_space_param():
    op = make(0.25, learnable=True)
    params = nnx.state(op, nnx.Param)
    (leaf,) = jax.tree.leaves(params)
    np.testing.assert_allclose(leaf, np.log(0.25), rtol=1e-6)
    assert isinstance(op.log_temperature, nnx.Param)
    np.testing.assert_allclose(op._temperature, 0.25, rtol=1e-6)


def test_defaults_when_the_config_has_no_temperature_fields():
    op = Identity(OperatorConfig())
    assert op._temperature == 1.0
    assert not op.learnable_temperature
    assert jax.tree.leaves(nnx.state(op, nnx.Param)) == []


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_non_positive_temperature_is_refused(bad):
    with pytest.raises(ValueError, match="temperature"):
        make(bad)


def test_learnable_temperature_stays_positive_under_aggressive_training():
    """A loss that wants the temperature at zero drives log_temperature down, never the
    temperature below zero."""
    op = make(1.0, learnable=True)
    optimiser = nnx.Optimizer(op, optax.sgd(50.0), wrt=nnx.Param)

    @nnx.jit
    def step(op, optimiser):
        grads = nnx.grad(lambda op: op._temperature)(op)
        optimiser.update(op, grads)
        return op._temperature

    seen = [float(step(op, optimiser)) for _ in range(50)]
    assert all(t > 0.0 for t in seen)
    assert seen[-1] < 1e-3
    assert np.all(np.diff(seen) <= 0)


# --- soft_max and soft_argmax -----------------------------------------------------------


def test_soft_max_is_temperature_times_logsumexp():
    values = jnp.array([[1.0, 3.0, -2.0], [0.5, 0.4, 0.3]])
    op = make(0.7)
    np.testing.assert_allclose(op.soft_max(values), 0.7 * jax.nn.logsumexp(values / 0.7), rtol=1e-6)
    np.testing.assert_allclose(
        op.soft_max(values, axis=-1), 0.7 * jax.nn.logsumexp(values / 0.7, axis=-1), rtol=1e-6
    )


def test_soft_max_tends_to_max_as_temperature_falls():
    values = jax.random.normal(jax.random.key(0), (4, 9)) * 3.0
    gaps = []
    for temperature in (1.0, 0.1, 0.01, 1e-3):
        soft = make(temperature).soft_max(values, axis=-1)
        hard = values.max(axis=-1)
        assert np.all(soft >= hard - 1e-5)
        assert np.all(soft <= hard + temperature * np.log(9) + 1e-5)
        gaps.append(float(jnp.max(soft - hard)))
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-2


def test_soft_max_ignores_minus_infinity():
    op = make(0.1)
    values = jnp.array([1.0, -jnp.inf, 2.0])
    np.testing.assert_allclose(op.soft_max(values), op.soft_max(jnp.array([1.0, 2.0])))
    assert np.all(np.isfinite(jax.grad(op.soft_max)(values)))
    learnable = make(0.1, learnable=True)
    grads = nnx.grad(lambda op: op.soft_max(values))(learnable)
    assert np.isfinite(float(grads["log_temperature"][...]))


def test_soft_argmax_rows_are_distributions_peaking_at_the_max():
    logits = jax.random.normal(jax.random.key(1), (5, 7))
    op = make(0.05)
    soft = op.soft_argmax(logits)
    assert soft.shape == (5, 7)
    np.testing.assert_allclose(soft.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(soft >= 0)
    np.testing.assert_array_equal(soft.argmax(axis=-1), logits.argmax(axis=-1))
    np.testing.assert_allclose(soft, soft_ops.argmax(logits, softness=0.05), rtol=1e-6)
    columns = op.soft_argmax(logits, axis=0)
    np.testing.assert_allclose(columns.sum(axis=-1), 1.0, rtol=1e-5)


def test_gradients_with_respect_to_inputs():
    values = jnp.array([0.2, 1.0, 0.9])
    op = make(0.3)
    grad = jax.grad(lambda v: op.soft_max(v))(values)
    np.testing.assert_allclose(grad, jax.nn.softmax(values / 0.3), rtol=1e-5)
    grad_argmax = jax.grad(lambda v: op.soft_argmax(v)[1])(values)
    assert np.all(np.isfinite(grad_argmax)) and np.any(grad_argmax != 0)


def temperature_loss(op, values, logits):
    return op.soft_max(values, axis=-1).sum() + (op.soft_argmax(logits) * logits).sum()


def test_gradient_with_respect_to_temperature_matches_finite_differences():
    with jax.enable_x64(True):
        values = jax.random.normal(jax.random.key(2), (3, 6), dtype=jnp.float64)
        logits = jax.random.normal(jax.random.key(3), (3, 6), dtype=jnp.float64)
        op = make(0.4, learnable=True)
        assert op.log_temperature[...].dtype == jnp.float64
        grads = nnx.grad(temperature_loss)(op, values, logits)
        analytic = float(grads["log_temperature"][...])

        def at(log_t):
            probe = make(float(np.exp(log_t)), learnable=True)
            return float(temperature_loss(probe, values, logits))

        eps = 1e-5
        numeric = (at(np.log(0.4) + eps) - at(np.log(0.4) - eps)) / (2 * eps)
    assert abs(analytic) > 1e-3
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


# --- transforms -------------------------------------------------------------------------


def test_nnx_jit_gives_the_eager_result_for_both_kinds():
    values = jnp.array([[1.0, 2.0, 0.5]])
    for learnable in (False, True):
        op = make(0.3, learnable)
        eager = op.soft_max(values, axis=-1) + op.soft_argmax(values)[..., 0]
        jitted = nnx.jit(lambda op, v: op.soft_max(v, axis=-1) + op.soft_argmax(v)[..., 0])
        np.testing.assert_allclose(jitted(op, values), eager, rtol=1e-6)


# --- the reference example, directly and through datarax ---------------------------------


def test_reference_example_filters_low_quality_bases(reference):
    config = reference["MyFilterConfig"]()
    assert isinstance(config, OperatorConfig)
    op = reference["QualityFilter"](config)
    assert op._temperature == 0.5 and op.threshold == 20.0
    quality, reads = reads_batch()
    data = {"quality_scores": jnp.asarray(quality[0]), "reads": jnp.asarray(reads[0])}
    out, state, metadata = op.apply(data, {}, None)
    assert set(out) == {"quality_scores", "reads", "filtered_reads"}
    expected = np.where(quality[0] > 20.0, reads[0], 0.0)
    np.testing.assert_allclose(out["filtered_reads"], expected, atol=1e-6)
    soft = reference["QualityFilter"](reference["MyFilterConfig"](temperature=5.0))
    mid = {"quality_scores": jnp.full((3,), 20.0), "reads": jnp.ones(3)}
    np.testing.assert_allclose(soft.apply(mid, {}, None)[0]["filtered_reads"], 0.5, atol=1e-6)


def test_reference_example_on_a_datarax_batch(reference):
    op = reference["QualityFilter"](reference["MyFilterConfig"]())
    quality, reads = reads_batch()
    batch = Batch.from_parts(
        {"quality_scores": jnp.asarray(quality), "reads": jnp.asarray(reads)}, {}
    )
    out = op(batch).data.get_value()
    np.testing.assert_allclose(out["filtered_reads"], soft_filtered(quality, reads), rtol=1e-5)
    # The same through scan, datarax's low-memory batch strategy.
    scan_op = reference["QualityFilter"](reference["MyFilterConfig"](batch_strategy="scan"))
    np.testing.assert_allclose(
        scan_op(batch).data.get_value()["filtered_reads"], out["filtered_reads"], rtol=1e-6
    )


def test_reference_example_as_a_pipeline_stage(reference):
    op = reference["QualityFilter"](reference["MyFilterConfig"]())
    quality, reads = reads_batch(num=8)
    source = MemorySource(MemorySourceConfig(), {"quality_scores": quality, "reads": reads})
    pipeline = Pipeline(source=source, stages=[op], batch_size=4, rngs=nnx.Rngs(0))
    batches = list(pipeline)
    assert len(batches) == 2
    filtered = np.concatenate([np.asarray(b["filtered_reads"]) for b in batches])
    np.testing.assert_allclose(filtered, soft_filtered(quality, reads), rtol=1e-5, atol=1e-12)


def test_reference_example_learns_its_temperature_through_a_batch(reference):
    """With a learnable temperature the operator trains under nnx.jit and nnx.grad,
    called on a datarax Batch exactly as a pipeline stage is."""
    op = reference["QualityFilter"](reference["MyFilterConfig"](learnable_temperature=True))
    quality, reads = reads_batch()
    batch = Batch.from_parts(
        {"quality_scores": jnp.asarray(quality), "reads": jnp.asarray(reads)}, {}
    )
    target = jnp.asarray(np.where(quality > 20.0, reads, 0.0))

    def loss(op):
        out = op(batch).data.get_value()["filtered_reads"]
        return jnp.mean((out - target) ** 2)

    grads = nnx.grad(loss)(op)
    assert float(grads["log_temperature"][...]) > 0  # sharper is better here
    optimiser = nnx.Optimizer(op, optax.adam(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(op, optimiser):
        value, grads = nnx.value_and_grad(loss)(op)
        optimiser.update(op, grads)
        return value

    first = float(step(op, optimiser))
    for _ in range(20):
        last = float(step(op, optimiser))
    assert last < first
    assert 0.0 < float(op._temperature) < 0.5


# --- the optional dependencies ------------------------------------------------------------


def test_soft_ops_never_imports_flax_or_datarax():
    code = textwrap.dedent(
        """
        import sys
        import diffbio.core.soft_ops
        from diffbio.core import soft_ops
        soft_ops.greater(1.0, 0.0)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("flax", "datarax"))
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_import_without_the_extra_names_the_install_command():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["flax"] = None
        sys.modules["datarax"] = None
        try:
            import diffbio.core.base_operators
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("imported without flax and datarax")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert "pip install 'diffbio-soft-ops[operators]'" in done.stdout
