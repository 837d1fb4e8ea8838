"""`smooth_sort`: a C∞ projection onto a smoothed permutahedron (values only; last axis).

The projection of scores `z` onto the permutahedron of `w` keeps a vector `y` that is
majorised by `w`: sorted decreasingly along `z`, its prefix sums satisfy
`Σ_{i≤k} y_i ≤ b_k` (k < n) and `Σ y = b_n`, where for the true permutahedron
`b_k` is the sum of the k largest `w`. Here (as in SoftJAX 0.1.1's `smooth_sort`)

- the hard bounds are replaced by the C∞ log-sum-exp bounds
  `b_k = τ log e_k(exp(w / τ))`, `τ = min(s, 1)` (`e_k` the elementary symmetric
  polynomials, computed by `_esp`), `b_n = Σ w`;
- slacks `σ = b − A y` and gaps `δ = D y` (`(Dy)_k = y_k − y_{k+1}`) get entropy terms,

      y = argmax ⟨z / s, y⟩ − Σ_k σ_k (log σ_k − 1) − Σ_k δ_k (log δ_k − 1),

  whose dual is unconstrained in `β ∈ R^(n−1)`:

      g(β) = ⟨β, c⟩ + Σ_k exp(−(Δz_k + (Lβ)_k)) + Σ_k exp(−β_k),

  with `Δz_k = z_(k) − z_(k+1)` the gaps of the sorted scores, `L` the tridiagonal
  second-difference matrix and `c_k = (b_{k+1} − b_k) − (b_{k+2} − b_{k+1})` (with
  `b_0 = 0`). At the optimum `σ = exp(−(Δz + Lβ))`, `δ = exp(−β)`, and `y` is
  rebuilt from them (least squares over the prefix sums, as SoftJAX).

`sort` projects `z = linspace(0, 1, n)` onto the permutahedron of `x` (ascending values,
flipped for `descending`); `rank` projects `z = ±x` onto that of `w = (1, …, n)/(n − 1)`
and rescales by `n − 1`; these `w` are evenly spaced, so their bounds have a closed
form (`_esp.geometric_log_ratios`, O(n) instead of the O(n²) recurrence). Like SoftJAX,
`smooth_sort` does not standardise its input (the sigmoid squash and logit unsquash
would amplify the small excursions of the smooth bounds outside the data range);
`standardize` is accepted and ignored.

**Solver.** The dual Hessian `H = L diag(σ) L + diag(δ)` is pentadiagonal and badly
conditioned (plain L-BFGS needs thousands of steps at n = 512 and, with the tolerances
SoftJAX uses, stops with errors of 10⁻² in float32). The dual is minimised by a damped
Newton method (`_newton`): each step solves `H p = −∇g` by conjugate gradients
preconditioned with `T diag(σ) T`, `T = L + diag(sqrt(δ / σ))` tridiagonal (equal to
`H` up to the cross terms, within a factor 2 where σ and δ vary slowly; `T` is factored
once per step by cyclic reduction, `_cyclic_reduction`), then halves
the step until the dual decreases. Newton steps are invariant to the scale of the
problem, so the same iteration serves inputs of 1e-3 and of 1e30 (where the optimum
is tens of units of β away from the start). It stops when the dual gradient (the
mismatch between the gaps implied by the slacks and `δ`) is within tolerance.

The rows are centred first (`w − m`, `z − m'`, each on its entry nearest zero): the projection
commutes with these shifts, and for a (near-)constant row of large values the bound
increments then keep their O(τ) differences instead of rounding them away.

**Derivatives.** The projection is a `jax.custom_jvp` of `(sorted z, first differences
of b)`. Its rule differentiates the optimality conditions: with `W_σ = diag(σ)`,
`W_δ = diag(δ)`, `q = ḃ − (ḃ_n / n)(1, …, n − 1)` and `r = D ż`,

    ẏ = Dᵀ η + (ḃ_n / n) 1,   η = q + W_σ (r − L ρ),   (L W_σ L + W_δ) ρ = L (W_σ r + q),

(the Woodbury form of the primal system, free of divisions by small slacks or gaps;
`η` is evaluated as `L⁻¹ W_δ ρ`, equal by the system for `ρ` and free of the
cancellation of the first form when the gaps are far below the slacks),
with `ρ` from conjugate gradients preconditioned by `T diag(σ) T`
(`jax.lax.custom_linear_solve`, so JAX transposes it for reverse mode). The bounds are
differentiated by `_esp` (inclusion probabilities, O(n) memory).

Reference: SoftJAX 0.1.1 `smooth_sort` (A. Paulus et al., "SoftJAX & SoftTorch",
arXiv:2603.08824); M. Blondel, O. Teboul, Q. Berthet, J. Djolonga, "Fast
Differentiable Sorting and Ranking", ICML 2020, arXiv:2002.08871 (permutahedron
projections); J. Nocedal, S. J. Wright, "Numerical Optimization" (2006), §7.1
(Newton-CG).
"""

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffbio.core.soft_ops._impl.sorting import _cyclic_reduction, _esp, _newton
from diffbio.core.soft_ops._impl.sorting._common import (
    hard_rank,
    hard_sort,
    output_dtype,
    prepare,
    row_center,
)

