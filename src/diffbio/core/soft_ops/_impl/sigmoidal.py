"""The sigmoidal S-curve and its antiderivative, the soft ReLU family.

All soft operations are built on these two kernels. For the piecewise modes the
transition region is ``[-5 s, 5 s]`` (``u = x / (5 s)``); outside it the output is
exactly the hard value, so the support of the derivative is compact.

Reference: Paulus et al. (2026), "SoftJAX & SoftTorch: Empowering Automatic
Differentiation Libraries with Informative Gradients", arXiv:2603.08824.
"""

import functools

import jax
import jax.numpy as jnp
from jax import Array

# Piecewise polynomials on u in [-1, 1], highest degree first (for jnp.polyval).
# sigmoidal: c0 linear, c1 cubic Hermite, c2 quintic Hermite smoothstep.
_SIGMOIDAL_COEFFS = {
    "c0": (0.5, 0.5),
    "c1": (-0.25, 0.0, 0.75, 0.5),
    "c2": (0.1875, 0.0, -0.625, 0.0, 0.9375, 0.5),
}
# Their antiderivatives G with G(-1) = 0 and G(1) = 1 (so 5 s G(u) joins relu smoothly).
_SOFTRELU_COEFFS = {
    "c0": (0.25, 0.5, 0.25),
    "c1": (-0.0625, 0.0, 0.375, 0.5, 0.1875),
    "c2": (0.03125, 0.0, -0.15625, 0.0, 0.46875, 0.5, 0.15625),
}


def _piecewise(u: Array, inside: Array, below: Array | float, above: Array | float) -> Array:
    """``inside`` on [-1, 1], exactly ``below`` for u < -1 and ``above`` for u > 1."""
    return jnp.where(u < -1.0, below, jnp.where(u > 1.0, above, inside))


def _poly(coeffs: tuple[float, ...], u: Array) -> Array:
    """Polynomial of u clipped to [-1, 1] (the double-where trick: huge |u| can neither
    overflow it nor leak a NaN into the gradient of the branch that is not taken)."""
    inside = jnp.where(u > 1.0, 1.0, jnp.where(u < -1.0, -1.0, u))  # u itself on [-1, 1]
    return jnp.polyval(jnp.asarray(coeffs, dtype=u.dtype), inside)


def _polynomial_derivative(coeffs: tuple[float, ...]) -> tuple[float, ...]:
    """Coefficients of the derivative, highest degree first."""
    degree = len(coeffs) - 1
    return tuple(c * (degree - i) for i, c in enumerate(coeffs[:-1]))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _piecewise_sigmoidal(u: Array, mode: str) -> Array:
    """The piecewise S-curve of ``u = x / (5 s)``: its polynomial on [-1, 1], exactly 0
    below and 1 above (the polynomials reach 0 and 1 exactly at -1 and 1), in [0, 1]."""
    inside = _poly(_SIGMOIDAL_COEFFS[mode], u)
    # a SoftBool never leaves [0, 1]: the value is clipped against the remaining rounding
    return jnp.clip(inside, 0.0, 1.0)


@_piecewise_sigmoidal.defjvp
def _piecewise_sigmoidal_jvp(mode: str, primals, tangents):
    """The polynomial's slope on [-1, 1] and 0 outside, evaluated in one pass (the
    backward of a where-and-clip chain costs several selects per comparison)."""
    (u,), (du,) = primals, tangents
    slope = _poly(_polynomial_derivative(_SIGMOIDAL_COEFFS[mode]), u)  # finite for any u
    # a select, not a product with 0: an infinite cotangent outside [-1, 1] gives 0
    tangent = jnp.where((u < -1.0) | (u > 1.0), 0.0, slope * du)
    return _piecewise_sigmoidal(u, mode), tangent


def sigmoidal(x: Array, softness: float | Array = 0.1, mode: str = "smooth") -> Array:
    """S-curve from 0 to 1 centred at 0 (a SoftBool); ``hard`` is the Heaviside step."""
    if mode == "hard":
        return jnp.where(x > 0, 1.0, jnp.where(x < 0, 0.0, 0.5)).astype(x.dtype)
    if mode == "smooth":
        return jax.nn.sigmoid(x / softness)
    # at least float32 inside: the polynomial cancels to ~0 near u = -1 and to ~1 near
    # u = 1, where a bfloat16 evaluation was off by an ulp of 0.5 (-0.0039)
    u = (x / (5.0 * softness)).astype(jnp.promote_types(x.dtype, jnp.float32))
    return _piecewise_sigmoidal(u, mode).astype(x.dtype)


