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

The sparse maps (`c0`, `c1`, `c2`) never sort a row. After shifting the row maximum to 0
the threshold lies in `[-1, 0)` (the top entry alone gives `(0 - θ)^α ≤ 1`), and
`f(θ) = Σ (u - θ)₊^α - 1` is decreasing there. Sparsemax brackets θ by a fixed number of
bisection steps (`O(n)` each, to a bracket of about `sqrt(eps)`); the p-norm maps reach
it from below by Newton's method on the convex `‖(u - θ)₊‖_α - 1` (two to six `O(n)`
steps). The closed form (mean, quadratic root or Cardano) on the support `{u > θ}` then
gives θ exactly, recomputed until the support is stable so that entries just below θ*
are settled. The result equals the sort-based algorithm (kept as `_sorted_threshold`,
for tests) to float round-off.

Each soft projection is a `jax.custom_jvp` with its rule right below it. The rules use
the implicit-function derivative `dy = w ⊙ (dv - <w, dv> / Σw) / N` with weights
`w = ∂y/∂t` on the support (`y` for softmax, the support indicator for sparsemax,
`α t^(α-1)` for the p-norm maps), so gradients stay finite at ties, on constant rows and
for scores far beyond the float range of `exp`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

_HALF_DTYPES = (jnp.bfloat16, jnp.float16)
_MAX_REFINEMENTS = 8


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


def _closed_form(k: Array, s1: Array, s2: Array, s3: Array, alpha: int) -> Array:
    """θ solving `Σ_S (u_i - θ)^α = 1` on a support with `k = |S|` and power sums `s1..s3`.

    - α = 1 (sparsemax): `θ = (s1 - 1) / k`.
    - α = 2 (p = 3/2): the root below the support, `θ = (s1 - sqrt(s1² - k (s2 - 1))) / k`;
      with the row maximum shifted to 0 every sum `s1` is ≤ 0, so the two terms are
      non-positive (no cancellation).
    - α = 3 (p = 4/3), Cardano: with c the mean of S and θ = c + t, `t³ + p t + q = 0`
      where `p = 3 m₂ / k ≥ 0` and `q = (1 - m₃) / k` (m₂, m₃ the central moment sums):
      one real root, evaluated cancellation-free as
      `A = -cbrt(q/2 + sign(q) sqrt(q²/4 + p³/27))`, `t = A - p / (3A)`.

    All arguments broadcast; `k ≥ 1`.
    """
    if alpha == 1:
        return (s1 - 1.0) / k
    if alpha == 2:
        disc = jnp.maximum(s1 * s1 - k * (s2 - 1.0), 0.0)
        return (s1 - jnp.sqrt(disc)) / k
    c = s1 / k
    m2 = jnp.maximum(s2 - c * s1, 0.0)  # Σ (u - c)²
    m3 = s3 - 3.0 * c * s2 + 2.0 * c * c * s1  # Σ (u - c)³
    p = 3.0 * m2 / k
    q = (1.0 - m3) / k
    sign = jnp.where(q >= 0, 1.0, -1.0)
    a = -jnp.cbrt(0.5 * q + sign * jnp.sqrt(0.25 * q * q + p * p * p / 27.0))
    a_safe = jnp.where(a == 0, 1.0, a)
    t = a - jnp.where(a == 0, 0.0, p / (3.0 * a_safe))
    return c + t


def _support_threshold(u: Array, support: Array, alpha: int) -> Array:
    """Closed-form θ `(..., 1)` on the entries of `u (..., n)` where `support` is true."""
    w = support.astype(u.dtype)  # (..., n)
    k = jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), 1.0)  # (..., 1)
    wu = w * u  # (..., n)
    s1 = jnp.sum(wu, axis=-1, keepdims=True)  # (..., 1)
    s2 = jnp.sum(wu * u, axis=-1, keepdims=True) if alpha > 1 else s1
    s3 = jnp.sum(wu * u * u, axis=-1, keepdims=True) if alpha > 2 else s1
    return _closed_form(k, s1, s2, s3, alpha)


def _bisection_steps(dtype) -> int:
    """Bisection steps from a bracket of width 1 to one of about `sqrt(eps)` (one step
    per two mantissa bits); also the cap on Newton's steps."""
    return jnp.finfo(dtype).nmant // 2 + 1