DEFAULTS: dict[str, Any] = {"tol": 1e-4, "max_iter": 500, "cg_tol": 1e-6, "cg_max_iter": 100}
_ALIASES = {"lbfgs_tol": "tol", "lbfgs_max_iter": "max_iter"}
_OT_ONLY = (
    "sinkhorn_tol",
    "sinkhorn_max_iter",
    "implicit_diff",
    "use_entropic_ot_sinkhorn_on_entropic",
)
"""`ot_kwargs` keys of `method="ot"` that have no meaning here: ignored, so that one
`ot_kwargs` serves both solver methods."""


def parse_options(options: dict | None) -> dict[str, Any]:
    """Validate `options` and fill in defaults.

    Accepted keys:

    - `tol` (alias `lbfgs_tol`, default 1e-4): the Newton iteration stops when
      `sqrt(n) · max_k |∂g/∂β_k| ≤ tol · spread(w)`, the dual gradient being the
      mismatch between the gaps of `y` implied by its prefix sums and the gaps `δ`.
    - `max_iter` (alias `lbfgs_max_iter`, default 500): Newton steps.
    - `cg_tol` (default 1e-6), `cg_max_iter` (default 100): conjugate gradients of the
      implicit derivative.

    **Raises:** `ValueError` for unknown keys, listing the valid ones.
    """
    opts = dict(DEFAULTS)
    valid = sorted([*DEFAULTS, *_ALIASES])
    for key, value in (options or {}).items():
        if key in _OT_ONLY:
            continue
        target = _ALIASES.get(key, key)
        if target not in DEFAULTS:
            raise ValueError(f"Unknown smooth_sort option {key!r}; valid keys are {valid}")
        opts[target] = value
    for key in DEFAULTS:
        opts[key] = int(opts[key]) if key.endswith("max_iter") else float(opts[key])
    return opts


def _check_mode(mode: str) -> None:
    if mode in ("c0", "c1", "c2"):
        raise ValueError(
            f"smooth_sort supports mode='smooth' only (and 'hard'), got mode={mode!r}; "
            "use method='fast_soft_sort' or 'ot' for the c0/c1/c2 modes"
        )
    if mode not in ("smooth", "hard"):
        raise ValueError(
            f"Invalid mode {mode!r} for method='smooth_sort'; expected 'smooth' or 'hard'"
        )


# --- small banded helpers (last axis = one row) -----------------------------------------------


