"""Kernel tests for the comparison family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops

MODES = ["smooth", "c0", "c1", "c2"]


@pytest.mark.parametrize("mode", MODES)
def test_complements(mode):
    x, y = jnp.linspace(-1, 1, 21), 0.1
    kw = dict(softness=0.3, mode=mode)
    np.testing.assert_allclose(
        soft_ops.less(x, y, **kw), 1 - soft_ops.greater_equal(x, y, **kw), atol=1e-7
    )
    np.testing.assert_allclose(
        soft_ops.less_equal(x, y, **kw), 1 - soft_ops.greater(x, y, **kw), atol=1e-7
    )
    np.testing.assert_allclose(
        soft_ops.not_equal(x, y, **kw), 1 - soft_ops.equal(x, y, **kw), atol=1e-7
    )


@pytest.mark.parametrize("mode", MODES)
def test_equal_is_one_at_equality_and_a_softbool_everywhere(mode):
    x = jnp.linspace(-1, 1, 41)
    value = soft_ops.equal(x, x, softness=0.1, mode=mode)
    np.testing.assert_allclose(value, 1.0, atol=1e-6)
    spread = soft_ops.equal(x, 0.0, softness=0.1, mode=mode)
    assert np.all((np.asarray(spread) >= 0) & (np.asarray(spread) <= 1))


@pytest.mark.parametrize("mode", MODES)
def test_isclose_stays_in_unit_interval_with_large_tolerances(mode):
    x = jnp.linspace(-3, 3, 61)
    value = soft_ops.isclose(x, 0.0, softness=0.1, atol=1.0, mode=mode)
    assert np.all((np.asarray(value) >= 0) & (np.asarray(value) <= 1))
    np.testing.assert_allclose(value[np.abs(np.asarray(x)) < 0.5], 1.0, atol=1e-6)
    np.testing.assert_allclose(value[np.abs(np.asarray(x)) > 2.6], 0.0, atol=1e-6)


def test_greater_at_equality_tends_to_zero_and_greater_equal_to_one():
    x = jnp.array([1.0])
    assert float(soft_ops.greater(x, x, softness=1e-12)[0]) < 0.5
    assert float(soft_ops.greater_equal(x, x, softness=1e-12)[0]) > 0.5


def test_gradient_of_greater_with_respect_to_threshold():
    x = jnp.array([0.0, 0.5, 1.0])
    grad = jax.grad(lambda t: soft_ops.greater(x, t, softness=0.2).sum())(0.5)
    s = jax.nn.sigmoid((x - 0.5 - 1e-10) / 0.2)
    np.testing.assert_allclose(grad, -np.sum(s * (1 - s) / 0.2), rtol=1e-6)
