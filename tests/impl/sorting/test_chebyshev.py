"""Chebyshev interpolation against NumPy's Chebyshev module (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial import chebyshev

from diffbio.core.soft_ops._impl.sorting import _chebyshev


def _runge(t):  # analytic in a strip around [-1, 1], poles at ±i / 4
    return 1.0 / (1.0 + 16.0 * t**2)


def _runge_slope(t):
    return -32.0 * t / (1.0 + 16.0 * t**2) ** 2


def test_nodes_and_coefficients_match_numpy():
    m = 64
    with jax.enable_x64(True):
        t = np.asarray(_chebyshev.nodes(m, jnp.float64))
        got = np.asarray(_chebyshev.coefficients(jnp.asarray(_runge(t))))
    np.testing.assert_allclose(np.sort(t), np.sort(chebyshev.chebpts1(m)), atol=1e-15)
    np.testing.assert_allclose(got, chebyshev.chebinterpolate(_runge, m - 1), atol=1e-13)


def test_evaluate_converges_and_its_derivatives_are_exact():
    m = 128
    t_eval = np.linspace(-1, 1, 301)
    with jax.enable_x64(True):
        nodes = _chebyshev.nodes(m, jnp.float64)
        coefs = _chebyshev.coefficients(_runge(nodes))
        slope_coefs = _chebyshev.coefficients(_runge_slope(nodes))
        t = jnp.asarray(t_eval)
        values = np.asarray(_chebyshev.evaluate(coefs, slope_coefs, t))
        grad_t = np.asarray(
            jax.grad(lambda t: jnp.sum(_chebyshev.evaluate(coefs, slope_coefs, t)))(t)
        )
        grad_c = np.asarray(jax.grad(lambda c: _chebyshev.evaluate(c, slope_coefs, t)[7])(coefs))
    np.testing.assert_allclose(values, _runge(t_eval), atol=1e-12)
    np.testing.assert_allclose(grad_t, _runge_slope(t_eval), atol=1e-10)
    # p is linear in its coefficients: ∂p(t)/∂c_j = T_j(t)
    np.testing.assert_allclose(grad_c, chebyshev.chebvander(t_eval[7], m - 1)[0], atol=1e-12)


def test_batched_under_jit_and_vmap():
    rng = np.random.default_rng(0)
    coefs = jnp.asarray(rng.normal(size=(3, 9)), jnp.float32)
    t = jnp.asarray(rng.uniform(-1, 1, size=(3, 20)), jnp.float32)
    got = jax.jit(jax.vmap(_chebyshev.evaluate))(coefs, coefs, t)
    want = np.stack([chebyshev.chebval(np.asarray(t[i]), np.asarray(coefs[i])) for i in range(3)])
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