def _lap(v: Array) -> Array:
    """`L v` along the last axis: `2 v_k − v_{k−1} − v_{k+1}` with zeros outside."""
    pad = jnp.zeros((*v.shape[:-1], 1), v.dtype)
    return (
        2.0 * v - jnp.concatenate([pad, v[..., :-1]], -1) - jnp.concatenate([v[..., 1:], pad], -1)
    )


def _d(v: Array) -> Array:
    """`D v`: `v_k − v_{k+1}` `(..., n−1)`."""
    return v[..., :-1] - v[..., 1:]


def _dt(e: Array) -> Array:
    """`Dᵀ e` `(..., n)` for `e` `(..., n−1)`."""
    pad = jnp.zeros((*e.shape[:-1], 1), e.dtype)
    return jnp.concatenate([e, pad], -1) - jnp.concatenate([pad, e], -1)


class _Tridiag(NamedTuple):
    """`T = L + diag(sqrt(δ / σ))`, factored, and `σ`: `T diag(σ) T` approximates the
    dual Hessian."""

    slack: Array  # (..., m) σ, floored at the smallest normal float
    factor: _cyclic_reduction.Factor  # of T, diagonal 2 + sqrt(δ / σ)


def _tridiag(slack: Array, gap: Array) -> _Tridiag:
    slack = jnp.maximum(slack, jnp.finfo(slack.dtype).tiny)
    # sqrt(δ) / sqrt(σ), not sqrt(δ / σ): the ratio overflows float32 at 1e20 / 1e-26
    return _Tridiag(slack, _cyclic_reduction.factor(2.0 + jnp.sqrt(gap) / jnp.sqrt(slack)))


def _hessian(slack_curvature: Array, gap_curvature: Array):
    """`v ↦ (L diag(σ'') L + diag(δ'')) v`, the dual Hessian for the curvatures of the
    slack and gap terms."""

    def apply(v: Array) -> Array:
        return _lap(slack_curvature * _lap(v)) + gap_curvature * v

    return apply


def _preconditioner(tri: _Tridiag):
    """`v ↦ (T diag(σ) T)⁻¹ v`, two tridiagonal solves by cyclic reduction (`T` is
    factored once per Newton step, and each solve is then log2(n) vectorised steps)."""

    def apply(v: Array) -> Array:
        inner = _cyclic_reduction.solve(tri.factor, v) / tri.slack
        return _cyclic_reduction.solve(tri.factor, inner)

    return apply


def _laplacian_solve(rhs: Array) -> Array:
    """`L⁻¹ rhs` along the last axis, by cyclic reduction: in float32 at n = 4096 its
    error is 4e-7 of the solution, where a pivoting LAPACK sweep (`gtsv`) loses 6e-3 to
    the condition number n² of `L`."""
    return _cyclic_reduction.solve(_cyclic_reduction.factor(jnp.full_like(rhs, 2.0)), rhs)


# --- the dual and its solver ----------------------------------------------------------------------


def _cap(dtype: jnp.dtype) -> float:
    """85% of `log(max float)`: 75.4 in float32."""
    return 0.85 * math.log(float(jnp.finfo(dtype).max))


def _capped_exp(u: Array) -> Array:
    """`exp(u)` up to `u = cap` (`_cap`), continued beyond by its second-order Taylor
    polynomial there: convex, C², finite. The optimum has slacks and gaps below the
    cap for inputs up to 1e30 in float32, so only starting points and trial points of
    the line search see the continuation (where `exp` would overflow and turn the dual
    gradient into `inf − inf`)."""
    cap = jnp.asarray(_cap(u.dtype), u.dtype)
    excess = jnp.maximum(u - cap, 0.0)
    return jnp.exp(jnp.minimum(u, cap)) * (1.0 + excess + 0.5 * excess * excess)


def _capped_exp_slopes(u: Array) -> tuple[Array, Array]:
    """The first and second derivatives of `_capped_exp` at `u`."""
    cap = jnp.asarray(_cap(u.dtype), u.dtype)
    excess = jnp.maximum(u - cap, 0.0)
    second = jnp.exp(jnp.minimum(u, cap))
    return second * (1.0 + excess), second