def _bisect_threshold(u: Array, alpha: int) -> Array:
    """Threshold `(..., 1)` of the shifted, clipped row `u (..., n)` (max 0, min -2); the
    sparsemax threshold (`α = 1`, where Newton's steps are Michelot's and may take many
    steps on long rows).

    Bisection on `f(θ) = Σ (u - θ)₊^α - 1` over `[-1, 0]` (`f(-1) ≥ 0 > f(0)`), one step
    per two mantissa bits (a bracket of about `sqrt(eps)`), keeps `lo ≤ θ*`; then the
    closed form on `{u > lo}` (a superset of the support holding at most the entries
    within the final bracket), recomputed on `{u > θ}` until the support stops changing
    (at most `_MAX_REFINEMENTS` times). For sparsemax each refinement is a step of
    Michelot's algorithm, which increases monotonically to θ* from below and stops
    exactly; for the p-norms the error of a support off by entries within `δ` of θ* is
    `O(δ²)`, so one or two refinements reach round-off.
    """
    steps = _bisection_steps(u.dtype)
    lo = jnp.full((*u.shape[:-1], 1), -1.0, dtype=u.dtype)  # (..., 1)
    hi = jnp.zeros_like(lo)  # (..., 1)

    def step(_: int, bracket: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bracket
        mid = 0.5 * (lo + hi)  # (..., 1)
        f = jnp.sum(jnp.maximum(u - mid, 0.0) ** alpha, axis=-1, keepdims=True) - 1.0
        return jnp.where(f >= 0, mid, lo), jnp.where(f >= 0, hi, mid)

    lo, _ = jax.lax.fori_loop(0, steps, step, (lo, hi))
    return _settle_on_support(u, lo, alpha)


def _settle_on_support(u: Array, lo: Array, alpha: int) -> Array:
    """The closed form on `{u > lo}` for a `lo (..., 1)` just below θ*, recomputed on
    `{u > θ}` until the support stops changing (at most `_MAX_REFINEMENTS` times)."""

    def refine(state: tuple[Array, Array, Array, int]) -> tuple[Array, Array, Array, int]:
        theta, size, _, i = state
        support = u > theta  # (..., n)
        new_size = jnp.sum(support, axis=-1, keepdims=True, dtype=jnp.int32)  # (..., 1)
        new_theta = _support_threshold(u, support, alpha)  # (..., 1)
        return new_theta, new_size, jnp.any(new_size != size), i + 1

    def unsettled(state: tuple[Array, Array, Array, int]) -> Array:
        return state[2] & (state[3] < _MAX_REFINEMENTS)

    size = jnp.full(lo.shape, -1, dtype=jnp.int32)  # (..., 1)
    theta, *_ = jax.lax.while_loop(unsettled, refine, (lo, size, jnp.array(True), 0))
    return theta


def _newton_threshold(u: Array, alpha: int) -> Array:
    """Threshold `(..., 1)` of the shifted, clipped row `u (..., n)` for `α ≥ 2`: the
    closed form on the support (`_settle_on_support`) from `_newton_from_below`."""
    theta, _ = _newton_from_below(u, alpha)
    return _settle_on_support(u, theta, alpha)


def _newton_from_below(u: Array, alpha: int) -> tuple[Array, Array]:
    """A lower bound `(..., 1)` of the threshold within about `eps` of it, and the number
    of steps taken, for `α ≥ 2`.

    Newton's method on `g(θ) = ‖(u - θ)₊‖_α - 1`, from `θ = -1` (`g(-1) ≥ 0`). `g` is
    convex and decreasing in θ (a monotone norm of the convex, non-negative `(u - θ)₊`),
    so the iterates increase monotonically to θ* from below, exactly as the bisection's
    lower end does, and converge quadratically once the support stops changing. On a
    fixed support of equal entries `g` is linear and one step is exact, which is why the
    norm is used rather than `Σ (u - θ)₊^α - 1` (whose Newton steps shrink the distance
    by only `1 - 1/α` far from the root). With `s_β = Σ (u - θ)₊^β` a step is

        θ ← θ + (s_α - s_α^(1 - 1/α)) / s_(α-1),

    both sums from one pass over the row. Iterations stop when no row moves by more
    than `sqrt(eps)` (the next error is then about `eps`), at most as many as the
    bisection takes steps. Two to six steps for rows of any scale and spacing, against
    one bisection step per two mantissa bits.
    """
    tolerance = float(jnp.finfo(u.dtype).eps) ** 0.5
    max_steps = _bisection_steps(u.dtype)

    def step(state: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        theta, _, i = state
        t = jnp.maximum(u - theta, 0.0)  # (..., n)
        t_low = t ** (alpha - 1)  # (..., n)
        s_low = jnp.sum(t_low, axis=-1, keepdims=True)  # (..., 1), > 0 while θ < 0
        s = jnp.sum(t_low * t, axis=-1, keepdims=True)  # (..., 1)
        moved = (s - s ** (1.0 - 1.0 / alpha)) / jnp.where(s_low > 0, s_low, 1.0)
        moved = jnp.where(s_low > 0, jnp.maximum(moved, 0.0), 0.0)  # (..., 1), ≥ 0
        return theta + moved, jnp.max(moved), i + 1

    def moving(state: tuple[Array, Array, Array]) -> Array:
        return (state[1] > tolerance) & (state[2] < max_steps)

    theta = jnp.full((*u.shape[:-1], 1), -1.0, dtype=u.dtype)  # (..., 1)
    start = (theta, jnp.array(jnp.inf, u.dtype), jnp.array(0))
    theta, _, steps = jax.lax.while_loop(moving, step, start)
    return theta, steps


def _sorted_threshold(u: Array, alpha: int) -> Array:
    """Sort-based threshold `(..., 1)` (Martins & Astudillo 2016, Algorithm 1, and its
    p-norm analogue): θ_k from the top-k prefix sums at the largest k whose k-th largest
    entry lies above θ_k. `O(n log n)` per row; kept as the reference for tests."""
    desc = jnp.flip(jnp.sort(u, axis=-1), axis=-1)  # (..., n)
    k = jnp.arange(1, u.shape[-1] + 1, dtype=u.dtype)  # (n,)
    s1 = jnp.cumsum(desc, axis=-1)  # (..., n)
    s2 = jnp.cumsum(desc * desc, axis=-1)  # (..., n)
    s3 = jnp.cumsum(desc**3, axis=-1)  # (..., n)
    theta_k = _closed_form(k, s1, s2, s3, alpha)  # (..., n)
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


def _sparsemax_rule(v: Array, threshold: Callable = _bisect_threshold) -> Array:
    """Sparsemax (Martins & Astudillo 2016): `(u - θ)₊` with `Σ (u - θ)₊ = 1`."""
    u = _shift_and_clip(v)  # (..., n)
    theta = threshold(u, 1)  # (..., 1)
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


def _pnorm_rule(
    v: Array, alpha: int, threshold: Callable = _newton_threshold
) -> tuple[Array, Array]:
    """Return `(y, t)` with `t = (u - θ)₊` and `y = t^α / Σ t^α` on the shifted row."""
    u = _shift_and_clip(v)  # (..., n)
    theta = threshold(u, alpha)  # (..., 1)
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
