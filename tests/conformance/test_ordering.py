"""Generic conformance checks for the ordering and quantile operations.

Rows come from tests/generated/cases.py; inputs are batches of rows (3, n) with
well-separated values (for hard-limit checks), exact ties and constant rows (for
gradient checks). Hard references come from the catalogue's `hard` function, turned
into the soft return type (one-hot SoftIndex rows) where needed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from diffbio.core import soft_ops
from tests._gradcheck import check_gradient
from tests.conformance._inputs import dtype_scope, hard_function
from tests.generated.cases import HARD_CASES, METHODS, OPS, SOFT_CASES, ST_CASES

ORDERING = ("sorting", "quantile")


def _ordering(cases):
    rows = [c for c in cases if OPS[c.values[0]]["category"] in ORDERING]
    assert rows
    return rows


HARD = _ordering(HARD_CASES) + [
    pytest.param(name, dtype, id=f"{name}[hard-{dtype}]")
    for name, info in OPS.items()
    if info["category"] == "quantile" and info["hard"] is None
    for dtype in ("float32", "float64", "bfloat16")
]
SOFT = _ordering(SOFT_CASES)
ST = _ordering(ST_CASES)
# Compilation dominates the soft checks, so `make test` runs a quick profile and the slow
# profile (`make test-full`) runs every row in every dtype. The quick profile keeps every
# operation once with its default method (smooth mode, float32 for the limits, invariants
# and vmap; float64 for finite differences) and every (method, mode) pair at least once:
# - the other methods run the operations that reach their kernels by their own code
#   (sort, argsort, rank and the quantile kernels; argsort and rank in the finite-
#   difference check); max, min, top_k, argmax, argmin and the restated operations read
#   the same soft permutation or sorted values;
# - the sparse modes (c0, c1, c2: the L2 and p-norm 3/2, 4/3 projections) run `rank`,
#   which goes through the same projection as every other operation of the method;
# - the methods that run an iterative solver (ot's Sinkhorn and dual solvers,
#   smooth_sort's Newton loop) compile slowest: `rank` in smooth mode and c0 (c1/c2
#   solve the same p-norm dual as c0), and ot's `argsort` (the plan) in smooth mode.
SOLVER_METHODS = {"ot", "smooth_sort"}
SOLVER_QUICK = {("rank", "smooth"), ("rank", "c0"), ("argsort", "smooth")}
"""(operation, mode) pairs a solver method runs in `make test`."""
REPRESENTATIVE_OPS = {"sort", "argsort", "rank", "quantile", "argquantile"}
"""Operations a method other than the operation's default runs in `make test`."""
REPRESENTATIVE_FD_OPS = {"argsort", "rank"}
"""... and in the float64 finite-difference check (sort is argsort's soft permutation
times x; the quantile kernels interpolate the same soft permutation's rows). A method
without a SoftIndex (fast_soft_sort) runs `sort` there instead of `argsort`."""
SPARSE_MODES = {"c0", "c1", "c2"}
SPARSE_QUICK_OP = "rank"
"""The operation the sparse modes run in `make test`."""
TIGHT_SOLVER = {
    "ot": {"tol": 1e-12, "max_iter": 100000, "cg_tol": 1e-13},
    "smooth_sort": {"tol": 1e-12, "max_iter": 5000, "cg_tol": 1e-13, "cg_max_iter": 1000},
}
"""Solver options (`ot_kwargs`) for the float64 finite-difference checks."""


def _quick(name, mode, method, representative):
    """Whether the row (operation, mode, method) is in `make test`'s quick profile."""
    if method in SOLVER_METHODS:
        return (name, mode) in SOLVER_QUICK
    if mode in SPARSE_MODES:
        return name == SPARSE_QUICK_OP
    if not METHODS[method]["soft_index"]:  # sort stands in for the argsort it lacks
        representative = {"sort" if op == "argsort" else op for op in representative}
    return method == OPS[name]["default_method"] or name in representative