def _exp_change(u: Array, du: Array) -> Array:
    """`capped_exp(u + du) − capped_exp(u)`, as `exp(u) · expm1(du)` (exact to rounding of
    the change itself) where both points are below the cap."""
    cap = _cap(u.dtype)
    below = (u < cap) & (u + du < cap)
    exact = jnp.exp(jnp.minimum(u, cap)) * jnp.expm1(jnp.where(below, du, 0.0))
    return jnp.where(below, exact, _capped_exp(u + du) - _capped_exp(u))


def _dual_change(beta: Array, step: Array, c: Array, dz: Array) -> tuple[Array, Array]:
    """`g(β + step) − g(β)` per row `(B,)`, summed from each term's own change, and the sum
    of the changes' magnitudes `(B,)`."""
    terms = (
        step * c,
        _exp_change(-(dz + _lap(beta)), -_lap(step)),
        _exp_change(-beta, -step),
    )
    difference = sum(jnp.sum(t, -1) for t in terms)
    size = sum(jnp.sum(jnp.abs(t), -1) for t in terms)
    return difference, size


def _local(beta: Array, c: Array, dz: Array, tol: Array) -> _newton.Local:
    """Gradient `c − Lσ − δ`, Hessian `L diag(σ) L + diag(δ)`, the preconditioner
    `(T diag(σ) T)⁻¹` and the error: the largest gradient entry in units of each row's
    tolerance, raised to the float resolution of the gradient's terms so that rows at
    the precision floor stop instead of running to `max_iter`."""
    # σ, δ and their curvatures (equal below the cap, where the optimum lies)
    slack, slack_curvature = _capped_exp_slopes(-(dz + _lap(beta)))  # (B, m) each
    gap, gap_curvature = _capped_exp_slopes(-beta)  # (B, m) each
    gradient = c - _lap(slack) - gap
    tri = _tridiag(slack_curvature, gap_curvature)
    size = jnp.max(jnp.abs(c), -1) + 4.0 * jnp.max(slack, -1) + jnp.max(gap, -1)  # (B,)
    floor = 32.0 * jnp.finfo(c.dtype).eps * size
    error = jnp.max(jnp.abs(gradient), -1) / jnp.maximum(tol, floor)
    hessian = _hessian(slack_curvature, gap_curvature)
    return _newton.Local(gradient, hessian, _preconditioner(tri), error)


def _solve_dual(c: Array, dz: Array, tol: Array, opts: dict) -> Array:
    """Minimiser `β` `(B, n−1)` of the duals of a batch of rows (tolerances `(B,)`), by
    a damped Newton method (`_newton`) whose steps are solved by conjugate gradients
    preconditioned with `T diag(σ) T`."""
    # start at the dual point of the vertex y_(k) = b_k − b_(k−1) (gaps δ = c), which
    # is the solution when the scores are far apart
    beta = -jnp.log(jnp.maximum(c, jnp.finfo(c.dtype).tiny))
    return _newton.minimise(
        lambda b, step: _dual_change(b, step, c, dz),
        lambda b: _local(b, c, dz, tol),
        beta,
        max_iter=opts["max_iter"],
    )


def _reconstruct(b: Array, b_n: Array, slack: Array, gap: Array) -> Array:
    """`y` `(..., n)` (sorted order) whose gaps are `gap` and whose prefix sums best match
    `b − slack` and `b_n` in least squares (exact at the optimum; as SoftJAX)."""
    n = gap.shape[-1] + 1
    dtype = gap.dtype
    pad = jnp.zeros((*gap.shape[:-1], 1), dtype)
    tail = jnp.concatenate([jnp.flip(jnp.cumsum(jnp.flip(gap, -1), -1), -1), pad], -1)  # (..., n)
    prefix = jnp.cumsum(tail, -1)[..., :-1]  # (..., n−1)
    k = jnp.arange(1, n, dtype=dtype)
    num = jnp.sum(k * (b - slack - prefix), -1) + n * (b_n - jnp.sum(tail, -1))  # (...,)
    den = jnp.sum(k * k) + n * n
    return (num / den)[..., None] + tail