def softrelu(
    x: Array, softness: float | Array = 0.1, mode: str = "smooth", gated: bool = False
) -> Array:
    """Soft ReLU: the antiderivative of `sigmoidal`, or ``x * sigmoidal(x)`` if gated."""
    if mode == "hard":
        return jax.nn.relu(x)
    if gated:
        return x * sigmoidal(x, softness, mode)
    if mode == "smooth":
        return softness * jax.nn.softplus(x / softness)
    u = x / (5.0 * softness)
    inside = 5.0 * softness * _poly(_SOFTRELU_COEFFS[mode], u)
    return _piecewise(u, inside, 0.0, x).astype(x.dtype)


def softabs(x: Array, softness: float | Array = 0.1, mode: str = "smooth") -> Array:
    """Soft absolute value ``x * (2 sigmoidal(x) - 1)``; exact ``|x|`` outside the region."""
    if mode == "hard":
        return jnp.abs(x)
    return _softabs(x, softness, mode)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _softabs(x: Array, softness: float | Array, mode: str) -> Array:
    return x * (2.0 * sigmoidal(x, softness, mode) - 1.0)


def _softabs_slopes(x: Array, s: float | Array, mode: str) -> tuple[Array, Array, Array]:
    """`(σ, u σ'(u), near)` of `softabs` with `u = x / (k s)`: `near` is u where σ'(u) ≠ 0
    and 0 elsewhere, so that an overflowing u (x / s = inf) meets no 0 · inf."""
    if mode == "smooth":
        # one logistic: with t = σ(−|u|), σ(u) is t or 1 − t and σ'(u) = t (1 − t)
        u = x / s
        tail = jax.nn.sigmoid(-jnp.abs(u))
        sig = jnp.where(u > 0, 1.0 - tail, tail)
        slope = tail * (1.0 - tail)
        near = jnp.where(tail == 0.0, 0.0, u)
    else:
        sig = sigmoidal(x, s, mode)
        u = (x / (5.0 * s)).astype(jnp.promote_types(x.dtype, jnp.float32))
        outside = (u < -1.0) | (u > 1.0)
        slope = jnp.where(outside, 0.0, _poly(_polynomial_derivative(_SIGMOIDAL_COEFFS[mode]), u))
        near = jnp.where(outside, 0.0, u)
    return sig, near * slope, near


def softabs_slope(x: Array, softness: float | Array = 0.1, mode: str = "smooth") -> Array:
    """`∂ softabs / ∂x = 2σ − 1 + 2 u σ'(u)` (`sign(x)` for `hard`)."""
    if mode == "hard":
        return jnp.sign(x)
    sig, u_slope, _ = _softabs_slopes(x, softness, mode)
    return (2.0 * sig - 1.0 + 2.0 * u_slope).astype(x.dtype)


@_softabs.defjvp
def _softabs_jvp(mode: str, primals, tangents):
    """With `u = x / (k s)` (`k` = 1 smooth, 5 piecewise) and `σ` the S-curve of u:
    `∂/∂x = 2σ − 1 + 2 u σ'(u)` and `∂/∂s = −2 k (u σ'(u)) u`.

    `u σ'(u)` is bounded and exactly 0 far from the origin, so a large cotangent meets
    it before it meets `x`: differentiating the product `x · (2σ − 1)` multiplied the
    cotangent by `x` first, which overflowed float32 for |x| ≈ 1e20 (then `inf · 0`).
    """
    (x, s), (dx, ds) = primals, tangents
    sig, u_slope, near = _softabs_slopes(x, s, mode)
    k = 1.0 if mode == "smooth" else 5.0
    tangent = (2.0 * sig - 1.0 + 2.0 * u_slope) * dx - (2.0 * k) * (u_slope * near) * ds
    return x * (2.0 * sig - 1.0), tangent.astype(x.dtype)
