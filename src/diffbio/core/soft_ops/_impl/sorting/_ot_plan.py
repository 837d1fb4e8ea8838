"""Regularised one-dimensional optimal transport plans for `method="ot"` (last axis).

For scores `z` `(n,)` with uniform weights `μ = 1/n` and sorted anchors `a` `(m,)` with
weights `ν`, the plan is

    Γ = argmin_{Γ ≥ 0, Γ 1 = μ, Γᵀ 1 = ν}  ⟨C, Γ⟩ + s · R(Γ),    C_ij = (z_i − a_j)²,

with `R` the negative entropy (`smooth`, Cuturi 2013) or `R(Γ) = Σ Γ^p / p` with
p = 2 (`c0`), 3/2 (`c1`), 4/3 (`c2`) (Blondel, Seguy & Rolet 2018). The dual variables
`(f, g)` give `Γ = exp((f ⊕ g − C)/s)` for the entropy and
`Γ = ((f ⊕ g − C)₊ / s)^(q−1)` (q = p/(p−1)) for the p-norms.

**Stable start.** The unregularised problem has a closed-form solution: the monotone
(north-west corner) coupling of the sorted scores with the anchors, and dual potentials
`(f⁰, g⁰)` obtained by integrating `∂C/∂z` along it and taking the c-transform. Both
solvers work on the shifted cost `C − f⁰ ⊕ g⁰ ≥ 0`, which has a zero in every row and
column. Hence

- Sinkhorn (ott-jax) runs on the kernel `exp((f⁰ ⊕ g⁰ − C)/s) ≤ 1`: every row and
  column keeps an entry equal to 1, so the scalings stay within float32 range for any
  softness and any `n` (the absorption stabilisation of Schmitzer 2019, done once with
  the exact potentials of the unregularised problem), while each iteration costs a
  matrix-vector product instead of a log-sum-exp. Should a row still return a
  non-finite plan, the whole batch is solved again in ott's log domain.
- The p-norm dual is solved by optimistix L-BFGS in the corrections to `(f⁰, g⁰)`
  (after an exact per-row threshold step), so that float32 resolves the small values
  of `f ⊕ g − C` near the transported band. The low-frequency "transport" direction
  (`f` up and `g` down below a position, which the plain dual couples only through the
  narrow band of the plan and so makes L-BFGS crawl) gets its own coordinates: a
  cumulative sum `h` over the anchors, added to `f` at each score's matched anchor and
  subtracted from `g`. Objective differences near the optimum are far below float32
  resolution of the objective value, so the Armijo test tolerates that rounding noise,
  and the solver stops on the marginal error (the gradient) instead of step sizes.

**Banded plans.** The p-norm plans are sparse: for the soft permutation (`plan(...,
permutation=True)`, n ≥ 1024) each row is solved and differentiated on a window of
anchors around its rank (`_ot_band`), an `n × w` problem instead of `n × n` (w = 64,
320 and 704 for c0, c1 and c2 at n = 4096). A batch whose solution reaches beyond the
windows (checked on the dual potentials, which define the plan everywhere) is solved
densely instead.

**Derivatives.** `plan` is a `jax.custom_jvp`: its rule differentiates the optimality
conditions `Γ 1 = μ`, `Γᵀ 1 = ν` (implicit function theorem) with the Jacobian
`H = [[diag(W 1), W], [Wᵀ, diag(Wᵀ 1)]]`, `W = ∂Γ/∂(f ⊕ g − C)` (`Γ/s` for the entropy,
`(q−1)/s · ((f ⊕ g − C)₊/s)^(q−2)` for the p-norms). The Schur complement on the smaller
side, `diag(Wᵀ1) − Wᵀ diag(W1)⁻¹ W` plus a rank-one term that removes its null vector
`1`, is symmetric positive definite: it is solved densely for a few anchors and otherwise
by conjugate gradients on the materialised plan (two products of `W` with vectors per
step, `Wᵀ v` as `vᵀ W` so that `W` is never transposed; for the entropy `W` is the plan
itself times `1/s`, so the plan is the only `n × m` array the derivative keeps),
preconditioned by `diag(Wᵀ1)⁻¹` plus the pseudo-inverse of a chain Laplacian over the
anchors that carries the same low-frequency energy (two cumulative sums), which brings
the iteration count from hundreds to about ten. The rule is linear in the tangents
(`jax.lax.custom_linear_solve`), so JAX transposes it for reverse mode. Since `Γ`
depends on `C/s` only, the softness tangent is `dC = −C · ds / s`.

ott's own `ImplicitDiff` instead solves the non-symmetric `ε log`-preconditioned system
with normal-equation CG, applying the plan in the log domain at every step; in float32
that returns non-finite results already at n = 512 (SoftJAX 0.1.1 documents the same
failure and asks for float64), and it costs a log-sum-exp per CG step.

References: M. Cuturi, "Sinkhorn Distances", NeurIPS 2013, arXiv:1306.0895;
M. Cuturi, O. Teboul, J.-P. Vert, "Differentiable Ranking and Sorting using Optimal
Transport", NeurIPS 2019, arXiv:1905.11885; M. Blondel, V. Seguy, A. Rolet, "Smooth and
Sparse Optimal Transport", AISTATS 2018, arXiv:1710.06276; B. Schmitzer, "Stabilized
Sparse Scaling Algorithms for Entropy Regularized Transport Problems", SIAM J. Sci.
Comput. 2019, arXiv:1610.06519; D. C. Liu, J. Nocedal, "On the limited memory BFGS
method for large scale optimization", Math. Programming 1989.
"""

import functools
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffbio.core.soft_ops._impl.sorting import _ot_band
from diffbio.core.soft_ops._impl.sorting._common import inverse_permutation, row_sums
from diffbio.core.soft_ops._impl.sorting._optional import require
from diffbio.core.soft_ops._impl.sorting._ot_band import col_sums, read

