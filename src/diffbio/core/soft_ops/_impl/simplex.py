"""Projections of score vectors onto the probability simplex (along the last axis).

Every soft ordering kernel ends in one of these maps: scores ``v`` (already divided by
the softness) become a distribution ``y`` over positions, the solution of

    y = argmax_{y in simplex} <v, y> - R(y)

for a regulariser ``R`` fixed by the mode:

| mode     | regulariser                   | solution                          | smoothness |
|----------|-------------------------------|-----------------------------------|------------|
| `smooth` | negative entropy              | softmax                           | C-infinity |
| `c0`     | squared L2 norm               | sparsemax, `y = (v - θ)₊`         | C0         |
| `c1`     | p-norm, p = 3/2               | `y ∝ (v - θ)₊²`, θ from a quadratic | C1       |
| `c2`     | p-norm, p = 4/3               | `y ∝ (v - θ)₊³`, θ by Cardano     | C2         |
| `hard`   | none                          | one-hot of the (first) argmax     | -          |

References: Martins & Astudillo (2016), "From Softmax to Sparsemax", ICML;
Blondel, Martins & Niculae (2020), "Learning with Fenchel-Young Losses", JMLR (p-norm /
entmax family); Paulus et al. (2026), "SoftJAX & SoftTorch", arXiv:2603.08824.

Each soft projection is a `jax.custom_jvp` with its rule right below it. The rules use
the implicit-function derivative `dy = w ⊙ (dv - <w, dv> / Σw) / N` with weights
`w = ∂y/∂t` on the support (`y` for softmax, the support indicator for sparsemax,
`α t^(α-1)` for the p-norm maps), so gradients stay finite at ties, on constant rows and
for scores far beyond the float range of `exp`.
"""

import jax
import jax.numpy as jnp
from jax import Array

_HALF_DTYPES = (jnp.bfloat16, jnp.float16)


def project_simplex(scores: Array, mode: str = "smooth") -> Array:
    """Project `scores` onto the probability simplex along the last axis.

    **Arguments:**

    - `scores`: array `(..., n)`; already divided by the softness.
    - `mode`: `"smooth"` (softmax), `"c0"` (sparsemax), `"c1"` (p = 3/2), `"c2"`
      (p = 4/3) or `"hard"` (one-hot of the first argmax).

    **Returns:**

    Array `(..., n)` of the input's dtype, entries ≥ 0 summing to 1 along the last axis.
    Half-precision inputs are projected in float32 and cast back.
    """
    dtype = scores.dtype
    if mode == "hard":
        return jax.nn.one_hot(jnp.argmax(scores, axis=-1), scores.shape[-1], dtype=dtype)
    try:
        projection = _PROJECTIONS[mode]
    except KeyError:
        raise ValueError(
            f"Invalid mode {mode!r}; expected one of 'hard', {', '.join(map(repr, _PROJECTIONS))}"
        ) from None
    v = scores.astype(jnp.float32) if dtype in _HALF_DTYPES else scores
    return projection(v).astype(dtype)  # (..., n)


def _implicit_tangent(w: Array, dv: Array, norm: Array | float = 1.0) -> Array:
    """`w ⊙ (dv - <w, dv> / Σw) / norm`: the tangent of a thresholded simplex map."""
    w_sum = jnp.sum(w, axis=-1, keepdims=True)  # (..., 1)
    w_sum = jnp.where(w_sum > 0, w_sum, 1.0)
    mean = jnp.sum(w * dv, axis=-1, keepdims=True) / w_sum  # (..., 1)
    return w * (dv - mean) / norm  # (..., n)


def _shift_and_clip(v: Array) -> Array:
    """Shift each row so its maximum is 0 and clip below at -2.

    The sparse projections have a threshold θ ≥ max(v) - 1 (the top entry is at most 1),
    so entries below max(v) - 1 never enter the support: clipping them leaves the
    projection unchanged while keeping every cumulative sum bounded by 2n (no overflow
    for scores of any magnitude).
    """
    u = v - jnp.max(v, axis=-1, keepdims=True)  # (..., n)
    return jnp.maximum(u, -2.0)


def _descending(u: Array) -> Array:
    return jnp.flip(jnp.sort(u, axis=-1), axis=-1)  # (..., n)


def _ranks_like(u: Array) -> Array:
    return jnp.arange(1, u.shape[-1] + 1, dtype=u.dtype)  # (n,)


def _select_threshold(desc: Array, theta_k: Array) -> Array:
    """Pick θ_k at the largest k whose k-th largest entry is above its candidate θ_k."""
    support = jnp.sum(desc > theta_k, axis=-1, keepdims=True)  # (..., 1)
    support = jnp.maximum(support, 1)
    return jnp.take_along_axis(theta_k, support - 1, axis=-1)  # (..., 1)


# --- smooth: softmax -----------------------------------------------------------------


@jax.custom_jvp
def _softmax(v: Array) -> Array:
    return jax.nn.softmax(v, axis=-1)  # (..., n)


@_softmax.defjvp
def _softmax_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (v,), (dv,) = primals, tangents
    y = _softmax(v)  # (..., n)
    return y, _implicit_tangent(y, dv)


# --- c0: sparsemax (Euclidean projection) ---------------------------------------------