def _primal(dz: Array, delta: Array, opts: dict):
    """`(y, slack, gap)` in sorted order for the gaps `dz` `(B, n−1)` of the decreasing
    scores and bound increments `delta` `(B, n)`."""
    b_all = jnp.cumsum(delta, -1)  # (B, n) b_1 … b_n
    n = delta.shape[-1]
    tiny = jnp.finfo(delta.dtype).tiny
    eps = jnp.finfo(delta.dtype).eps
    # c > 0 exactly (the ESP bounds are strictly concave in k), but for tied inputs it is
    # O(τ) and rounds to 0 next to increments of 1e10 in float32, which leaves the dual
    # without a minimiser; it is floored at the rounding level of the increments
    c = delta[..., :-1] - delta[..., 1:]  # (B, n−1)
    c = jnp.maximum(c, 4.0 * eps * jnp.max(jnp.abs(delta), -1, keepdims=True))
    # the std of delta, with its moments taken of delta / max|delta| (the square of
    # 1e30 overflows float32)
    scale = jnp.maximum(jnp.max(jnp.abs(delta), -1), tiny)  # (B,)
    spread = scale * jnp.std(delta / scale[:, None], -1)
    spread = jnp.maximum(spread, 1e-6 * (1.0 + scale))  # (B,)
    tol = jnp.maximum(opts["tol"] * spread / jnp.sqrt(n), tiny)
    beta = _solve_dual(c, dz, tol, opts)
    slack = jnp.exp(-(dz + _lap(beta)))
    gap = jnp.exp(-beta)
    return _reconstruct(b_all[..., :-1], b_all[..., -1], slack, gap), slack, gap


@partial(jax.custom_jvp, nondiff_argnums=(3,))
def _project_sorted(zu: Array, softness: Array, delta: Array, opts_items: tuple) -> Array:
    """The projection `y` `(B, n)` of the sorted scores `zu / softness` (`zu` `(B, n)`
    decreasing, `softness` `(B, 1)`) for bound increments `delta` `(B, n)`."""
    return _primal(_d(zu) / softness, delta, dict(opts_items))[0]


def _tangent(
    slack: Array, gap: Array, weighted: Array, ddelta: Array, opts: dict
) -> Array:
    """`ẏ` `(n,)` of one row (module docstring), given `weighted = W_σ r` `(n−1,)`;
    linear in `(weighted, ddelta)`."""
    n = ddelta.shape[0]
    db = jnp.cumsum(ddelta)  # (n,)
    db_n = db[-1]
    q = db[:-1] - (db_n / n) * jnp.arange(1, n, dtype=ddelta.dtype)  # (n−1,)
    hess = _hessian(slack, gap)  # L W_σ L + W_δ
    precond = _preconditioner(_tridiag(slack, gap))

    def solve(matvec, b):
        return _pcg(matvec, precond, b, opts["cg_tol"], opts["cg_max_iter"])

    rho = jax.lax.custom_linear_solve(hess, _lap(weighted + q), solve, symmetric=True)
    # η = q + W_σ (r − L ρ) equals L⁻¹ W_δ ρ (apply L and use the system for ρ): the
    # second form has no cancellation when the gaps are far below the slacks (inputs
    # spread over 1e20 and more), where the first loses every digit in float32
    eta = _laplacian_solve(gap * rho)
    return _dt(eta) + db_n / n