MODES = ("smooth", "c0", "c1", "c2")
_CONJUGATE = {"c0": 2.0, "c1": 3.0, "c2": 4.0}
"""Mode → conjugate exponent q = p / (p − 1) of the p-norm regulariser."""

DEFAULTS: dict[str, Any] = {
    "sinkhorn_tol": 1e-5,
    "sinkhorn_max_iter": 2000,
    "lbfgs_tol": 1e-4,
    "lbfgs_max_iter": 1000,
    "cg_tol": 1e-5,
    "cg_max_iter": 500,
}
"""Default solver options (see `parse_options`)."""

_ALIASES = {
    "tol": ("sinkhorn_tol", "lbfgs_tol"),
    "max_iter": ("sinkhorn_max_iter", "lbfgs_max_iter"),
}
_SOFTJAX_ONLY_TRUE = ("implicit_diff", "use_entropic_ot_sinkhorn_on_entropic")

_DENSE_SCHUR = 64
"""Schur complements up to this size are solved densely."""
_BLOCK_ELEMENTS = 1 << 20
"""Batch rows are solved a chunk at a time so that one `(chunk, n, m)` array holds about
2²⁰ entries (4 MiB in float32): the solvers' loops then run in cache, each chunk stops
when its own rows have converged, and memory stays O(chunk · n · m)."""
_HISTORY = 10
_ROW_NEWTON_STEPS = 8


def parse_options(options: dict | None) -> dict[str, Any]:
    """Validate `ot_kwargs` and fill in defaults.

    Accepted keys:

    - `tol`: shorthand that sets both `sinkhorn_tol` and `lbfgs_tol`;
      `max_iter`: sets both `sinkhorn_max_iter` and `lbfgs_max_iter`.
    - `sinkhorn_tol` (default 1e-5): Sinkhorn stops when the L1 error of the row
      marginal, `Σ_i |Σ_j Γ_ij − 1/n|` (the mean row-sum error of the soft permutation
      `n Γ`), falls below it; the column marginal is exact after each update.
    - `sinkhorn_max_iter` (default 2000): Sinkhorn iterations.
    - `lbfgs_tol` (default 1e-4): rows and columns of the soft permutation (modes
      c0/c1/c2) sum to 1 within it: L-BFGS stops when every row and column sum of `n Γ`
      is within half of it of its target (the SoftIndex then divides each column by its
      sum, which moves the row sums by at most as much again).
    - `lbfgs_max_iter` (default 1000): L-BFGS steps.
    - `cg_tol` (default 1e-5) and `cg_max_iter` (default 500): conjugate gradients of
      the implicit derivative.
    - `implicit_diff`, `use_entropic_ot_sinkhorn_on_entropic`: accepted for SoftJAX
      compatibility; only `True` (the behaviour here) is supported.

    **Raises:** `ValueError` for unknown keys, listing the valid ones.
    """
    opts = dict(DEFAULTS)
    valid = sorted([*DEFAULTS, *_ALIASES, *_SOFTJAX_ONLY_TRUE])
    for key, value in (options or {}).items():
        if key in _SOFTJAX_ONLY_TRUE:
            if value is not True:
                raise ValueError(f"ot_kwargs[{key!r}]={value!r} is not supported; only True")
        elif key in _ALIASES:
            for target in _ALIASES[key]:
                opts[target] = value
        elif key in DEFAULTS:
            opts[key] = value
        else:
            raise ValueError(f"Unknown ot_kwargs key {key!r}; valid keys are {valid}")
    for key in DEFAULTS:
        if key.endswith("max_iter"):
            opts[key] = int(opts[key])
        else:
            opts[key] = float(opts[key])
    return opts


# --- closed-form start: potentials of the unregularised problem -------------------------


def _coupling_potential(z: Array, matched: Array) -> tuple[Array, Array]:
    """`(f⁰, rank)` `(n,)` each: the potential of the monotone coupling that matches the
    k-th smallest score with the anchor value `matched[k]` (`f'(z) = 2 (z − T(z))`
    integrated between consecutive sorted scores, 0 at the smallest), and each score's
    position in sorted order."""
    order = jnp.argsort(z, stable=True)  # (n,)
    zs = z[order]  # (n,)
    inc = (zs[1:] - zs[:-1]) * (zs[1:] + zs[:-1] - matched[1:] - matched[:-1])  # (n−1,)
    fs = jnp.concatenate([jnp.zeros((1,), z.dtype), jnp.cumsum(inc)])  # (n,)
    rank = inverse_permutation(order)  # (n,)
    return fs[rank], rank


def _start(z: Array, anchors: Array, nu: Array) -> tuple[Array, Array, Array]:
    """`(S0, match, cost)` for one row: `S0 = f⁰ ⊕ g⁰ − C ≤ 0` `(n, m)` with a zero in
    every row and column, the anchor matched to each score `(n,)` and `C` `(n, m)`."""
    n, m = z.shape[0], anchors.shape[0]
    mid = (jnp.arange(n, dtype=z.dtype) + 0.5) / n  # (n,) mass midpoints of sorted scores
    matched = jnp.searchsorted(jnp.cumsum(nu), mid, side="right")  # (n,)
    matched = jnp.clip(matched, 0, m - 1)
    f0, rank = _coupling_potential(z, anchors[matched])  # (n,) each
    match = matched[rank]  # (n,)
    cost = jnp.square(z[:, None] - anchors[None, :])  # (n, m)
    g0 = jnp.min(cost - f0[:, None], axis=0)  # (m,) c-transform
    s0 = f0[:, None] + g0[None, :] - cost  # (n, m)
    s0 = s0 - jnp.max(s0, axis=1, keepdims=True)  # exact zero in every row
    return jnp.minimum(s0, 0.0), match, cost