def _profile(cases, dtype, representative):
    def quick(case):
        name, mode, method, case_dtype = case.values
        return case_dtype == dtype and _quick(name, mode, method, representative)

    return [
        c if quick(c) else pytest.param(*c.values, id=c.id, marks=pytest.mark.slow) for c in cases
    ]


PROFILE_SOFT = _profile(SOFT, "float32", REPRESENTATIVE_OPS)
FLOAT64_SOFT = _profile(
    [c for c in SOFT if c.values[3] == "float64"], "float64", REPRESENTATIVE_FD_OPS
)
PROFILE_ST = [
    c
    if c.values[2] == "float32"
    and (c.values[1] not in SPARSE_MODES or c.values[0].removesuffix("_st") == SPARSE_QUICK_OP)
    else pytest.param(*c.values, id=c.id, marks=pytest.mark.slow)
    for c in ST
]
N = 6
Q = 0.3


def _np(value):
    return np.asarray(
        jnp.asarray(value, jnp.float64 if value.dtype == jnp.float64 else jnp.float32)
    )


def separated(dtype, batch=3, n=N, seed=0):
    """Rows that are permutations of well-spaced values (no near-ties)."""
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(n) * 0.7 + rng.normal() for _ in range(batch)]
    return jnp.asarray(np.stack(rows), dtype=dtype)  # (batch, n)


def with_ties(dtype):
    """A row with exact ties, a constant row and a row with a large spread."""
    return jnp.asarray(
        [[1.0, 2.0, 2.0, 0.5, 1.0, 3.0], [0.7] * 6, [-1e3, 5.0, 1e3, 0.0, 2.0, -7.0]], dtype=dtype
    )


def extra_args(name):
    """Values for the required non-array parameters (k, q, p)."""
    info = OPS[name]
    args = {}
    for param, kind in zip(info["params"], info["kinds"], strict=True):
        if kind == "k":
            args[param] = 3
        elif kind == "q":
            args[param] = 100 * Q if "percentile" in name else Q
    return args


def call(name, x, **options):
    return getattr(soft_ops, name)(x, **extra_args(name), **options)


def one_hot(index, n, dtype):
    return jax.nn.one_hot(index, n, dtype=dtype)


def hard_reference(name, x, axis):
    """The hard equivalent in the soft return type, computed by jnp / lax / scipy."""
    info, n, axis = OPS[name], x.shape[axis], axis % x.ndim
    base = name.removeprefix("arg")
    if name == "rank":
        return jnp.asarray(scipy.stats.rankdata(_np(x), axis=axis), dtype=x.dtype)
    if name == "top_k":
        values, index = jax.lax.top_k(jnp.moveaxis(x, axis, -1), 3)
        return jnp.moveaxis(values, -1, axis), jnp.moveaxis(one_hot(index, n, x.dtype), -2, axis)
    if info["category"] == "quantile" and info["hard"] is None:  # argquantile & co
        return getattr(jnp, base)(x, *extra_args(name).values(), axis=axis)  # via expectation
    fn = hard_function(name)
    out = fn(x, *extra_args(name).values(), axis=axis)
    if info["returns"] == "SoftIndex":
        return one_hot(out, n, x.dtype)
    return out


def _hard_close(name, got, want, dtype):
    tol = 2e-2 if dtype == "bfloat16" else (1e-5 if dtype == "float32" else 1e-12)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(_np(g), _np(w.astype(g.dtype)), rtol=tol, atol=tol)


# ---------------------------------------------------------------- hard mode


@pytest.mark.parametrize(("name", "dtype"), HARD)
@pytest.mark.parametrize("axis", [0, -1])
def test_hard_mode_equals_the_hard_equivalent(name, dtype, axis):
    """Exact results of jnp / lax / scipy (one-hot for SoftIndex), ties included."""
    with dtype_scope(dtype):
        for x in (separated(dtype), with_ties(dtype)):
            got = call(name, x, axis=axis, mode="hard")
            want = hard_reference(name, x, axis)
            if OPS[name]["hard"] is None:  # a SoftIndex: its expectation is the quantile
                got = jnp.sum(got * jnp.moveaxis(x, axis, -1), axis=-1)
            _hard_close(name, got, want, dtype)


