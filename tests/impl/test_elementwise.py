"""Kernel tests for the elementwise family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops


def _direct_soft_round(x, s, radius=5):
    """The textbook sum over n = floor(x) + k, evaluated naively in float64."""
    x = np.asarray(x, dtype=np.float64)
    n = np.floor(x)[..., None] + np.arange(-radius, radius + 1)
    sig = lambda v: 1 / (1 + np.exp(-v / s))  # noqa: E731
    return np.sum(n * (sig(x[..., None] - n + 0.5) - sig(x[..., None] - n - 0.5)), axis=-1)


def test_soft_round_equals_the_direct_sum():
    x = np.linspace(-3.3, 3.3, 23)
    np.testing.assert_allclose(
        soft_ops.round(jnp.asarray(x), softness=0.3), _direct_soft_round(x, 0.3), atol=2e-6
    )


def test_soft_round_keeps_huge_values():
    x = jnp.array([1e30, -1e30, 3e7], dtype=jnp.float32)
    np.testing.assert_array_equal(soft_ops.round(x, softness=0.1), x)
    assert np.all(np.isfinite(jax.grad(lambda v: soft_ops.round(v).sum())(x)))


def test_hard_round_is_half_to_even():
    x = jnp.array([0.5, 1.5, 2.5, -0.5])
    np.testing.assert_array_equal(soft_ops.round(x, mode="hard"), [0.0, 2.0, 2.0, -0.0])


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
def test_clip_is_a_plus_two_relus(mode):
    x = jnp.linspace(-3, 3, 13)
    want = (
        -1.0
        + soft_ops.relu(x + 1.0, softness=0.2, mode=mode)
        - soft_ops.relu(x - 2.0, softness=0.2, mode=mode)
    )
    np.testing.assert_allclose(
        soft_ops.clip(x, -1.0, 2.0, softness=0.2, mode=mode), want, rtol=1e-6
    )


def test_sign_abs_heaviside_identities():
    x = jnp.linspace(-1, 1, 11)
    sig = soft_ops.sigmoidal(x, softness=0.2)
    np.testing.assert_allclose(soft_ops.heaviside(x, softness=0.2), sig, rtol=1e-6)
    np.testing.assert_allclose(soft_ops.sign(x, softness=0.2), 2 * sig - 1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        soft_ops.abs(x, softness=0.2), x * (2 * sig - 1), rtol=1e-6, atol=1e-7
    )


def test_gated_relu_is_silu_like():
    x = jnp.linspace(-2, 2, 9)
    np.testing.assert_allclose(
        soft_ops.relu(x, softness=1.0, gated=True), jax.nn.silu(x), rtol=1e-6
    )
