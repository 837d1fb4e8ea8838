"""The NNX quality-filter operator learns the hidden rule and its temperature."""

import jax.numpy as jnp
import numpy as np
from datarax.core.element_batch import Batch
from flax import nnx

from examples import quality_filter_operator as example
from examples import quality_filtering


def test_operator_learns_thresholds_and_sharpens(tmp_path):
    initial, op, data = example.train(steps=150, verbose=False)
    assert abs(float(op.quality_threshold[...]) - example.TRUE_QUALITY_THRESHOLD) < 0.5
    assert abs(float(op.mapping_threshold[...]) - example.TRUE_MAPPING_THRESHOLD) < 0.5
    before = example.hard_accuracy(initial, *data)
    after = example.hard_accuracy(op.thresholds(), *data)
    assert after > before + 0.1 and after > 0.95
    assert 0.0 < float(op._temperature) < 1.0
    assert example.plot(op, data, tmp_path / "q.png").stat().st_size > 0


def test_operator_matches_the_functional_filter():
    op = example.QualityFilter(example.QualityFilterConfig(temperature=2.0))
    assert {"log_temperature", "quality_threshold", "mapping_threshold"} <= set(
        nnx.state(op, nnx.Param)
    )
    quality, mapping = jnp.linspace(0, 40, 9), jnp.linspace(60, 0, 9)
    out = op(Batch.from_parts({"quality": quality, "mapping": mapping}, {}))
    params = {"log_softness": jnp.log(2.0), **op.thresholds()}
    expected = quality_filtering.keep_probability(params, quality, mapping)
    np.testing.assert_allclose(out.data.get_value()["keep"], expected, rtol=1e-5)
