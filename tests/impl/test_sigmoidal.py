"""Kernel tests for `sigmoidal` and `softrelu` against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sigmoidal import sigmoidal, softabs, softrelu

SOFT_MODES = ["smooth", "c0", "c1", "c2"]


def _closed_form(mode, x, s):
    u = np.clip(x / (5 * s), -1, 1)
    inside = {
        "c0": (u + 1) / 2,
        "c1": -(u**3) / 4 + 3 * u / 4 + 0.5,
        "c2": (3 * u**5 - 10 * u**3 + 15 * u) / 16 + 0.5,
    }[mode]
    return np.where(x / (5 * s) < -1, 0.0, np.where(x / (5 * s) > 1, 1.0, inside))


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_piecewise_sigmoidal_matches_its_polynomial(mode):
    x = np.linspace(-1.0, 1.0, 101)
    np.testing.assert_allclose(
        sigmoidal(jnp.asarray(x), 0.1, mode), _closed_form(mode, x, 0.1), atol=1e-6
    )


def test_smooth_sigmoidal_is_the_logistic_function():
    x = jnp.linspace(-3, 3, 31)
    np.testing.assert_allclose(
        sigmoidal(x, 0.7, "smooth"), 1 / (1 + np.exp(-np.asarray(x) / 0.7)), rtol=1e-6
    )


def test_hard_sigmoidal_is_the_heaviside_step():
    x = jnp.array([-1.0, 0.0, 1e-30, 2.0])
    np.testing.assert_array_equal(sigmoidal(x, 0.1, "hard"), [0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("mode", SOFT_MODES)
def test_softrelu_is_the_antiderivative_of_sigmoidal(mode):
    with jax.enable_x64(True):
        s = 0.3
        x = jnp.linspace(-4.0, 4.0, 8001, dtype=jnp.float64)
        integrand = np.asarray(sigmoidal(x, s, mode))
        dx = float(x[1] - x[0])
        integral = np.concatenate([[0.0], np.cumsum((integrand[1:] + integrand[:-1]) / 2 * dx)])
        relu = np.asarray(softrelu(x, s, mode))
        np.testing.assert_allclose(relu - relu[0], integral, atol=1e-6)
        np.testing.assert_allclose(
            jax.vmap(jax.grad(lambda v: softrelu(v, s, mode)))(x), integrand, atol=1e-12
        )


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_softrelu_joins_relu_exactly_outside_the_region(mode):
    x = jnp.array([-3.0, -0.51, 0.51, 3.0])
    np.testing.assert_array_equal(softrelu(x, 0.1, mode), jax.nn.relu(x))


def test_gated_softrelu_is_x_times_sigmoidal():
    x = jnp.linspace(-2, 2, 9)
    np.testing.assert_allclose(
        softrelu(x, 0.2, "c1", gated=True), x * sigmoidal(x, 0.2, "c1"), rtol=1e-6
    )


def test_c0_derivative_jumps_at_the_region_edge_but_c1_does_not():
    """The continuity check of the conformance suite can fail: c0's slope jumps."""
    edge, delta = 0.5, 1e-7

    def slope(mode, x):
        return float(jax.grad(lambda v: sigmoidal(v, 0.1, mode))(x))

    assert abs(slope("c0", edge - delta) - slope("c0", edge + delta)) > 0.9
    assert abs(slope("c1", edge - delta) - slope("c1", edge + delta)) < 1e-5


def test_softabs_is_non_negative_and_exact_outside():
    x = jnp.linspace(-2, 2, 41)
    for mode in SOFT_MODES:
        assert np.all(np.asarray(softabs(x, 0.1, mode)) >= 0)
    far = jnp.array([-1.0, 0.6, 2.0])
    np.testing.assert_array_equal(softabs(far, 0.1, "c2"), jnp.abs(far))


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_huge_inputs_do_not_overflow_the_polynomial_or_its_gradient(mode):
    x = jnp.array([-1e30, 1e30], dtype=jnp.float32)
    np.testing.assert_array_equal(softrelu(x, 1e-6, mode), jax.nn.relu(x))
    grad = jax.grad(lambda v: softrelu(v, 1e-6, mode).sum())(x)
    np.testing.assert_array_equal(grad, [0.0, 1.0])