# ---------------------------------------------------------------- soft modes


def _value_and_gradient(name, mode, method):
    """One compiled program per case, the softness an argument (so every softness below
    reuses it): `((Σ sin(outputs), (outputs, vmapped)), d/dx)` along the last axis, where
    `vmapped` is the same call under `vmap` over the rows."""

    def f(x, softness):
        return call(name, x, axis=-1, softness=softness, mode=mode, method=method)

    def total(x, softness):
        out = f(x, softness)
        vmapped = jax.vmap(f, in_axes=(0, None))(x, softness)
        return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree_util.tree_leaves(out)), (
            out,
            vmapped,
        )

    value_and_grad = jax.jit(jax.value_and_grad(total, has_aux=True))

    def run(x, softness, vmapped=False):
        (value, (out, mapped)), grad = value_and_grad(x, softness)
        return (value, mapped if vmapped else out), grad

    return run


def _converges_to_hard(name, method, dtype, run):
    x = separated(dtype)
    (_, soft), _ = run(x, 1e-3)
    hard = call(name, x, axis=-1, mode="hard", method=method)
    if name == "top_k" and not METHODS[method]["soft_index"]:
        assert soft[1] is None  # a values-only method has no SoftIndex
        soft, hard = soft[0], hard[0]
    tol = 3e-2 if dtype == "bfloat16" else 1e-3
    for s, h in zip(jax.tree_util.tree_leaves(soft), jax.tree_util.tree_leaves(hard), strict=True):
        assert s.dtype == h.dtype == jnp.dtype(dtype)
        scale = np.maximum(1.0, np.abs(_np(h)))
        assert np.all(np.abs(_np(s) - _np(h)) <= tol * scale), ("softness 1e-3 vs hard", s, h)


def _invariants(name, mode, method, dtype, run):
    """SoftIndex rows are distributions; sort is monotone and within [min, max]; ranks
    lie in [1, n] and sum to n(n+1)/2; values and gradients are finite."""
    info = OPS[name]
    # A sorting network is monotone only while the softness is small against the
    # gaps (Petersen et al. 2022, arXiv:2203.09630): probe it at 0.1, the others at 0.3.
    softness = 0.1 if method == "sorting_network" else 0.3
    for x in (with_ties(dtype), separated(dtype)):
        (_, out), grad = run(x, softness)
        assert np.all(np.isfinite(_np(grad))), ("gradient", x, grad)
        leaves = jax.tree_util.tree_leaves(out)
        for leaf in leaves:
            assert np.all(np.isfinite(_np(leaf))), (x, leaf)
        index = out[1] if name == "top_k" else (out if info["returns"] == "SoftIndex" else None)
        if index is not None:
            # ot's solvers stop when every row and column sum is within 1e-4
            tol = 2e-2 if dtype == "bfloat16" else (1e-4 if method == "ot" else 1e-5)
            assert np.all(_np(index) >= 0)
            np.testing.assert_allclose(_np(index).sum(-1), 1.0, atol=tol)
        values = _np(leaves[0])
        lo, hi = _np(x).min(-1, keepdims=True), _np(x).max(-1, keepdims=True)
        slack = 1e-2 * (hi - lo) + 1e-5 if dtype == "bfloat16" else 1e-5 * (1 + np.abs(hi))
        if method == "ot":  # weights sum to 1 within the solver's 1e-4
            slack = slack + 1e-4 * np.maximum(np.abs(lo), np.abs(hi))
        if name in ("max", "min"):
            values = values[:, None]
        # smooth_sort's log-sum-exp bounds enlarge the permutahedron by up to
        # τ·log C(n, k), so its values leave [min, max] and its ranks [1, n]
        bounded = method != "smooth_sort"
        if name in ("sort", "top_k", "max", "min") and bounded:
            assert np.all(values >= lo - slack) and np.all(values <= hi + slack), (x, values)
        if name == "sort":
            assert np.all(np.diff(values, axis=-1) >= -slack), (x, values)
        if name == "rank":
            if bounded:
                assert np.all(values >= 1 - 1e-3) and np.all(values <= N + 1e-3), (x, values)
            # fast_soft_sort's smooth mode is the log-KL projection s − v, which does
            # not keep the sum (tied inputs share (n−1)·(lse(ρ'_B) − log m))
            if (method, mode) != ("fast_soft_sort", "smooth"):
                np.testing.assert_allclose(values.sum(-1), N * (N + 1) / 2, rtol=2e-2)