def _band_start(z: Array, anchors: Array, w: int) -> tuple[Array, Array, Array, Array, Array]:
    """`_start` of a soft permutation (`m = n` anchors, weights `1/n`: the k-th smallest
    score is matched with anchor k) on the band of `w` anchors around each score's rank:
    `(S0, rank, idx, f, g)` with `S0 = f ⊕ g − C` `(n, w)` (≤ 0, a zero in every row) on
    the anchors `idx` `(n, w)`, and the potentials `f` `(n,)` and `g` `(m,)` that define
    it everywhere (up to the final clip at 0). The c-transform's minimum over the scores
    is attained at the coupled score, which every window contains."""
    m = anchors.shape[0]
    f, rank = _coupling_potential(z, anchors[: z.shape[0]])  # (n,) each
    idx = _ot_band.windows(rank, m, w)  # (n, w)
    cost = jnp.square(z[:, None] - anchors[idx])  # (n, w)
    g = jax.ops.segment_min((cost - f[:, None]).reshape(-1), idx.reshape(-1), num_segments=m)
    s0 = f[:, None] + g[idx] - cost  # (n, w)
    top = jnp.max(s0, axis=1)  # (n,)
    return jnp.minimum(s0 - top[:, None], 0.0), rank, idx, f - top, g


# --- entropic plans: Sinkhorn (ott-jax) --------------------------------------------------


@functools.cache
def _kernel_geometry():
    """ott `Geometry` given by its kernel matrix, used as is. ott raises the stored kernel
    to the powers `1/scale_cost` and `ε/eps` at every application, an elementwise `pow`
    over the n × m matrix per Sinkhorn half-step; both are 1 here (no cost scaling, no
    ε schedule). `Kᵀ v` is taken as the vector-matrix product `vᵀ K`: a product with the
    transposed operand copies the matrix first on CPU (38 against 2.3 ms at n = 4096)."""
    geometry = require("ot").geometry

    @jax.tree_util.register_pytree_node_class
    class KernelGeometry(geometry.Geometry):
        @property
        def kernel_matrix(self) -> Array:
            return self._kernel_matrix

        def apply_kernel(self, vec: Array, eps: Any = None, axis: int = 0) -> Array:
            if axis == 1:
                return jnp.dot(self._kernel_matrix, vec)
            return jnp.dot(vec, self._kernel_matrix)  # Kᵀ v without transposing K

    return KernelGeometry


def _sinkhorn(s0: Array, eps: Array, nu: Array, opts: dict, lse: bool) -> Array:
    """Entropic plan `(n, m)` of the shifted cost `−s0 ≥ 0` by ott's Sinkhorn."""
    mods = require("ot")
    n = s0.shape[0]
    mu = jnp.full((n,), 1.0 / n, dtype=s0.dtype)
    if lse:
        geom = mods.geometry.Geometry(cost_matrix=-s0, epsilon=eps)
    else:
        kernel = jnp.exp(s0 / eps)  # (n, m), entries in [0, 1]
        geom = _kernel_geometry()(kernel_matrix=kernel, epsilon=eps)
    problem = mods.linear_problem.LinearProblem(geom, a=mu, b=nu)
    solver = mods.sinkhorn.Sinkhorn(
        lse_mode=lse,
        threshold=opts["sinkhorn_tol"],
        max_iterations=opts["sinkhorn_max_iter"],
        inner_iterations=5,
        implicit_diff=None,
    )
    out = solver(problem)
    if lse:
        return out.matrix  # (n, m)
    # u K v from the scalings (ott's `matrix` would rebuild the cost by a log and an exp)
    return jnp.exp(out.f / eps)[:, None] * kernel * jnp.exp(out.g / eps)[None, :]


def _entropic_batch(s0: Array, eps: Array, nu: Array, opts: dict) -> tuple[Array, None]:
    """`(Γ, None)`: plans `(B, n, m)` for a batch of shifted costs (kernel mode, log-domain
    rescue); their weights `W = Γ / s` are not stored (see `_plan_jvp`)."""
    kernel = jax.vmap(lambda s, v: _sinkhorn(s, eps, v, opts, lse=False))
    logdomain = jax.vmap(lambda s, v: _sinkhorn(s, eps, v, opts, lse=True))
    plan = kernel(s0, nu)  # (B, n, m)
    plan = jax.lax.cond(jnp.all(jnp.isfinite(plan)), lambda: plan, lambda: logdomain(s0, nu))
    return plan, None


# --- p-norm plans: L-BFGS (optimistix) ---------------------------------------------------


def _pnorm_parts(s: Array, lam: Array, q: float) -> tuple[Array, Array, Array]:
    """`(φ(S), Γ, W)` of the p-norm dual at `S = f ⊕ g − C`: `φ = s/q (S₊/s)^q`,
    `Γ = φ' = (S₊/s)^(q−1)`, `W = φ'' = (q−1)/s (S₊/s)^(q−2)` (integer powers)."""
    t = jnp.maximum(s, 0.0) / lam
    if q == 2.0:
        return lam / 2 * t * t, t, jnp.where(s > 0, 1.0 / lam, 0.0).astype(s.dtype)
    tq2 = t if q == 3.0 else t * t  # t^(q−2) for q = 3, 4
    return lam / q * tq2 * t * t, tq2 * t, (q - 1.0) / lam * tq2


def _row_thresholds(s0: Array, lam: Array, q: float) -> Array:
    """Per-row `δ` with `Σ_j ((S0_ij + δ)₊/s)^(q−1) = 1/n` (Newton from the right: the
    sum is convex and increasing in δ, and `δ = s n^(−1/(q−1))` lies right of the root
    because each row of `S0` has a zero)."""
    n = s0.shape[0]
    delta = jnp.full((n,), lam * n ** (-1.0 / (q - 1.0)), dtype=s0.dtype)  # (n,)

    def newton(_, d):
        _, gam, w = _pnorm_parts(s0 + d[:, None], lam, q)
        mass, slope = row_sums(gam, w)  # (n,) each
        excess = mass - 1.0 / n
        return d - jnp.where(slope > 0, excess / jnp.where(slope > 0, slope, 1.0), 0.0)

    return jax.lax.fori_loop(0, _ROW_NEWTON_STEPS, newton, delta)


