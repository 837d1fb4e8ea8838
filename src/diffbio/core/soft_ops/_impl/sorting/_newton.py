"""Damped, inexact Newton method for a batch of independent smooth convex problems.

Each row `b` of `x` `(B, m)` minimises its own `f_b`. One step per row:

1. the Newton direction `p` from `H p = −∇f` by preconditioned conjugate gradients
   (stopped at a relative residual `cg_tol`: every CG iterate started at 0 is a descent
   direction, so an inexact solve only slows the method down), shortened to move no
   coordinate by more than `_MAX_STEP`;
2. a backtracking line search (halving from the full step) until the Armijo condition
   holds within float rounding; a trial point where `f` is not finite is rejected, so
   the iterates never leave the region where `f` is finite. The condition is tested on
   the change of `f`, summed from each term's own change (`change`), not on the
   difference of two sums: in float32 a row whose terms span 1e26 to 1e19 would
   otherwise accept any move of its small terms.

A row stops when its `error` is ≤ 1 or when no step along `p` decreases `f` beyond
rounding (the precision floor); the loop ends when every row has stopped or after
`max_iter` steps. Rows are vectorised: every quantity is `(B, …)`, with per-row scalars.

Reference: J. Nocedal and S. J. Wright, "Numerical Optimization" (2nd ed., 2006),
§7.1 (line-search Newton-CG) and §3.1 (Armijo backtracking).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

_ARMIJO_SLOPE = 1e-4
_MAX_STEP = 8.0
"""Longest move of one coordinate per step: a Newton step through a nearly flat
direction can be huge, and far from the optimum the quadratic model it trusts is
meaningless (the duals here are sums of exponentials)."""
_MAX_HALVINGS = 40
"""Trial steps 1, 1/2, …, 2⁻⁴⁰ before a row is declared stalled."""


class Local(NamedTuple):
    """What the Newton step needs at the current point (all rows)."""

    gradient: Array  # (B, m)
    hessian: Callable[[Array], Array]  # (B, m) -> (B, m)
    preconditioner: Callable[[Array], Array]  # (B, m) -> (B, m), approximates H⁻¹
    error: Array  # (B,) the stopping measure: a row has converged when ≤ 1


def batched_pcg(
    matvec: Callable[[Array], Array],
    precond: Callable[[Array], Array],
    b: Array,
    tol: float,
    max_iter: int,
) -> Array:
    """Preconditioned conjugate gradients for `(B, m)` independent SPD systems.

    Each row stops at relative residual `tol` (or when its curvature vanishes); the
    loop stops when all have, or after `max_iter` iterations. Starts at 0. Each row is
    solved for `b / max|b|` and scaled back, so that its norms cannot overflow.
    """
    tiny = jnp.finfo(b.dtype).tiny
    scale = jnp.max(jnp.abs(b), axis=-1, keepdims=True)  # (B, 1)
    scale = jnp.where(jnp.isfinite(scale) & (scale > tiny), scale, 1.0)
    b = b / scale
    target = tol * jnp.linalg.norm(b, axis=-1)  # (B,)
    z = precond(b)
    state = (0, jnp.zeros_like(b), b, z, jnp.sum(b * z, -1), jnp.ones(b.shape[0], bool))

    def cond(state):
        k, *_, active = state
        return (k < max_iter) & jnp.any(active)

    def body(state):
        k, x, r, p, rz, active = state
        ap = matvec(p)  # (B, m)
        curvature = jnp.sum(p * ap, -1)  # (B,)
        active = active & (curvature > tiny) & (rz > tiny) & jnp.isfinite(curvature)
        alpha = jnp.where(active, rz / jnp.where(active, curvature, 1.0), 0.0)[:, None]
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_new = jnp.sum(r * z, -1)
        ratio = jnp.where(active, rz_new / jnp.where(active, rz, 1.0), 0.0)[:, None]
        p = z + ratio * p
        active = active & (jnp.linalg.norm(r, axis=-1) > target)
        return k + 1, x, r, p, rz_new, active

    return scale * jax.lax.while_loop(cond, body, state)[1]


def minimise(
    change: Callable[[Array, Array], tuple[Array, Array]],
    local: Callable[[Array], Local],
    x0: Array,
    max_iter: int,
    cg_tol: float = 1e-2,
    cg_max_iter: int = 50,
) -> Array:
    """Minimise each row's `f` from `x0` `(B, m)`.

    - `change(x, step)`: `(f(x + step) − f(x), size)` per row `(B,)`, with `size` the
      sum of the magnitudes of the terms' changes (the rounding allowance of the line
      search is a few ulps of it); not finite where `f(x + step)` is not.
    - `local(x)`: the gradient, Hessian and preconditioner at `x`, and the error.
    """
    dtype = x0.dtype
    noise = 64 * float(jnp.finfo(dtype).eps)

    def cond(state):
        k, _, stopped = state
        return (k < max_iter) & ~jnp.all(stopped)

    def body(state):
        k, x, stopped = state
        here = local(x)
        stopped = stopped | (here.error <= 1.0)
        p = batched_pcg(here.hessian, here.preconditioner, -here.gradient, cg_tol, cg_max_iter)
        p = jnp.where(stopped[:, None] | ~jnp.isfinite(p), 0.0, p)  # (B, m)
        longest = jnp.max(jnp.abs(p), -1, keepdims=True)  # (B, 1)
        p = p * jnp.minimum(1.0, _MAX_STEP / jnp.maximum(longest, _MAX_STEP))
        slope = jnp.sum(here.gradient * p, -1)  # (B,) ≤ 0

        def accepted(t):
            difference, size = change(x, t[:, None] * p)
            return jnp.isfinite(difference) & (
                difference <= _ARMIJO_SLOPE * t * slope + noise * size
            )

        def search_cond(search):
            j, _, ok = search
            return (j < _MAX_HALVINGS) & ~jnp.all(ok | stopped)

        def search_body(search):
            j, t, ok = search
            t = jnp.where(ok, t, 0.5 * t)
            return j + 1, t, ok | accepted(t)

        t0 = jnp.ones_like(slope)
        _, t, ok = jax.lax.while_loop(search_cond, search_body, (0, t0, accepted(t0)))
        move = ok & ~stopped
        x = x + jnp.where(move, t, 0.0)[:, None] * p
        # a row with no acceptable step is at its precision floor
        return k + 1, x, stopped | ~ok

    stopped0 = jnp.zeros(x0.shape[0], bool)
    return jax.lax.while_loop(cond, body, (0, x0, stopped0))[1]
