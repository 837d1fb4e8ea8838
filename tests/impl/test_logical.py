"""Kernel tests for fuzzy logic."""

import jax.numpy as jnp
import numpy as np

from diffbio.core import soft_ops

X = jnp.array([0.0, 0.3, 0.7, 1.0])
Y = jnp.array([0.2, 0.9, 0.5, 1.0])


def test_product_semantics():
    np.testing.assert_allclose(soft_ops.logical_and(X, Y), X * Y, rtol=1e-6)
    np.testing.assert_allclose(soft_ops.logical_or(X, Y), 1 - (1 - X) * (1 - Y), rtol=1e-6)
    np.testing.assert_allclose(soft_ops.logical_not(X), 1 - X, rtol=1e-6)
    a, b = X * (1 - Y), (1 - X) * Y
    np.testing.assert_allclose(soft_ops.logical_xor(X, Y), 1 - (1 - a) * (1 - b), rtol=1e-6)


def test_all_and_any_reduce_along_axis():
    m = jnp.stack([X, Y])
    np.testing.assert_allclose(soft_ops.all(m, axis=0), X * Y, rtol=1e-6)
    np.testing.assert_allclose(soft_ops.any(m, axis=-1), 1 - jnp.prod(1 - m, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(soft_ops.all(m, axis=None), jnp.prod(m), rtol=1e-6)
    np.testing.assert_allclose(soft_ops.all(m[None], axis=(0, 2)), jnp.prod(m, axis=-1), rtol=1e-6)


def test_geometric_mean_option():
    m = jnp.array([[0.25, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(soft_ops.all(m, use_geometric_mean=True), [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(
        soft_ops.logical_and(0.25, 1.0, use_geometric_mean=True), 0.5, rtol=1e-6
    )


def test_where_interpolates_and_broadcasts():
    c = jnp.array([[1.0], [0.25]])
    out = soft_ops.where(c, jnp.array([2.0, 4.0]), 0.0)
    np.testing.assert_allclose(out, [[2.0, 4.0], [0.5, 1.0]], rtol=1e-6)