@functools.cache
def lbfgs_solver_type():
    """`make(noise) -> solver`: optimistix L-BFGS with a rounding-tolerant Armijo search
    that stops when `args_error(grad, args) <= 1` (the objective's `args` must be a tuple
    whose first entry is that error function)."""
    optx = require("ot").optimistix

    class _NoisyArmijo(optx.AbstractSearch):
        """Backtracking Armijo search that accepts a step whose objective change is
        within float rounding of the required decrease: the objective is a sum of many
        terms, and near the optimum its changes fall below the resolution of its value
        while the gradient still resolves them."""

        noise: float
        slope: float = 0.1
        decrease_factor: float = 0.5

        def init(self, y, f_info_struct):
            return jnp.ones((), jax.tree.leaves(y)[0].dtype)

        def step(self, first_step, y, y_eval, f_info, f_eval_info, state):
            y_diff = jax.tree.map(lambda a, b: a - b, y_eval, y)
            predicted = f_info.compute_grad_dot(y_diff)
            f_old, f_new = f_info.as_min(), f_eval_info.as_min()
            # the rounding allowance is relative to the current (finite) value only: a
            # trial point whose objective overflows is never accepted
            size = jnp.maximum(jnp.abs(f_old), 1.0)
            ok = (
                (f_new - f_old <= self.slope * predicted + self.noise * size)
                & (predicted <= 0)
                & jnp.isfinite(f_new)
            )
            accept = first_step | ok
            step = jnp.where(accept, jnp.ones_like(state), self.decrease_factor * state)
            return step, accept, optx.RESULTS.successful, step

    class _StoppingLBFGS(optx.AbstractLBFGS):
        """L-BFGS that stops on a problem-specific error of the gradient (`args[0]`)."""

        rtol: float
        atol: float
        norm: Callable
        use_inverse: bool
        descent: Any
        search: Any
        history_length: int
        verbose: Callable

        def terminate(self, fn, y, args, options, state, tags):
            error = args[0](state.f_info.grad, args)
            done = (state.num_accepted_steps > 0) & (error <= 1.0)
            return done, optx.RESULTS.successful

    def make(noise: float, history: int = _HISTORY):
        return _StoppingLBFGS(
            rtol=0.0,
            atol=0.0,
            norm=optx.max_norm,
            use_inverse=True,
            descent=optx.NewtonDescent(),
            search=_NoisyArmijo(noise=noise),
            history_length=history,
            verbose=_quiet,
        )

    return make


def _quiet(**kwargs) -> None:
    return None


def _pnorm_shifts(u, v, xi, match, scales):
    """Row `(n,)` and column `(m,)` shifts of the corrections `(u, v, ξ)`."""
    sigma_u, sigma_v, alpha = scales
    h = jnp.cumsum(alpha * xi)  # (m,)
    return sigma_u * u + h[match], sigma_v * v - h


def _pnorm_shifted(u, v, xi, s0, match, idx, scales):
    rows, cols = _pnorm_shifts(u, v, xi, match, scales)
    return s0 + (rows[:, None] + read(cols, idx))  # (n, w)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _pnorm_dual(q, u, v, xi, s0, match, idx, lam, nu, scales, scale):
    """Negative p-norm dual in the corrections `(u, v, ξ)` to the start potentials,
    divided by its value at the start (`s0` `(n, w)` on the anchors `idx`, or all of them
    where `idx` is None)."""
    sigma_u, sigma_v, _ = scales
    phi, _, _ = _pnorm_parts(_pnorm_shifted(u, v, xi, s0, match, idx, scales), lam, q)
    linear = jnp.sum(sigma_u * u) / s0.shape[0] + jnp.sum(nu * sigma_v * v)
    return (jnp.sum(phi) - linear) / scale


@_pnorm_dual.defjvp
def _pnorm_dual_jvp(q, primals, tangents):
    # value and gradient from one evaluation of the plan (row and column sums); only the
    # tangents of (u, v, ξ) are used (the rest are constants of the solve)
    u, v, xi, s0, match, idx, lam, nu, scales, scale = primals
    du, dv, dxi = tangents[:3]
    sigma_u, sigma_v, alpha = scales
    n, m = s0.shape[0], nu.shape[0]
    phi, gam, _ = _pnorm_parts(_pnorm_shifted(u, v, xi, s0, match, idx, scales), lam, q)
    phi_rows, rows = row_sums(phi, gam)  # (n,) each
    cols = col_sums(gam, idx, m)  # (m,)
    linear = jnp.sum(sigma_u * u) / n + jnp.sum(nu * sigma_v * v)
    value = (jnp.sum(phi_rows) - linear) / scale
    g_u = sigma_u * (rows - 1.0 / n) / scale
    g_v = sigma_v * (cols - nu) / scale
    g_h = (jax.ops.segment_sum(rows, match, num_segments=m) - cols) / scale  # (m,)
    g_xi = alpha * jnp.cumsum(g_h[::-1])[::-1]  # (m,)
    return value, jnp.dot(g_u, du) + jnp.dot(g_v, dv) + jnp.dot(g_xi, dxi)


def _pnorm_objective(y, args, q):
    return _pnorm_dual(q, *y, *args[1:-1])


def _pnorm_error(grad, args):
    """Largest row / column error of `n Γ`, in units of the tolerance."""
    _, s0, _, _, _, _, scales, scale, tol = args
    sigma_u, sigma_v, _ = scales
    gu, gv, _ = grad
    tiny = jnp.finfo(s0.dtype).tiny
    rows = jnp.max(jnp.abs(gu) / jnp.maximum(sigma_u, tiny))
    cols = jnp.max(jnp.abs(gv) / jnp.maximum(sigma_v, tiny))
    return s0.shape[0] * jnp.maximum(rows, cols) * scale / tol