def _closed_form_slope(mode, x, s):
    u = x / (5 * s)
    inside = {
        "c0": np.full_like(u, 0.5),
        "c1": 0.75 * (1 - u**2),
        "c2": 15 / 16 * (1 - u**2) ** 2,
    }[mode]
    return np.where(np.abs(u) <= 1, inside, 0.0) / (5 * s)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_piecewise_sigmoidal_slope_and_curvature_are_the_polynomials(mode):
    with jax.enable_x64(True):
        s = 0.2
        x = jnp.linspace(-1.5, 1.5, 3001, dtype=jnp.float64)
        slope = jax.vmap(jax.grad(lambda v: sigmoidal(v, s, mode)))(x)
        np.testing.assert_allclose(slope, _closed_form_slope(mode, np.asarray(x), s), atol=1e-12)
        # the slope's own derivative, against central differences of the closed form
        inner = x[jnp.abs(x) < 0.9]
        curvature = jax.vmap(jax.grad(jax.grad(lambda v: sigmoidal(v, s, mode))))(inner)
        h = 1e-6
        fd = (
            _closed_form_slope(mode, np.asarray(inner) + h, s)
            - _closed_form_slope(mode, np.asarray(inner) - h, s)
        ) / (2 * h)
        np.testing.assert_allclose(curvature, fd, atol=1e-5)
        # the softness gradient: d sigma / d s = slope(x) * (-x / s)
        ds = jax.grad(lambda t: sigmoidal(jnp.float64(0.3), t, mode))(s)
        np.testing.assert_allclose(ds, _closed_form_slope(mode, 0.3, s) * (-0.3 / s), rtol=1e-12)


@pytest.mark.parametrize("mode", ["c0", "c1", "c2"])
def test_softabs_slope_at_infinite_inputs_is_their_sign(mode):
    """An infinite cotangent outside the transition region must not become 0 * inf."""
    x = jnp.array([-jnp.inf, -1e30, 1e30, jnp.inf], dtype=jnp.float32)
    grad = jax.vmap(jax.grad(lambda v: softabs(v, 0.1, mode)))(x)
    np.testing.assert_array_equal(grad, [-1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize("mode", ["smooth", "c0", "c1", "c2"])
def test_softabs_derivatives_equal_those_of_the_product(mode):
    """The custom JVP against differentiating `x (2 sigmoidal(x) − 1)` itself (float64),
    in x and in the softness, inside and outside the transition region."""
    x = np.array([-2.0, -0.3, -0.04, 0.0, 0.02, 0.25, 0.6, 3.0])
    with jax.enable_x64(True):
        xj, s = jnp.asarray(x), jnp.asarray(0.1)

        def product(v, t):
            return v * (2.0 * sigmoidal(v, t, mode) - 1.0)

        for argnum in (0, 1):
            got = jax.vmap(jax.grad(lambda v, t: softabs(v, t, mode), argnum), (0, None))(xj, s)
            want = jax.vmap(jax.grad(product, argnum), (0, None))(xj, s)
            # (atol: σ(u)σ(−u) is more accurate than the product rule's σ(1 − σ) far out)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_smooth_softabs_slope_in_float32_matches_the_float64_closed_form():
    """`2σ(u) − 1 + 2u σ'(u)` from one logistic `σ(−|u|)` (float32) against
    `tanh(u / 2) + u / (2 cosh²(u / 2))` in float64, out to where σ'(u) underflows, within
    a few float32 ulps of 1 (the slope's scale; `2σ − 1` cancels near u = 0)."""
    u = np.concatenate([-np.geomspace(1e-4, 120.0, 200), [0.0], np.geomspace(1e-4, 120.0, 200)])
    s = 0.1
    x32 = (u * s).astype(np.float32)
    u64 = x32.astype(np.float64) / np.float64(np.float32(s))
    want = np.tanh(u64 / 2) + u64 / (2 * np.cosh(u64 / 2) ** 2)
    got = np.asarray(jax.vmap(jax.grad(lambda v: softabs(v, jnp.float32(s), "smooth")))(x32))
    eps = float(np.finfo(np.float32).eps)
    assert np.max(np.abs(got - want)) <= 4 * eps
    # the value itself, x · (2σ − 1) = x · tanh(u / 2), within a few ulps of |x|
    values = np.asarray(softabs(jnp.asarray(x32), jnp.float32(s), "smooth"))
    error = np.abs(values - x32 * np.tanh(u64 / 2))
    assert np.all(error <= 4 * eps * np.abs(x32.astype(np.float64)))


@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_softabs_gradient_of_huge_inputs_under_a_large_cotangent_is_finite(mode):
    """|x| ≈ 1e20 with a cotangent of 1e19 in float32: the slope is sign(x), and the
    softness gets 0 (the product rule multiplied the cotangent by x first: inf · 0)."""
    x = jnp.asarray([2e20, -3e20, 1e30], jnp.float32)
    s = jnp.float32(0.03)
    _, vjp = jax.vjp(lambda v, t: softabs(v, t, mode), x, s)
    big = np.float32(1e19)
    g_x, g_s = vjp(jnp.full(3, big, jnp.float32))
    np.testing.assert_array_equal(g_x, [big, -big, big])
    assert float(g_s) == 0.0