def _vmap_matches_batched(name, mode, method, dtype, run):
    """`vmap(f)` over the rows equals the batched call (rows are independent along
    axis=-1, so vmap over rows is f itself)."""
    x = separated(dtype)
    (_, batched), _ = run(x, 0.3)
    (_, mapped), _ = run(x, 0.3, vmapped=True)
    tol = 2e-2 if dtype == "bfloat16" else 1e-5
    for o, w in zip(
        jax.tree_util.tree_leaves(mapped), jax.tree_util.tree_leaves(batched), strict=True
    ):
        np.testing.assert_allclose(_np(o), _np(w), rtol=tol, atol=tol, err_msg="vmap")


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), PROFILE_SOFT)
def test_soft_mode_limits_invariants_and_vmap(name, mode, method, dtype):
    """Three checks on one compiled program (compiling dominates these small inputs):
    softness 1e-3 gives the hard result; the invariants hold at ties and constant rows;
    vmap over the rows agrees with the batched call."""
    with dtype_scope(dtype):
        run = _value_and_gradient(name, mode, method)
        _converges_to_hard(name, method, dtype, run)
        _invariants(name, mode, method, dtype, run)
        _vmap_matches_batched(name, mode, method, dtype, run)


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), FLOAT64_SOFT)
def test_gradients_match_finite_differences(name, mode, method, dtype):
    """With respect to the inputs and the softness, in float64."""
    with dtype_scope(dtype):
        x = separated(dtype, batch=2, n=5, seed=4)

        # the iterative solvers run to a tolerance far below the finite-difference step
        solver = {"ot_kwargs": TIGHT_SOLVER[method]} if method in TIGHT_SOLVER else {}

        def f(x, softness):
            out = call(name, x, softness=softness, mode=mode, method=method, **solver)
            return jax.tree_util.tree_leaves(out)[0]

        check_gradient(f, (x, jnp.float64(0.4)), eps=1e-6, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- straight-through


@pytest.mark.parametrize(("name", "mode", "dtype"), PROFILE_ST)
def test_straight_through_forward_is_hard_and_gradient_is_soft(name, mode, dtype):
    """The `_st` forward equals the hard call exactly; its gradient is the soft one's:
    d/dx Σ cos(st(x)) = Σ -sin(hard) · d soft / dx. One compiled program per case."""
    with dtype_scope(dtype):
        x = separated(dtype)
        st_fn = getattr(soft_ops, f"{name}_st")
        hard_leaves = jax.tree_util.tree_leaves(call(name, x, mode="hard"))

        def st_total(v):
            out = st_fn(v, **extra_args(name), softness=0.5, mode=mode)
            return sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree_util.tree_leaves(out)), out

        def surrogate(v, hard):
            out = jax.tree_util.tree_leaves(call(name, v, softness=0.5, mode=mode))
            assert len(out) == len(hard)
            return sum(jnp.sum(-jnp.sin(h) * o) for h, o in zip(hard, out, strict=True))

        @jax.jit
        def program(v, hard):
            (_, forward), st_grad = jax.value_and_grad(st_total, has_aux=True)(v)
            return forward, st_grad, jax.grad(surrogate)(v, hard)

        forward, st_grad, soft_grad = program(x, hard_leaves)
        for f, h in zip(jax.tree_util.tree_leaves(forward), hard_leaves, strict=True):
            np.testing.assert_array_equal(_np(f), _np(h))
        tol = 2e-2 if dtype == "bfloat16" else 1e-5
        np.testing.assert_allclose(_np(st_grad), _np(soft_grad), rtol=tol, atol=tol)