@_project_sorted.defjvp
def _project_sorted_jvp(opts_items, primals, tangents):
    # implicit derivative of the optimality conditions (module docstring)
    zu, softness, delta = primals
    dzu, dsoftness, ddelta = tangents
    opts = dict(opts_items)
    # the gaps of the scores are divided by s after the subtraction: tied scores then
    # have gaps of exactly 0 (z_k / s − z_(k+1) / s may be an ulp off under fusion)
    dz = _d(zu) / softness  # (B, n−1)
    y, slack, gap = _primal(dz, delta, opts)
    # W_σ r with r = D ż, ż = żu / s − (zu / s)·(ṡ / s): formed as σ·D żu / s − (σ·Δz)·(ṡ / s)
    # so that a gap of 1e35 between scores (1e30 / 1e-5), whose slack is 0, contributes
    # 0 instead of 0 · (1e35 · 1e5 = inf); σ·Δz itself stays finite (σ = exp(−Δz − Lβ))
    weighted = slack * _d(dzu) / softness - (slack * dz) * (dsoftness / softness)
    dy = jax.vmap(lambda a, b, c, d: _tangent(a, b, c, d, opts))(slack, gap, weighted, ddelta)
    return y, dy


def _pcg(matvec, precond, b, tol, max_iter):
    from diffbio.core.soft_ops._impl.sorting._ot_plan import _pcg as pcg

    return pcg(matvec, precond, b, tol, max_iter)


def _project(
    z: Array,
    w: Array,
    softness: Array,
    opts: dict,
    anchors: bool = False,
    increasing: bool = False,
) -> Array:
    """Projection of scores `z / s` onto the smoothed permutahedron of `w`, rows `(..., n)`.

    With `anchors`, `w` is rank's row `(1, …, n) / (n − 1)` `(n,)`: its bounds are the
    log-ratios of the elementary symmetric polynomials of a geometric sequence, in
    closed form (`_esp.geometric_log_ratios`, O(n)); otherwise `w` `(..., n)` has its
    bounds from the O(n²) recurrence, row by row. With `increasing`, the scores are
    known to increase strictly along each row (sort's evenly spaced scores), so their
    decreasing order is the reversal and no sort of the scores is needed.
    """
    n = z.shape[-1]
    if n == 1:
        return jnp.broadcast_to(w, z.shape)
    tau = jnp.minimum(softness, 1.0)
    rows = math.prod(z.shape[:-1])
    if anchors:
        # centred on w_1 = 1 / (n − 1): (w − m) / τ = (0, a, …, (n − 1)·a), a = 1 / ((n − 1) τ)
        m = w[:1]  # (1,)
        step = 1.0 / ((n - 1) * tau)  # () or (..., 1)
        # τ·log(e_k / e_{k−1}) = τ·(n − k)·a + τ·excess, the first term (n − k) / (n − 1)
        k = jnp.arange(1, n + 1, dtype=z.dtype)
        delta = (n - k) / (n - 1) + tau * _esp.geometric_excess(n, step)  # (n,) or (..., n)
        delta = jnp.broadcast_to(delta, (*z.shape[:-1], n)).reshape(rows, n)  # (B, n)
    else:
        # shifting w by m shifts the projection by m (the bounds b_k move by k·m, the
        # slacks and gaps not at all); centring first keeps the bound increments'
        # differences c exact for a (near-)constant row of large values, where w + O(τ)
        # would round away
        m = row_center(w)  # (..., 1)
        delta = tau * _esp.log_ratios(((w - m) / tau).reshape(rows, n))  # (B, n)
    # the scores are centred first (a common shift of z moves ⟨z, y⟩ by a constant, as
    # Σ y is fixed): a constant row of large scores then has zero scores and zero
    # derivatives in s, instead of (1e30 / 1e-5)·(ds / s) overflowing; the division by
    # s happens inside `_project_sorted`, whose derivative keeps the part of the tangent
    # of z / s that overflows away from slacks of 0
    zu = (z - row_center(z)).reshape(rows, n)  # (B, n)
    s_rows = jnp.broadcast_to(jnp.asarray(softness, zu.dtype), (*z.shape[:-1], 1))
    s_rows = s_rows.reshape(rows, 1)  # (B, 1)
    opts_items = tuple(sorted(opts.items()))
    if increasing:
        ys = _project_sorted(jnp.flip(zu, -1), s_rows, delta, opts_items)  # (B, n)
        return jnp.flip(ys, -1).reshape(z.shape) + m
    order = jnp.argsort(-jax.lax.stop_gradient(zu / s_rows), axis=-1, stable=True)  # (B, n)
    zu_sorted = jnp.take_along_axis(zu, order, axis=-1)  # (B, n) decreasing
    ys = _project_sorted(zu_sorted, s_rows, delta, opts_items)  # (B, n)
    inverse = jnp.argsort(order, axis=-1)
    return jnp.take_along_axis(ys, inverse, axis=-1).reshape(z.shape) + m