def _sparsemax_rule(v: Array) -> Array:
    """Sort-based sparsemax (Martins & Astudillo 2016, Algorithm 1)."""
    u = _shift_and_clip(v)  # (..., n)
    desc = _descending(u)  # (..., n)
    cumsum = jnp.cumsum(desc, axis=-1)  # (..., n)
    theta_k = (cumsum - 1.0) / _ranks_like(u)  # (..., n)
    theta = _select_threshold(desc, theta_k)  # (..., 1)
    return jnp.maximum(u - theta, 0.0)  # (..., n)


@jax.custom_jvp
def _sparsemax(v: Array) -> Array:
    return _sparsemax_rule(v)


@_sparsemax.defjvp
def _sparsemax_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (v,), (dv,) = primals, tangents
    y = _sparsemax_rule(v)  # (..., n)
    return y, _implicit_tangent((y > 0).astype(y.dtype), dv)


# --- c1 / c2: p-norm projections, y ∝ (v - θ)₊^α -----------------------------------


def _quadratic_thresholds(desc: Array) -> Array:
    """θ_k solving Σ_{i≤k} (u_i - θ)² = 1 (α = 2, p = 3/2), the root below u_k.

    With the row maximum shifted to 0 every partial sum S_k is ≤ 0, so
    `θ = (S - sqrt(S² - k (M₂ - 1))) / k` adds two non-positive terms (no cancellation).
    """
    k = _ranks_like(desc)  # (n,)
    s1 = jnp.cumsum(desc, axis=-1)  # (..., n)
    s2 = jnp.cumsum(desc * desc, axis=-1)  # (..., n)
    disc = jnp.maximum(s1 * s1 - k * (s2 - 1.0), 0.0)  # (..., n)
    return (s1 - jnp.sqrt(disc)) / k  # (..., n)


def _cubic_thresholds(desc: Array) -> Array:
    """θ_k solving Σ_{i≤k} (u_i - θ)³ = 1 (α = 3, p = 4/3) by Cardano's formula.

    With c the mean of the top k and θ = c + t: `t³ + p t + q = 0`, where
    `p = 3 m₂ / k ≥ 0` and `q = (1 - m₃) / k` (m₂, m₃ the central moment sums), which has a
    single real root. It is evaluated in the cancellation-free form
    `A = -cbrt(q/2 + sign(q) sqrt(q²/4 + p³/27))`, `t = A - p / (3A)`.
    """
    k = _ranks_like(desc)  # (n,)
    s1 = jnp.cumsum(desc, axis=-1)  # (..., n)
    s2 = jnp.cumsum(desc**2, axis=-1)  # (..., n)
    s3 = jnp.cumsum(desc**3, axis=-1)  # (..., n)
    c = s1 / k  # (..., n)
    m2 = jnp.maximum(s2 - c * s1, 0.0)  # Σ (u - c)²
    m3 = s3 - 3.0 * c * s2 + 2.0 * c * c * s1  # Σ (u - c)³
    p = 3.0 * m2 / k
    q = (1.0 - m3) / k
    sign = jnp.where(q >= 0, 1.0, -1.0)
    a = -jnp.cbrt(0.5 * q + sign * jnp.sqrt(0.25 * q * q + p * p * p / 27.0))
    a_safe = jnp.where(a == 0, 1.0, a)
    t = a - jnp.where(a == 0, 0.0, p / (3.0 * a_safe))
    return c + t  # (..., n)


def _pnorm_rule(v: Array, alpha: int) -> tuple[Array, Array]:
    """Return `(y, t)` with `t = (u - θ)₊` and `y = t^α / Σ t^α` on the shifted row."""
    u = _shift_and_clip(v)  # (..., n)
    desc = _descending(u)  # (..., n)
    thresholds = _quadratic_thresholds if alpha == 2 else _cubic_thresholds
    theta = _select_threshold(desc, thresholds(desc))  # (..., 1)
    t = jnp.maximum(u - theta, 0.0)  # (..., n)
    t_pow = t**alpha
    return t_pow / jnp.sum(t_pow, axis=-1, keepdims=True), t  # (..., n), (..., n)


def _pnorm_tangent(t: Array, dv: Array, alpha: int) -> Array:
    norm = jnp.sum(t**alpha, axis=-1, keepdims=True)  # (..., 1)
    return _implicit_tangent(alpha * t ** (alpha - 1), dv, jnp.where(norm > 0, norm, 1.0))


@jax.custom_jvp
def _pnorm_3_2(v: Array) -> Array:
    return _pnorm_rule(v, 2)[0]


@_pnorm_3_2.defjvp
def _pnorm_3_2_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (v,), (dv,) = primals, tangents
    y, t = _pnorm_rule(v, 2)
    return y, _pnorm_tangent(t, dv, 2)


@jax.custom_jvp
def _pnorm_4_3(v: Array) -> Array:
    return _pnorm_rule(v, 3)[0]


@_pnorm_4_3.defjvp
def _pnorm_4_3_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (v,), (dv,) = primals, tangents
    y, t = _pnorm_rule(v, 3)
    return y, _pnorm_tangent(t, dv, 3)


_PROJECTIONS = {"smooth": _softmax, "c0": _sparsemax, "c1": _pnorm_3_2, "c2": _pnorm_4_3}
