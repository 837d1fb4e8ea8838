"""Chebyshev interpolation on an interval, batched along the last axis.

A function `F` analytic near `[-1, 1]` is interpolated at the `m` Chebyshev points of the
first kind `t_k = cos(π (k + 1/2) / m)` by `p(t) = Σ_j c_j T_j(t)`, with the coefficients
given by the discrete cosine transform of the samples,

    c_j = (2 / m) Σ_k F(t_k) cos(π j (k + 1/2) / m)    (c_0 halved),

and evaluated by Clenshaw's recurrence. If `F` is analytic and bounded by `M` inside the
Bernstein ellipse `E_ρ` (foci ±1, semi-axes `(ρ ± 1/ρ) / 2`), the error is at most
`4 M ρ^(−m) / (ρ − 1)` on `[-1, 1]`.

References: L. N. Trefethen, "Approximation Theory and Approximation Practice", SIAM
2013, chapters 3, 8 and 15 (coefficients, convergence, and the error bound);
C. W. Clenshaw, "A note on the summation of Chebyshev series", Math. Comp. 9 (1955).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax


def nodes(m: int, dtype: jnp.dtype) -> Array:
    """The `m` Chebyshev points of the first kind `(m,)`, in decreasing order."""
    k = np.arange(m)
    return jnp.asarray(np.cos(np.pi * (k + 0.5) / m), dtype)


def coefficients(samples: Array) -> Array:
    """Chebyshev coefficients `(..., m)` of the interpolant of `samples` `(..., m)` taken
    at `nodes(m)`."""
    m = samples.shape[-1]
    j = np.arange(m)[:, None]
    k = np.arange(m)[None, :]
    transform = (2.0 / m) * np.cos(np.pi * j * (k + 0.5) / m)  # (m, m)
    transform[0] *= 0.5
    transform = jnp.asarray(transform, samples.dtype)
    return jnp.einsum("jk,...k->...j", transform, samples, precision=lax.Precision.HIGHEST)


def _clenshaw(coefs: Array, t: Array) -> Array:
    """`Σ_j c_j T_j(t)`: coefficients `(..., m)`, points `(..., n)` → `(..., n)`."""
    reversed_coefs = jnp.moveaxis(coefs[..., :0:-1], -1, 0)[..., None]  # (m - 1, ..., 1)
    two_t = 2.0 * t

    def step(carry, c):  # b_k = c_k + 2 t b_{k+1} − b_{k+2}
        b1, b2 = carry
        return (c + two_t * b1 - b2, b1), None

    zeros = jnp.zeros(jnp.broadcast_shapes(t.shape, coefs.shape[:-1] + (1,)), t.dtype)
    (b1, b2), _ = lax.scan(step, (zeros, zeros), reversed_coefs)
    return coefs[..., :1] + t * b1 - b2  # (..., n)


@jax.custom_jvp
def evaluate(coefs: Array, slope_coefs: Array, t: Array) -> Array:
    """`p(t) = Σ_j c_j T_j(t)` for coefficients `(..., m)` at points `(..., n)`.

    `slope_coefs` `(..., m)` are those of the interpolant of the function's own
    derivative `dF/dt`, sampled at the nodes: the derivative in `t` is read from them.
    Differentiating `p` instead would multiply the rounding of the high coefficients by
    up to `2 m²`. Neither pass stores the recurrence's intermediate arrays.
    """
    del slope_coefs
    return _clenshaw(coefs, t)


@evaluate.defjvp
def _evaluate_jvp(primals, tangents):
    coefs, slope_coefs, t = primals
    d_coefs, _, d_t = tangents
    # p is linear in its coefficients: the tangent in c is the same recurrence
    tangent = _clenshaw(d_coefs, t) + _clenshaw(slope_coefs, t) * d_t
    return _clenshaw(coefs, t), tangent
