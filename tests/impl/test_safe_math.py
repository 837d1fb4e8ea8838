"""Kernel tests for autograd-safe math: values, and gradients at the boundaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops


def test_sqrt_and_log_at_zero():
    assert float(soft_ops.sqrt(0.0)) == 0.0
    assert float(jax.grad(soft_ops.sqrt)(0.0)) == 0.0
    assert float(soft_ops.log(0.0)) == 0.0
    assert float(jax.grad(soft_ops.log)(0.0)) == 0.0
    np.testing.assert_allclose(jax.grad(soft_ops.sqrt)(4.0), 0.25)
    assert np.isnan(jax.grad(jnp.sqrt)(0.0)) or np.isinf(jax.grad(jnp.sqrt)(0.0))


def test_div_by_zero():
    x, y = jnp.array([1.0, 2.0]), jnp.array([2.0, 0.0])
    np.testing.assert_array_equal(soft_ops.div(x, y), [0.5, 0.0])
    gx, gy = jax.grad(lambda a, b: soft_ops.div(a, b).sum(), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 0.0])
    np.testing.assert_array_equal(gy, [-0.25, 0.0])


def test_norm_at_zero_vector_and_elsewhere():
    np.testing.assert_array_equal(jax.grad(soft_ops.norm)(jnp.zeros(3)), [0.0, 0.0, 0.0])
    x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(soft_ops.norm(x, axis=-1), [5.0, 0.0])
    np.testing.assert_allclose(soft_ops.norm(x, axis=1, keepdims=True), [[5.0], [0.0]])


@pytest.mark.parametrize("fn", [soft_ops.arcsin, soft_ops.arccos])
def test_inverse_trig_at_plus_minus_one(fn):
    x = jnp.array([-1.0, -0.5, 0.5, 1.0])
    reference = {soft_ops.arcsin: jnp.arcsin, soft_ops.arccos: jnp.arccos}[fn]
    np.testing.assert_allclose(fn(x), reference(x), rtol=1e-6)
    grads = jax.vmap(jax.grad(fn))(x)
    assert np.all(np.isfinite(grads))
    assert float(grads[0]) == 0.0 and float(grads[-1]) == 0.0
