"""Generic conformance checks, run for every row the catalogue generates.

Rows come from tests/generated/cases.py (data only); each check below is written
once and applies to every op x mode x method x dtype the catalogue declares.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from diffbio.core import soft_ops
from tests.conformance._inputs import (
    TRANSITION,
    array_args,
    binary_args,
    call,
    call_hard,
    dtype_scope,
    is_probe_op,
    kinks,
    probe_points,
)
from tests.generated.cases import HARD_CASES, MODELESS_CASES, OPS, SOFT_CASES, ST_CASES

ORDERING = ("sorting", "quantile")  # covered by test_ordering.py, with inputs of their own


def _elementwise(cases):
    rows = [c for c in cases if OPS[c.values[0]]["category"] not in ORDERING]
    assert rows
    return rows


HARD_CASES = _elementwise(HARD_CASES)
SOFT_CASES = _elementwise(SOFT_CASES)
ST_CASES = _elementwise(ST_CASES)
assert MODELESS_CASES

FLOAT64_SOFT_CASES = [c for c in SOFT_CASES if c.values[3] == "float64"]
SMOOTHNESS_CASES = [
    c for c in FLOAT64_SOFT_CASES if c.values[1] in ("c1", "c2") and is_probe_op(c.values[0])
]
COMPACT_CASES = [
    c for c in SOFT_CASES if c.values[1] in ("c0", "c1", "c2") and is_probe_op(c.values[0])
]
PROBE_SOFT_CASES = [c for c in SOFT_CASES if is_probe_op(c.values[0])]


def _float32_fast(cases):
    """Checks whose outcome does not depend on the dtype (jit and vmap against eager, the
    straight-through rule): float32 in `make test`, every dtype in the slow profile."""
    return [
        c if c.values[-1] == "float32" else pytest.param(*c.values, id=c.id, marks=pytest.mark.slow)
        for c in cases
    ]


def _method(method):
    return {} if method is None else {"method": method}


def _as_np(value):
    return np.asarray(
        jnp.asarray(value, dtype=jnp.float64 if value.dtype == jnp.float64 else jnp.float32)
    )


# ---------------------------------------------------------------- hard mode


@pytest.mark.parametrize(("name", "dtype"), HARD_CASES)
def test_hard_mode_equals_hard_equivalent(name, dtype):
    """mode="hard" returns exactly what the catalogue's hard equivalent returns,
    at the kinks themselves (ties, 0, half-integers) and away from them."""
    with dtype_scope(dtype):
        low, high = OPS[name]["domain"]
        t = np.concatenate([np.linspace(low, high, 13), kinks(name, low, high)])
        args = array_args(name, t, dtype)
        got = call(name, args, mode="hard")
        want = call_hard(name, args)
        assert got.dtype == jnp.dtype(dtype)
        assert got.shape == want.shape
        np.testing.assert_array_equal(_as_np(got), _as_np(want.astype(got.dtype)))


# ---------------------------------------------------------------- soft modes


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), PROBE_SOFT_CASES)
def test_small_softness_converges_to_hard(name, mode, method, dtype):
    """softness 1e-3 is within 1e-3 of hard at points >= 0.05 from the decision boundary."""
    with dtype_scope(dtype):
        t = probe_points(name, 16, margin=0.05)
        args = array_args(name, t, dtype)
        soft = call(name, args, mode=mode, softness=1e-3, **_method(method))
        hard = call(name, args, mode="hard", **_method(method))
        assert soft.dtype == hard.dtype == jnp.dtype(dtype)
        scale = np.maximum(1.0, np.abs(_as_np(hard)))
        tol = 1e-3 if dtype != "bfloat16" else 1e-2
        assert np.all(np.abs(_as_np(soft) - _as_np(hard)) <= tol * scale)


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), SOFT_CASES)
def test_extreme_inputs_give_finite_values_and_gradients(name, mode, method, dtype):
    """|x| up to 1e30, exact zeros, softness 1e-6 and 1e6: values and gradients finite
    (also with respect to a traced softness); SoftBool values stay in [0, 1]."""
    with dtype_scope(dtype):
        info = OPS[name]
        extremes = np.array([-1e30, -1e3, -1.0, -1e-30, 0.0, 1e-30, 1.0, 1e3, 1e30])
        if not is_probe_op(name):
            low, high = info["domain"]
            extremes = np.clip(extremes, low, high)
        args = array_args(name, extremes, dtype)
        for softness in (1e-6, 0.1, 1e6):

            def total(args, softness):
                return jnp.sum(call(name, args, mode=mode, softness=softness, **_method(method)))

            value = call(name, args, mode=mode, softness=softness, **_method(method))
            assert np.all(np.isfinite(_as_np(value)))
            if info["returns"] == "SoftBool":
                assert np.all((_as_np(value) >= 0) & (_as_np(value) <= 1))
            grads = jax.grad(total, argnums=(0, 1))(args, jnp.asarray(softness, dtype))
            for leaf in jax.tree_util.tree_leaves(grads):
                assert np.all(np.isfinite(_as_np(leaf))), (softness, grads)


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), _float32_fast(SOFT_CASES))
def test_jit_and_vmap_match_eager(name, mode, method, dtype):
    with dtype_scope(dtype):
        t = probe_points(name, 6, margin=0.01)
        args = array_args(name, np.stack([t, t[::-1]]), dtype)
        batched = {k: v for k, v in args.items() if v.ndim == 2}
        fixed = {k: v for k, v in args.items() if v.ndim != 2}

        def f(batched, softness):
            return call(name, {**batched, **fixed}, mode=mode, softness=softness, **_method(method))

        eager = f(batched, 0.3)
        jitted = jax.jit(f)(batched, 0.3)
        mapped = jax.vmap(f, in_axes=(0, None))(batched, 0.3)
        jit_mapped = jax.jit(jax.vmap(f, in_axes=(0, None)))(batched, 0.3)
        tol = 1e-6 if dtype != "bfloat16" else 1e-2
        for other in (jitted, mapped, jit_mapped):
            assert other.dtype == eager.dtype
            np.testing.assert_allclose(_as_np(other), _as_np(eager), rtol=tol, atol=tol)


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), FLOAT64_SOFT_CASES)
def test_gradients_match_finite_differences(name, mode, method, dtype):
    """Reverse- and forward-mode derivatives (inputs and softness) equal central finite
    differences in float64, at points away from the kinks and the region edges."""
    with dtype_scope(dtype):
        softness = 0.4
        edges = [k + s * TRANSITION * softness for k in kinks(name, -5, 5) for s in (-1, 1)]
        if OPS[name]["periodic_kinks"] is not None:  # the summation window recentres here
            edges += [k + 0.5 for k in kinks(name, -5, 5)]
        t = probe_points(name, 8, margin=0.02, avoid=edges)
        args = array_args(name, t, dtype)
        free = [k for k in OPS[name]["array_params"] if k not in OPS[name]["fixed"]]
        fixed = {k: v for k, v in args.items() if k not in free}

        def f(*values):
            *arrays, s = values
            given = dict(zip(free, arrays, strict=True))
            return call(name, {**given, **fixed}, mode=mode, softness=s, **_method(method))

        point = tuple(args[k] for k in free) + (jnp.asarray(softness, jnp.float64),)
        if "softness" not in OPS[name]["params"]:
            return
        check_grads(f, point, order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), SMOOTHNESS_CASES)
def test_derivative_continuous_across_region_edges(name, mode, method, dtype):
    """c1: the first derivative, c2: the second derivative, have no jump at ±5 softness
    around each kink (the left and right values agree to O(delta))."""
    with dtype_scope(dtype):
        softness = 0.2
        order = 1 if mode == "c1" else 2
        edges = np.array(
            [k + s * TRANSITION * softness for k in kinks(name, -2, 2) for s in (-1, 1)]
        )
        delta = 1e-7

        def f(x):
            args = array_args(name, x, dtype)
            return call(name, args, mode=mode, softness=softness, **_method(method))

        derivative = f
        for _ in range(order):
            derivative = jax.vmap(jax.grad(lambda x, d=derivative: d(x[None])[0]))
        left = derivative(jnp.asarray(edges - delta))
        right = derivative(jnp.asarray(edges + delta))
        inside = derivative(jnp.asarray(edges - np.sign(edges - np.round(edges)) * 0.5 * softness))
        scale = 1.0 + float(np.max(np.abs(np.asarray(inside))))
        np.testing.assert_allclose(np.asarray(left), np.asarray(right), atol=1e-4 * scale)


@pytest.mark.parametrize(("name", "mode", "method", "dtype"), COMPACT_CASES)
def test_piecewise_modes_are_exact_outside_the_transition_region(name, mode, method, dtype):
    """c0/c1/c2 have compact support: beyond ±5 softness of every kink the value equals
    the hard value and the gradient equals the hard gradient exactly."""
    with dtype_scope(dtype):
        softness = 0.01
        t = probe_points(name, 16, margin=TRANSITION * softness * 1.2)
        args = array_args(name, t, dtype)
        free = [k for k in OPS[name]["array_params"] if k not in OPS[name]["fixed"]]

        def f(x, mode):
            return call(name, {**args, free[0]: x}, mode=mode, softness=softness)

        soft, hard = f(args[free[0]], mode), f(args[free[0]], "hard")
        tol = 0.0 if dtype != "bfloat16" else 1e-2
        np.testing.assert_allclose(_as_np(soft), _as_np(hard), rtol=max(tol, 1e-6), atol=tol)
        soft_grad = jax.grad(lambda x: jnp.sum(f(x, mode)))(args[free[0]])
        hard_grad = jax.grad(lambda x: jnp.sum(f(x, "hard")))(args[free[0]])
        np.testing.assert_array_equal(_as_np(soft_grad), _as_np(hard_grad))


# ---------------------------------------------------------------- straight-through


@pytest.mark.parametrize(("name", "mode", "dtype"), _float32_fast(ST_CASES))
def test_straight_through_forward_is_hard_and_gradient_is_soft(name, mode, dtype):
    with dtype_scope(dtype):
        t = probe_points(name, 8, margin=0.01)
        args = array_args(name, t, dtype)
        first = OPS[name]["array_params"][0]
        st_fn = getattr(soft_ops, f"{name}_st")

        def total(fn, x, mode):
            return jnp.sum(fn(**{**args, first: x}, softness=0.5, mode=mode))

        forward = st_fn(**args, softness=0.5, mode=mode)
        np.testing.assert_array_equal(_as_np(forward), _as_np(call(name, args, mode="hard")))
        st_grad = jax.grad(lambda x: total(st_fn, x, mode))(args[first])
        soft_grad = jax.grad(lambda x: total(getattr(soft_ops, name), x, mode))(args[first])
        np.testing.assert_array_equal(_as_np(st_grad), _as_np(soft_grad))


# ---------------------------------------------------------------- ops without modes


@pytest.mark.parametrize(("name", "dtype"), MODELESS_CASES)
def test_modeless_op_equals_hard_equivalent(name, dtype):
    """Logic and `where` on 0/1 inputs equal the boolean jnp op; safe math equals jnp
    inside the domain."""
    with dtype_scope(dtype):
        info = OPS[name]
        if info["binary_inputs"]:
            args = binary_args(name, (3, 5), dtype)
            got = call(name, args)
            as_bool = {
                k: (v.astype(bool) if info["kinds"][info["params"].index(k)] == "softbool" else v)
                for k, v in args.items()
            }
            want = call_hard(name, as_bool)
        else:
            args = array_args(name, np.zeros((3, 5)), dtype)
            got, want = call(name, args), call_hard(name, args)
        assert got.dtype == jnp.dtype(dtype)
        assert got.shape == want.shape
        np.testing.assert_allclose(
            _as_np(got), _as_np(want.astype(got.dtype)), rtol=1e-6 if dtype != "bfloat16" else 1e-2
        )


@pytest.mark.parametrize(("name", "dtype"), MODELESS_CASES)
def test_modeless_op_values_and_gradients_finite_at_boundaries(name, dtype):
    """Soft logic stays in [0, 1]; safe math has finite values and gradients at its
    boundary points (0, ±1, zero vectors, zero denominators)."""
    with dtype_scope(dtype):
        info = OPS[name]
        args = array_args(name, np.zeros(7), dtype, seed=3)
        if info["boundary_points"]:
            points = jnp.asarray(
                np.resize(info["boundary_points"], 7) * np.array([1, 1, 1, 0, 1, 1, 1]), dtype
            )
            key = info["array_params"][-1] if name == "div" else info["array_params"][0]
            args = {**args, key: points}
            if name == "norm":
                args = {"x": jnp.zeros(7, dtype)}
        value = call(name, args)
        assert np.all(np.isfinite(_as_np(value)))
        if info["returns"] == "SoftBool":
            assert np.all((_as_np(value) >= 0) & (_as_np(value) <= 1))
        grads = jax.grad(lambda a: jnp.sum(call(name, a)))(args)
        for leaf in jax.tree_util.tree_leaves(grads):
            assert np.all(np.isfinite(_as_np(leaf)))


@pytest.mark.parametrize(("name", "dtype"), [c for c in MODELESS_CASES if c.values[1] == "float64"])
def test_modeless_gradients_match_finite_differences(name, dtype):
    with dtype_scope(dtype):
        args = array_args(name, np.zeros(5), dtype, seed=1)
        names = list(args)
        check_grads(
            lambda *v: call(name, dict(zip(names, v, strict=True))),
            tuple(args.values()),
            order=2,
            modes=("fwd", "rev"),
            eps=1e-6,
            atol=1e-5,
            rtol=1e-5,
        )


@pytest.mark.parametrize(("name", "dtype"), MODELESS_CASES)
def test_modeless_jit_and_vmap_match_eager(name, dtype):
    with dtype_scope(dtype):
        args = array_args(name, np.zeros((2, 4)), dtype, seed=2)
        f = lambda a: call(name, a)  # noqa: E731
        eager = f(args)
        rows = [f({k: (v[i] if v.ndim else v) for k, v in args.items()}) for i in range(2)]
        in_axes = ({k: (0 if v.ndim else None) for k, v in args.items()},)
        np.testing.assert_allclose(_as_np(jax.jit(f)(args)), _as_np(eager), rtol=1e-6, atol=1e-6)
        mapped = jax.vmap(f, in_axes=in_axes)(args)
        np.testing.assert_allclose(_as_np(mapped), _as_np(jnp.stack(rows)), rtol=1e-6, atol=1e-6)