def _straddle(w: Array, match: Array, idx: Array | None, m: int) -> Array:
    """`(m,)`: entry k is the weight `Σ W_il` over pairs whose row is matched on the other
    side of the cut between anchors k − 1 and k than column l (0 for k = 0): the
    curvature of the dual along a step of `h` at that cut. By difference arrays from one
    row and one column reduction (`w` `(n, w)` on the anchors `idx`)."""
    cols = jnp.arange(m)[None, :] if idx is None else idx  # (1, m) or (n, w)
    sgn = jnp.sign(match[:, None] - cols).astype(w.dtype)  # (n, w)
    col = col_sums(w * sgn, idx, m)  # (m,)
    row = -jnp.sum(w * sgn, axis=1)  # (n,)
    diff = jnp.zeros((m + 1,), w.dtype).at[1:].add(col).at[match + 1].add(row)
    return jnp.cumsum(diff)[:m]


def _pnorm(
    s0: Array, match: Array, lam: Array, nu: Array, q: float, opts: dict, idx: Array | None = None
) -> tuple:
    # optimistix's L-BFGS keeps its history in the default float dtype: with float64
    # enabled, float32 data is solved in float64 (and cast back)
    dtype = s0.dtype
    wide = jnp.result_type(float)
    if dtype != wide:
        out = _pnorm(s0.astype(wide), match, lam.astype(wide), nu.astype(wide), q, opts, idx)
        return tuple(a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in out)
    return _pnorm_impl(s0, match, lam, nu, q, opts, idx)


def _pnorm_impl(
    s0: Array, match: Array, lam: Array, nu: Array, q: float, opts: dict, idx: Array | None
) -> tuple:
    """p-norm plan and weights `(Γ, W)` `(n, w)`, the L-BFGS step count, and the row
    `(n,)` and column `(m,)` shifts that the solve added to `s0`, for one row: by L-BFGS
    on the dual in the corrections `(u, v, ξ)`, scaled so that u and v have unit curvature
    at the start (Jacobi) and the transport steps ξ their cut weight. `s0` holds the
    anchors `idx` `(n, w)` of each row, or all `m = len(nu)` where `idx` is None."""
    optx = require("ot").optimistix
    n, m = s0.shape[0], nu.shape[0]
    dtype = s0.dtype
    tiny = jnp.finfo(dtype).tiny
    delta = _row_thresholds(s0, lam, q)  # (n,)
    s0 = s0 + delta[:, None]  # rows exact at the start
    phi0, _, w0 = _pnorm_parts(s0, lam, q)
    phi_rows, d_r, w0_squares = row_sums(phi0, w0, w0 * w0)  # (n,) each
    scale = jnp.maximum(jnp.sum(phi_rows), tiny)  # objective scale

    def inv_sqrt(c):
        ok = c > 1e-6 * jnp.max(c)
        return jnp.where(ok, jnp.sqrt(scale / jnp.where(ok, c, 1.0)), 0.0)

    d_c = col_sums(w0, idx, m)  # (m,)
    sigma_u = jnp.where(d_r > 0, inv_sqrt(d_r), jnp.sqrt(scale / jnp.max(d_r)))
    sigma_v = jnp.where(d_c > 0, inv_sqrt(d_c), jnp.sqrt(scale / jnp.max(d_c)))
    # entries per row of W; scaling the cut weights by it balances the transport steps
    # against u and v (chosen by measuring L-BFGS step counts for c0, c1 and c2)
    width = jnp.mean(d_r * d_r / jnp.maximum(w0_squares, tiny))
    scales = (sigma_u, sigma_v, inv_sqrt(width * _straddle(w0, match, idx, m)))
    # half the tolerance: the SoftIndex divides each column of n Γ by its sum
    # (`ot._distributions`), which moves a row sum by up to the columns' error, so both
    # stay within `lbfgs_tol` (at the full tolerance a float32 row was off by 1.6e-4)
    tol = jnp.asarray(0.5 * opts["lbfgs_tol"], dtype)
    if idx is not None:  # a band too narrow for the start: one step, then the caller's
        # check sends the batch to the dense solve
        tol = jnp.where(_ot_band.crowded(w0, idx, m), jnp.inf, tol)
    args = (_pnorm_error, s0, match, idx, lam, nu, scales, scale, tol)  # tol last
    solver = lbfgs_solver_type()(noise=64 * float(jnp.finfo(dtype).eps))
    y0 = (jnp.zeros((n,), dtype), jnp.zeros((m,), dtype), jnp.zeros((m,), dtype))
    sol = optx.minimise(
        partial(_pnorm_objective, q=q),
        solver,
        y0,
        args=args,
        max_steps=opts["lbfgs_max_iter"],
        throw=False,
    )
    _, gam, w = _pnorm_parts(_pnorm_shifted(*sol.value, s0, match, idx, scales), lam, q)
    rows, cols = _pnorm_shifts(*sol.value, match, scales)
    return gam, w, sol.stats["num_steps"], delta + rows, cols


# --- implicit derivative -------------------------------------------------------------------


def _pcg(matvec: Callable, precond: Callable, b: Array, tol: float, max_iter: int) -> Array:
    """Preconditioned conjugate gradients for a symmetric positive semi-definite system,
    returning the iterate with the smallest residual. It stops at a relative residual
    `tol`, after `max_iter` steps, or when the curvature `pᵀAp` vanishes, so float32
    stagnation or a singular (consistent) system never produces non-finite output.

    The system is solved for `b / max|b|` and the solution scaled back (the norms of a
    right-hand side of 1e20 overflow float32)."""
    tiny = jnp.finfo(b.dtype).tiny
    scale = jnp.max(jnp.abs(b))
    scale = jnp.where(jnp.isfinite(scale) & (scale > tiny), scale, 1.0)
    b = b / scale
    b_norm = jnp.linalg.norm(b)
    target = tol * b_norm
    x0 = jnp.zeros_like(b)
    z0 = precond(b)
    state0 = (0, x0, b, z0, jnp.vdot(b, z0), x0, b_norm, jnp.array(False))

    def cond(state):
        k, *_, best_norm, stop = state
        return (k < max_iter) & (best_norm > target) & ~stop

    def body(state):
        k, x, r, p, rz, best_x, best_norm, _ = state
        ap = matvec(p)
        curvature = jnp.vdot(p, ap)
        stop = ~(curvature > tiny) | ~(rz > tiny)
        step = jnp.where(stop, 0.0, rz / jnp.where(stop, 1.0, curvature))
        x = x + step * p
        r = r - step * ap
        z = precond(r)
        rz_new = jnp.vdot(r, z)
        p = z + jnp.where(stop, 0.0, rz_new / jnp.where(stop, 1.0, rz)) * p
        r_norm = jnp.linalg.norm(r)
        better = (r_norm < best_norm) & jnp.isfinite(r_norm)
        best_x = jnp.where(better, x, best_x)
        best_norm = jnp.where(better, r_norm, best_norm)
        return k + 1, x, r, p, rz_new, best_x, best_norm, stop | ~jnp.isfinite(r_norm)

    return scale * jax.lax.while_loop(cond, body, state0)[5]


