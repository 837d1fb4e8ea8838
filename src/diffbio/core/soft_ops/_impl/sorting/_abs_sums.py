"""Row sums of soft absolute differences, `A_j = Σ_i softabs(z_j − z_i)`, along the last axis.

The direct sum costs n² soft absolute values per row. In smooth mode,
`F(y) = Σ_i softabs(y − z_i)` with `softabs(d) = d · tanh(d / 2s)` is analytic in the strip
`|Im y| < π s` around the real axis, so its Chebyshev interpolant on `[min z, max z]`
converges geometrically. With `h = (max z − min z) / 2`, take the Bernstein ellipse of
semi-minor axis `φ π s` (`φ = 0.8`): `ρ = β + sqrt(1 + β²)` with `β = φ π s / h`. On it
`|Im (d / 2s)| ≤ φ π / 2`, where `|tanh| ≤ tan(φ π / 2)`, so that
`|F| ≤ n h (sqrt(1 + β²) + 1 + β) tan(φ π / 2)`. When the resulting bound
`4 |F| ρ^(−m) / (ρ − 1)` on the error of the `m`-point interpolant, divided by `s` (the
scale of NeuralSort's scores), is below `n · eps` (the size of the scores' own rounding),
the sums are read from the interpolant: `m` direct sums at the nodes (and `m` of the
slope, which gives the derivative in `z_j`) and one Clenshaw evaluation, `O(m n)` instead
of `O(n²)`. Otherwise (a softness small against the spread of
the row) the direct sum is taken.

Reference: L. N. Trefethen, "Approximation Theory and Approximation Practice", SIAM 2013,
Theorem 8.2.
"""

import math

import jax.numpy as jnp
from jax import Array, lax

from diffbio.core.soft_ops._impl.sigmoidal import softabs, softabs_slope
from diffbio.core.soft_ops._impl.sorting import _chebyshev
from diffbio.core.soft_ops._impl.sorting._common import block_rows, map_row_blocks

INTERPOLATION_NODES = 128
"""Chebyshev nodes `m` of the interpolated sums."""
_STRIP_FRACTION = 0.8
"""`φ`: the error bound's ellipse reaches this fraction of the way to the poles of `tanh`."""


def sums_at(points: Array, z: Array, softness: Array, mode: str, kernel=softabs) -> Array:
    """`Σ_i kernel(p_j − z_i)` for points `(..., m)` → `(..., m)`, a block of points at a
    time (`kernel`: `softabs` or its slope).

    Each block sums along its last (contiguous) axis: reducing a block `(..., n, c)`
    over its second-to-last axis instead is about three times slower on CPU.
    """

    def columns(block: Array) -> Array:  # (..., c) -> (..., c)
        diff = block[..., :, None] - z[..., None, :]  # (..., c, n)
        return jnp.sum(kernel(diff, softness, mode), axis=-1)  # (..., c)

    return map_row_blocks(columns, (points,), block_rows(z.shape[:-1], z.shape[-1]))


def _interpolation_is_exact(half_width: Array, softness: Array, dtype: jnp.dtype) -> Array:
    """Whether the error bound of the interpolant, divided by `softness`, is below
    `n · eps` on every row (`half_width` `(..., 1)`, finite and positive)."""
    m = INTERPOLATION_NODES
    beta = (_STRIP_FRACTION * math.pi) * softness / half_width  # (..., 1)
    root = jnp.sqrt(1.0 + jnp.square(beta))
    rho = beta + root
    # log(4 |F| ρ^(−m) / ((ρ − 1) s) / n), |F| / n = h (sqrt(1 + β²) + 1 + β) tan(φπ/2)
    log_bound = (
        math.log(4.0 * math.tan(_STRIP_FRACTION * math.pi / 2))
        + jnp.log(half_width * (root + 1.0 + beta))
        - m * jnp.log(rho)
        - jnp.log(rho - 1.0)
        - jnp.log(softness)
    )
    return jnp.all(log_bound <= math.log(float(jnp.finfo(dtype).eps)))


def abs_row_sums(z: Array, softness: Array, mode: str) -> Array:
    """`A_j = Σ_i softabs(z_j − z_i)` `(..., n)`: interpolated where that is exact to
    rounding (smooth mode, one softness, n ≥ 4 m), summed directly otherwise."""
    n = z.shape[-1]
    if mode != "smooth" or n < 4 * INTERPOLATION_NODES or jnp.ndim(softness) != 0:
        return sums_at(z, z, softness, mode)
    z_const = lax.stop_gradient(z)
    low = jnp.min(z_const, axis=-1, keepdims=True)  # (..., 1)
    high = jnp.max(z_const, axis=-1, keepdims=True)  # (..., 1)
    middle = 0.5 * (low + high)
    half_width = 0.5 * (high - low)  # (..., 1)
    usable = jnp.all(jnp.isfinite(half_width)) & jnp.isfinite(softness)
    half_width = jnp.where(jnp.isfinite(half_width) & (half_width > 0), half_width, 1.0)
    exact = usable & _interpolation_is_exact(half_width, softness, z.dtype)

    def interpolated(z: Array) -> Array:
        t_nodes = _chebyshev.nodes(INTERPOLATION_NODES, z.dtype)  # (m,)
        points = middle + half_width * t_nodes  # (..., m)
        samples = sums_at(points, z, softness, mode)  # (..., m): F at the nodes
        # dF/dy at the nodes: summed on their own, so that the backward pass of the
        # samples does not run through a forward derivative
        slopes = sums_at(points, z, softness, mode, softabs_slope)  # (..., m)
        return _chebyshev.evaluate(
            _chebyshev.coefficients(samples),
            _chebyshev.coefficients(slopes * half_width),  # dF/dt
            (z - middle) / half_width,
        )  # (..., n)

    return lax.cond(exact, interpolated, lambda z: sums_at(z, z, softness, mode), z)