def sort(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    gated_grad: bool = True,
    options: dict | None = None,
) -> Array:
    """Soft sorted values `(..., n)`: `linspace(0, 1, n)` projected onto the smoothed
    permutahedron of `x` (ascending; flipped for `descending`).

    **Arguments:**

    - `x`: array `(..., n)`.
    - `softness`: `s > 0` (may be traced and differentiated): the scores are `z / s`
      and the bounds use `τ = min(s, 1)`.
    - `mode`: `"smooth"` or `"hard"` (exact `jnp.sort`); c0/c1/c2 raise a `ValueError`.
    - `descending`: largest first.
    - `standardize`: accepted and ignored (see the module docstring).
    - `gated_grad`: accepted for interface compatibility; the values are the projection
      itself (there is no soft index to stop).
    - `options`: solver options, see `parse_options`.

    **Returns:** array `(..., n)` of the input's float dtype.
    """
    del standardize, gated_grad
    _check_mode(mode)
    if mode == "hard":
        return hard_sort(x, descending)
    opts = parse_options(options)
    xc, s = prepare(x, softness)
    n = x.shape[-1]
    anchors = jnp.broadcast_to(jnp.arange(n, dtype=xc.dtype) / max(n - 1, 1), xc.shape)
    values = _project(anchors, xc, s, opts, increasing=True)  # (..., n) ascending
    if descending:
        values = jnp.flip(values, axis=-1)
    return values.astype(output_dtype(x))


def rank(
    x: Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    descending: bool = False,
    standardize: bool = True,
    *,
    options: dict | None = None,
) -> Array:
    """Soft ranks `(..., n)` in [1, n] (1 = smallest, or largest if `descending`): the
    scores `±x / s` projected onto the smoothed permutahedron of `(1, …, n)/(n − 1)`,
    times `n − 1`. Arguments as `sort`."""
    del standardize
    _check_mode(mode)
    if mode == "hard":
        return hard_rank(x, descending)
    opts = parse_options(options)
    xc, s = prepare(x, softness)
    n = x.shape[-1]
    scale = max(n - 1, 1)
    w = jnp.arange(1, n + 1, dtype=xc.dtype) / scale  # (n,), shared by every row
    ranks = _project(-xc if descending else xc, w, s, opts, anchors=True) * scale
    return ranks.astype(output_dtype(x))


def top_k(
    x: Array,
    k: int,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    standardize: bool = True,
    *,
    gated_grad: bool = True,
    options: dict | None = None,
) -> tuple[Array, None]:
    """The k largest soft values `(..., k)`, descending (the first k of the descending
    `sort`), and `None`: the method produces values only."""
    n = x.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must satisfy 1 <= k <= n={n}, got k={k}")
    _check_mode(mode)
    if mode == "hard":
        return jax.lax.top_k(x, k)[0], None
    values = sort(x, softness, mode, True, standardize, gated_grad=gated_grad, options=options)
    return values[..., :k], None