def _chain_conductance(w: Array, scale: Array, d_c: Array, mean: Array, idx: Array | None) -> Array:
    """`(m − 1,)`: for each cut between anchors j and j + 1, the weight of the Schur
    complement's quadratic form across it, `Σ_i Σ_{k ≤ j < l} W_ik W_il (l − k) / (W1)_i`,
    which equals `Σ_{k ≤ j} Σ_i W_ik (μ_i − k)` with `μ_i` the mean anchor index of row
    i (two matrix-vector products). On slowly varying vectors the Schur complement acts
    like the chain Laplacian with these conductances (`W = scale · w` on the anchors
    `idx`, `mean` `(n,)` = `μ`)."""
    m = d_c.shape[0]
    k = jnp.arange(m, dtype=w.dtype)  # (m,)
    weighted = mean @ w if idx is None else col_sums(mean[:, None] * w, idx, m)  # (m,)
    return jnp.cumsum(scale * weighted - k * d_c)[:-1]  # (m−1,)


class _Residuals(NamedTuple):
    """Per-row quantities of the plan that its tangent needs (all primal). Apart from `W`
    they are vectors, so reverse mode keeps one `n × m` array per row (`n × w` for a
    banded plan): for the entropy that is the plan itself (`W = Γ / s`), shared with the
    output."""

    w: Array  # (n, w) W / scale, W = ∂Γ/∂S, on the anchors idx
    idx: Array | None  # (n, w) anchors of the stored entries; None: all m of them
    scale: Array  # () 1 / s for the entropy, 1 for the p-norms
    zc: Array  # (n,) z − 1/2
    ac: Array  # (m,) a − 1/2
    inv_r: Array  # (n,) 1 / (W1)
    d_c: Array  # (m,) Wᵀ1
    inv_c: Array  # (m,)
    r1: Array  # (n,) Σ_j W_ij (z_i − a_j)
    r2: Array  # (n,) Σ_j W_ij (z_i − a_j)²
    c2: Array  # (m,) Σ_i W_ij (z_i − a_j)²
    inv_cond: Array  # (m−1,) inverse chain conductances (0 across empty cuts)


def _residuals(
    w: Array, scale: Array, z: Array, anchors: Array, idx: Array | None = None
) -> _Residuals:
    """Residuals of one row whose weights are `W = scale · w` `(n, w)` on the anchors
    `idx` (all `m` where it is None)."""
    tiny = jnp.finfo(w.dtype).tiny
    m = anchors.shape[0]
    diff = z[:, None] - read(anchors, idx)  # (n, w)
    k = read(jnp.arange(m, dtype=w.dtype), idx)  # (1, m) or (n, w)
    wd = w * diff
    d_r, r1, r2, wk = (scale * a for a in row_sums(w, wd, wd * diff, w * k))  # (n,) each
    d_c = scale * col_sums(w, idx, m)  # (m,)
    inv_r = jnp.where(d_r > tiny, 1.0 / jnp.where(d_r > tiny, d_r, 1.0), 0.0)
    inv_c = jnp.where(d_c > tiny, 1.0 / jnp.where(d_c > tiny, d_c, 1.0), 0.0)
    cond = _chain_conductance(w, scale, d_c, inv_r * wk, idx)
    keep = cond > 1e-6 * jnp.max(cond, initial=0.0)  # (m−1,), empty when m = 1
    inv_cond = jnp.where(keep, 1.0 / jnp.where(keep, cond, 1.0), 0.0)
    return _Residuals(
        w=w,
        idx=idx,
        scale=scale,
        zc=z - 0.5,
        ac=anchors - 0.5,
        inv_r=inv_r,
        d_c=d_c,
        inv_c=inv_c,
        r1=r1,
        r2=r2,
        c2=scale * col_sums(wd * diff, idx, m),
        inv_cond=inv_cond,
    )


def _implicit_tangent(res: _Residuals, dz: Array, rho: Array, opts: dict) -> Array:
    """Plan tangent `(n, w)` of one row for score tangents `dz` `(n,)` and the relative
    softness tangent `rho = ds / s`: with `dC = 2 (z_i − a_j) dz_i − C_ij rho` and
    `X = W ⊙ dC`, `dΓ = W ⊙ (α ⊕ β) − X` where `H [α; β] = [X 1; Xᵀ 1]`, `β` from the
    Schur complement and `α = (X1 − Wβ) / W1`. Linear in `(dz, rho)`; apart from the
    output every `n × m` operation is a product of `W` with a vector, and `dC` is
    expanded in powers of the (centred) anchors so that `W` is the only matrix used."""
    zc, ac, inv_r, d_c, idx = res.zc, res.ac, res.inv_r, res.d_c, res.idx
    m = d_c.shape[0]
    tiny = jnp.finfo(d_c.dtype).tiny
    total = jnp.maximum(jnp.sum(d_c), tiny)

    def w_times(v: Array) -> Array:  # W v (n,); vector-matrix products below are vᵀ W
        if idx is None:
            return res.scale * (res.w @ v)
        return res.scale * jnp.sum(res.w * v[idx], axis=1)

    def times_w(v: Array) -> Array:  # Wᵀ v (m,), without transposing W
        if idx is None:
            return res.scale * (v @ res.w)
        return res.scale * col_sums(v[:, None] * res.w, idx, m)

    r = 2.0 * dz * res.r1 - rho * res.r2  # (n,) X 1
    c = 2.0 * (times_w(zc * dz) - ac * times_w(dz)) - rho * res.c2  # (m,) Xᵀ 1
    rhs = c - times_w(inv_r * r)  # (m,)

    def schur(v):  # (diag(d_c) − Wᵀ diag(1/d_r) W + d_c d_cᵀ / Σ d_c) v
        return d_c * v - times_w(inv_r * w_times(v)) + d_c * (jnp.dot(d_c, v) / total)

    if idx is None and m <= _DENSE_SCHUR:

        def solve(matvec, b):
            w = res.scale * res.w  # (n, m), m ≤ 64
            matrix = jnp.diag(d_c) - (w.T * inv_r) @ w + jnp.outer(d_c, d_c) / total  # (m, m)
            matrix = matrix + jnp.eye(m, dtype=w.dtype) * (tiny + 1e-6 * jnp.max(d_c))
            return jnp.linalg.solve(matrix, b)

    else:

        def precond(b):  # diag(1/d_c) + pseudo-inverse of the chain Laplacian
            flux = jnp.cumsum(b - jnp.mean(b))[:-1]  # (m−1,)
            v = -jnp.concatenate([jnp.zeros((1,), b.dtype), jnp.cumsum(flux * res.inv_cond)])
            return b * res.inv_c + (v - jnp.mean(v))

        def solve(matvec, b):
            return _pcg(matvec, precond, b, opts["cg_tol"], opts["cg_max_iter"])

    # a linear map of the right-hand side, transposed by JAX for reverse mode (the
    # operator is symmetric, so the transpose solve is the same)
    beta = jax.lax.custom_linear_solve(schur, rhs, solve, symmetric=True)  # (m,)
    alpha = inv_r * (r - w_times(beta))  # (n,)
    # α_i + β_j − dC_ij = (α_i − 2 zc_i dz_i + rho zc_i²) + (2 dz_i − 2 rho zc_i) ac_j
    #                     + (β_j + rho ac_j²)
    row = alpha - 2.0 * zc * dz + rho * zc * zc  # (n,)
    slope = 2.0 * dz - 2.0 * rho * zc  # (n,)
    col = beta + rho * ac * ac  # (m,)
    # W ⊙ (...) with the scale folded into the vectors
    row, slope, col = (res.scale * a for a in (row, slope, col))
    return res.w * (row[:, None] + slope[:, None] * read(ac, idx) + read(col, idx))  # (n, w)


# --- the plan with its derivative rule -------------------------------------------------------


def _solve_rows(z: Array, eps: Array, anchors: Array, nu: Array, mode: str, opts: dict):
    """`(Γ, W)` `(b, n, m)` for scores `(b, n)`, anchors `(m,)`, weights `(b, m)`; `W` is
    None for the entropy, whose weights are `Γ / s`."""
    s0, match, _ = jax.vmap(_start, in_axes=(0, None, 0))(z, anchors, nu)
    if mode == "smooth":
        return _entropic_batch(s0, eps, nu, opts)
    q = _CONJUGATE[mode]
    return jax.vmap(lambda s, k, v: _pnorm(s, k, eps, v, q, opts)[:2])(s0, match, nu)


def _chunked(solve_rows: Callable, entries: int, *arrays: Array):
    """`solve_rows(*arrays)` over the batch rows (the leading axis of each array), a chunk
    of rows at a time such that a chunk holds about `_BLOCK_ELEMENTS` plan entries
    (`entries` per row)."""
    rows = arrays[0].shape[0]
    chunk = max(1, min(rows, _BLOCK_ELEMENTS // max(entries, 1)))
    if chunk >= rows:
        return solve_rows(*arrays)
    pad = (-rows) % chunk

    def split(a):  # (B, ...) -> (B / chunk, chunk, ...), the last rows repeated
        a = jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1), mode="edge")
        return a.reshape(-1, chunk, *a.shape[1:])

    out = jax.lax.map(lambda a: solve_rows(*a), tuple(split(a) for a in arrays))
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:rows], out)


def _solve_batch(z: Array, eps: Array, anchors: Array, nu: Array, mode: str, opts: dict):
    """`(Γ, W)` `(B, n, m)` (`W` None for the entropy), solved a chunk of rows at a time
    (see `_BLOCK_ELEMENTS`)."""
    m = anchors.shape[0]

    def solve_rows(zc, nuc):
        return _solve_rows(zc, eps, anchors, nuc, mode, opts)

    return _chunked(solve_rows, z.shape[1] * m, z, nu)


def _band_batch(z: Array, eps: Array, anchors: Array, mode: str, opts: dict, width: int):
    """Banded p-norm plans of soft permutations (`m = n` evenly spaced anchors, weights
    `1/n`): `(Γ, W, idx)` `(B, n, width)` and whether every row's plan is the dense one:
    its solve converged (rows and columns of `n Γ` within `lbfgs_tol`) and no entry
    outside the windows is positive beyond a mass of 1% of `lbfgs_tol` per row of `n Γ`
    (see `_ot_band`)."""
    q = _CONJUGATE[mode]
    n = z.shape[1]
    nu = jnp.full((n,), 1.0 / n, z.dtype)
    # (S₊/s)^(q−1) ≤ 0.01 · tol / n² on each of the n outside entries of a row of n Γ
    limit = eps * (0.01 * opts["lbfgs_tol"] / n**2) ** (1.0 / (q - 1.0))

    def solve_row(zr):
        s0, rank, idx, f, g = _band_start(zr, anchors, width)
        gam, w, _, rows, cols = _pnorm(s0, rank, eps, nu, q, opts, idx)
        worst = _ot_band.outside_max(zr, anchors, f + rows, g + cols, idx)
        sums = n * jnp.concatenate([jnp.sum(gam, axis=1), col_sums(gam, idx, n)])  # (2n,)
        converged = jnp.all(jnp.abs(sums - 1.0) <= opts["lbfgs_tol"])  # (false if NaN)
        fits = jnp.all(worst <= limit) & converged
        return gam, w, idx, fits

    gam, w, idx, fits = _chunked(jax.vmap(solve_row), n * width, z)
    return gam, w, idx, jnp.all(fits)


def _densify(a: Array, idx: Array, m: int) -> Array:
    """`(B, n, m)` arrays from banded ones `a` `(B, n, w)` on the anchors `idx`."""
    return jax.vmap(lambda r, i: _ot_band.densify(r, i, m))(a, idx)  # (B, n, m)


@partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6))
def _plan(
    z: Array, eps: Array, anchors: Array, nu: Array, mode: str, opts_items: tuple, band
) -> Array:
    opts = dict(opts_items)
    if band is None:
        return _solve_batch(z, eps, anchors, nu, mode, opts)[0]
    m = anchors.shape[0]
    gam, _, idx, fits = _band_batch(z, eps, anchors, mode, opts, band)
    return jax.lax.cond(
        fits,
        lambda: _densify(gam, idx, m),
        lambda: _solve_batch(z, eps, anchors, nu, mode, opts)[0],
    )


def _dense_plan_and_tangent(z, eps, anchors, nu, dz, rho, mode, opts):
    plan, w = _solve_batch(z, eps, anchors, nu, mode, opts)  # (B, n, m); w None (entropy)
    # the entropy's weights are the plan over s: the plan is kept once, as output and
    # residual of the tangent (a second n × m array per row would be 2 GiB at 32 × 4096²)
    scale = 1.0 / eps if w is None else jnp.ones((), plan.dtype)
    w = plan if w is None else w
    res = jax.vmap(_residuals, in_axes=(0, None, 0, None))(w, scale, z, anchors)
    dplan = jax.vmap(lambda r, d: _implicit_tangent(r, d, rho, opts))(res, dz)
    return plan, dplan


@_plan.defjvp
def _plan_jvp(mode, opts_items, band, primals, tangents):
    # Tangent of the plan from the optimality conditions (see the module docstring);
    # anchors and weights are constants (their tangents are ignored). The solves run a
    # chunk of rows at a time. For dense plans the tangent, a few products of W with
    # vectors per row, is vectorised over the whole batch (so reverse mode needs no
    # scan); banded plans keep their band for the tangent, which runs a chunk of rows at
    # a time like its dense fall-back, and are spread into n × m arrays at the end.
    z, eps, anchors, nu = primals
    dz, deps, _, _ = tangents
    opts = dict(opts_items)
    rho = deps / eps
    if band is None:
        return _dense_plan_and_tangent(z, eps, anchors, nu, dz, rho, mode, opts)
    n, m = z.shape[1], anchors.shape[0]
    gam, w, idx, fits = _band_batch(z, eps, anchors, mode, opts, band)

    def banded():
        # a chunk of rows at a time, keeping only the banded solution for reverse mode:
        # the n × m outputs and the n × w intermediates then live one chunk at a time
        def rows(gc, wc, ic, zc, dzc):
            one = jnp.ones((), gc.dtype)
            res = jax.vmap(_residuals, in_axes=(0, None, 0, None, 0))(wc, one, zc, anchors, ic)
            dplan = jax.vmap(lambda r, d: _implicit_tangent(r, d, rho, opts))(res, dzc)
            return _densify(gc, ic, m), _densify(dplan, ic, m)

        return _chunked(jax.checkpoint(rows), n * m, gam, w, idx, z, dz)

    def dense():
        # reverse mode allocates for both branches: the dense one runs a chunk of rows at
        # a time and keeps only its inputs, solving again in the backward pass
        def rows(zc, nuc, dzc):
            return _dense_plan_and_tangent(zc, eps, anchors, nuc, dzc, rho, mode, opts)

        return _chunked(jax.checkpoint(rows), n * m, z, nu, dz)

    return jax.lax.cond(fits, banded, dense)


def plan(
    z: Array,
    eps: Array,
    anchors: Array,
    nu: Array,
    mode: str,
    options: dict | None,
    permutation: bool = False,
) -> Array:
    """Transport plans `Γ` `(..., n, m)` between scores `z` `(..., n)` (weights `1/n`)
    and anchors `(m,)` (sorted ascending) with weights `nu` `(..., m)` or `(m,)`.

    Differentiable in `z` and in the softness `eps` (forward and reverse mode); rows and
    columns of `Γ` sum to `1/n` and `nu` up to the solver tolerance.

    `permutation=True` promises `m = n` evenly spaced anchors with weights `1/n` (the
    soft permutation): the p-norm modes then solve on a band of anchors around each
    score's rank from n = `_ot_band.MIN_SIZE` on, and fall back to the dense solve for a
    batch whose plans reach beyond it.
    """
    if mode not in MODES:
        raise ValueError(
            f"Invalid mode {mode!r} for method='ot'; expected 'hard' or one of {MODES}"
        )
    opts = parse_options(options)
    *batch, n = z.shape
    m = anchors.shape[0]
    dtype = z.dtype
    anchors = anchors.astype(dtype)
    nu = jnp.broadcast_to(jnp.asarray(nu, dtype), (*batch, m))
    nu = jnp.maximum(nu, 1e-12)  # no empty anchor (as SoftJAX)
    nu = nu / jnp.sum(nu, axis=-1, keepdims=True)
    eps = jnp.asarray(eps, dtype)
    band = _ot_band.width(n, mode) if permutation and m == n else None
    out = _plan(
        z.reshape(-1, n),
        eps,
        anchors,
        nu.reshape(-1, m),
        mode,
        tuple(sorted(opts.items())),
        band,
    )
    return out.reshape(*batch, n, m)
