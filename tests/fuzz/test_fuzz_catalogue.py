"""Property-based fuzzing of every catalogue entry (hypothesis, strategies in strategies.py).

For each drawn call: values and gradients are finite; a SoftBool lies in [0, 1]; SoftIndex
rows are distributions; soft sort is monotone (except the sorting network, see below);
ranks lie in [1, n]; the output dtype and shape follow the hard (jnp) result; `mode="hard"`
equals the catalogue's hard equivalent; the `_st` forward equals the hard result.

`make test` runs a small deterministic profile (`FUZZ_QUICK_EXAMPLES` examples per entry,
derandomised); the `fuzz` marker runs `FUZZ_FULL_EXAMPLES` inputs per entry in
`make test-full`. There hypothesis draws `FUZZ_FULL_EXAMPLES / FUZZ_ROWS` static
configurations (shape, dtype, axis, mode, method, k, q …) per entry and each is checked on
`FUZZ_ROWS` independent inputs and softnesses at once (one vmapped call): compiling each
new static configuration, not evaluating it, is what costs time on a CPU.
"""

import math
import os
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from diffbio.core import soft_ops
from tests.conformance._inputs import call_hard
from tests.fuzz._report import report_count
from tests.fuzz.strategies import Call, calls, fuzzed_ops
from tests.generated.cases import METHODS, OPS

FUZZ_QUICK_EXAMPLES = 3
FUZZ_FULL_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
FUZZ_ROWS = int(os.environ.get("FUZZ_ROWS", "250"))

_jitted: dict[tuple, object] = {}


def _function(call: Call, variant: str = ""):
    """The op (or its `variant`, e.g. `"_st"`) as a jitted function of (arrays, softness),
    compiled once per static config. Run eagerly, every primitive and solver loop would
    compile on its own for every draw, and the process's code mappings would grow without
    bound."""
    name = call.name + variant
    key = (name, tuple(sorted(call.static.items())), call.dtype, call.softness is None,
           call.rows is None)
    if key not in _jitted:
        op = getattr(soft_ops, name)

        def f(arrays, softness):
            extra = {} if softness is None else {"softness": softness}
            return op(**arrays, **call.static, **extra)

        _jitted[key] = jax.jit(_batched(call, f))
    return _jitted[key]


def _batched(call: Call, f):
    """`f` itself for one call; `f` vmapped over the leading axis of a batched call."""
    if call.rows is None:
        return f
    return jax.vmap(f, in_axes=(0, None if call.softness is None else 0))


def _hard_rows_that_fit(call: Call) -> Call:
    """Safe math: only inputs whose exact result and exact derivatives the dtype can
    hold (div(1e30, 1e-30) overflows, and so does d/dy div(-6.3, -1e-30) = -6.3e60 in
    float32). One call is rejected; in a batch, such rows are replaced by ones."""
    with jax.enable_x64(True):
        arrays = {k: jnp.asarray(v) for k, v in call.arrays.items()}

        def hard(a, _):
            return call_hard(call.name, a)

        exact = _batched(call, hard)(arrays, None)
        slopes = _batched(call, jax.grad(lambda a, _: jnp.sum(hard(a, _))))(arrays, None)
    limit = float(jnp.finfo(jnp.dtype(call.dtype)).max) / 10
    rows = 1 if call.rows is None else call.rows
    too_big = np.zeros(rows, bool)
    for leaf in [exact, *jax.tree_util.tree_leaves(slopes)]:
        leaf = np.asarray(leaf)  # non-finite where the safe op defines its own value
        big = np.isfinite(leaf) & (np.abs(np.where(np.isfinite(leaf), leaf, 0)) >= limit)
        too_big |= big.reshape(rows, -1).any(axis=1)
    if call.rows is None:
        assume(not bool(np.any(too_big)))
        return call
    arrays = {
        k: np.where(too_big.reshape((-1,) + (1,) * (v.ndim - 1)), 1.0, v)
        for k, v in call.arrays.items()
    }
    return replace(call, arrays=arrays)


def _sorted_axis_last(call: Call, out: jax.Array) -> jax.Array:
    """`out` with the op's axis last (flattened when the axis is None), batch kept first."""
    axis = call.static["axis"]
    batch = 0 if call.rows is None else 1
    if axis is None:
        return out.reshape(out.shape[:batch] + (-1,))
    return jnp.moveaxis(out, axis + batch if axis >= 0 else axis, -1)


def _leaves(out) -> list[jax.Array]:
    return [leaf for leaf in jax.tree_util.tree_leaves(out) if leaf is not None]


def _np(a) -> np.ndarray:
    return np.asarray(jnp.asarray(a, jnp.float64 if a.dtype == jnp.float64 else jnp.float32))


def _inputs(call: Call):
    dtype = jnp.dtype(call.dtype)
    arrays = {k: jnp.asarray(v, dtype=dtype) for k, v in call.arrays.items()}
    softness = None if call.softness is None else jnp.asarray(call.softness, dtype)
    return arrays, softness


def _tolerance(dtype: str) -> float:
    return {"float32": 1e-4, "float64": 1e-8, "bfloat16": 2e-2}[dtype]


def _finite(name: str, what: str, leaves) -> None:
    for leaf in leaves:
        assert np.all(np.isfinite(_np(leaf))), f"{name}: non-finite {what}: {leaf}"


def check_call(call: Call) -> None:
    """Every property of one call; raises AssertionError with the reason."""
    info = OPS[call.name]
    if info["category"] == "safe_math" and info["hard"] is not None:
        call = _hard_rows_that_fit(call)
    with jax.enable_x64(call.dtype == "float64"):
        arrays, softness = _inputs(call)
        f = _function(call)
        out = f(arrays, softness)
        leaves = _leaves(out)
        _finite(call.name, "values", leaves)
        tol = _tolerance(call.dtype)
        mode = call.static.get("mode")

        if info["returns"] == "SoftBool":
            for leaf in leaves:
                assert np.all(_np(leaf) >= 0) and np.all(_np(leaf) <= 1), "SoftBool out of [0, 1]"
        index = None
        if info["returns"] == "SoftIndex":
            index = out
        elif call.name == "top_k":
            index = out[1]
            method = call.static["method"]
            if mode != "hard" and not METHODS[method]["soft_index"]:
                assert index is None, "a values-only method returns None as its SoftIndex"
        if index is not None:
            rows = _np(index)
            assert np.all(rows >= -tol), "SoftIndex has negative weights"
            np.testing.assert_allclose(rows.sum(-1), 1.0, atol=max(tol, 1e-3) * 10)

        x = arrays.get("x")
        if call.name == "sort" and mode != "hard" and call.static["method"] != "sorting_network":
            # Soft bitonic networks with logistic comparators are not monotone at large
            # softness (Petersen et al. 2022, arXiv:2203.09630): not asserted for them.
            values = _np(_sorted_axis_last(call, out))
            step = -np.diff(values, axis=-1) if call.static.get("descending") else np.diff(
                values, axis=-1
            )
            scale = np.max(np.abs(values), initial=1.0)
            assert np.all(step >= -tol * scale), "soft sort is not monotone"
        if call.name == "rank":
            shape = x.shape if call.rows is None else x.shape[1:]
            n = int(np.prod(shape)) if call.static["axis"] is None else shape[
                call.static["axis"]
            ]
            r = _np(out)
            slack = 1e-2
            if call.static["method"] == "smooth_sort" and mode != "hard":
                # its log-sum-exp bounds enlarge the permutahedron of (1, …, n)/(n − 1)
                # by up to τ·log C(n, ⌊n/2⌋), τ = min(softness, 1), so the ranks (that
                # projection times n − 1) leave [1, n] by up to (n − 1)·τ·log C(n, ⌊n/2⌋)
                # (documented; SoftJAX's smooth_sort does the same)
                tau = np.minimum(np.asarray(call.softness, np.float64), 1.0)
                tau = tau.reshape(tau.shape + (1,) * (r.ndim - tau.ndim))
                slack = slack + (n - 1) * tau * math.log(math.comb(n, n // 2))
            assert np.all(r >= 1 - slack) and np.all(r <= n + slack), "rank outside [1, n]"

        # dtype and shape follow the hard result; hard equals the hard equivalent
        if "mode" in call.static:
            hard_call = Call(call.name, call.dtype, call.arrays, {**call.static, "mode": "hard"},
                             call.softness, call.rows)
            hard = _leaves(_function(hard_call)(arrays, softness))
            soft_leaves = leaves if len(leaves) == len(hard) else leaves[:1]
            for s_leaf, h_leaf in zip(soft_leaves, hard, strict=False):
                assert s_leaf.shape == h_leaf.shape and s_leaf.dtype == h_leaf.dtype, (
                    f"soft {s_leaf.shape} {s_leaf.dtype} vs hard {h_leaf.shape} {h_leaf.dtype}"
                )
            if info["hard"] is not None and "hard" in info["modes"] and info["category"] in (
                "elementwise", "comparison"
            ):
                # Jitted like the op itself: XLA:CPU flushes subnormals inside fused
                # kernels, so an eager reference would differ for |x| < 1.2e-38.
                expected = jax.jit(_batched(call, lambda a, _: call_hard(call.name, a)))(
                    arrays, None
                )
                got = hard[0]
                np.testing.assert_array_equal(_np(got), _np(expected.astype(got.dtype)))
            if info["st"] and mode != "hard":
                forward = _leaves(_function(call, "_st")(arrays, softness))
                # equal up to one rounding: the hard value inside the `_st` program is
                # fused differently from the hard program's (quantile's interpolation
                # a + (b − a)·t may be contracted to an FMA in one and not the other)
                ulp = float(jnp.finfo(jnp.dtype(call.dtype)).eps)
                for fw, h_leaf in zip(forward, hard, strict=False):
                    np.testing.assert_allclose(_np(fw), _np(h_leaf), rtol=2 * ulp, atol=0)

        # gradients with respect to every array argument and the softness
        if call.dtype != "bfloat16" and info["array_params"]:

            def total(arrays, softness):
                return sum(jnp.sum(jnp.sin(leaf.astype(jnp.float32 if call.dtype == "float32"
                                                         else leaf.dtype)))
                           for leaf in _leaves(f(arrays, softness)))

            grads = jax.grad(total, argnums=(0, 1) if softness is not None else 0)(
                arrays, softness
            )
            _finite(call.name, "gradients", jax.tree_util.tree_leaves(grads))


def _settings(examples: int, quick: bool):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=quick,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


@pytest.mark.parametrize("name", fuzzed_ops())
def test_fuzz_quick(name):
    """The small deterministic profile of `make test`."""

    @_settings(FUZZ_QUICK_EXAMPLES, quick=True)
    @given(calls(name))
    def run(call):
        check_call(call)

    run()


@pytest.mark.fuzz
@pytest.mark.parametrize("name", fuzzed_ops())
def test_fuzz_full(name):
    """`FUZZ_EXAMPLES` (10,000 by default) random inputs per entry: `FUZZ_EXAMPLES /
    FUZZ_ROWS` drawn configurations of `FUZZ_ROWS` inputs each."""

    checked = []

    @_settings(max(1, FUZZ_FULL_EXAMPLES // FUZZ_ROWS), quick=False)
    @given(calls(name, rows=FUZZ_ROWS))
    def run(call):
        check_batch(call)
        checked.append(call.rows)

    run()
    report_count(name, configurations=len(checked), inputs=sum(checked))


def check_batch(call: Call) -> None:
    """`check_call` on all rows at once; on failure, the first failing row is replayed on
    its own so the report names one input."""
    try:
        check_call(call)
    except AssertionError:
        for i in range(call.rows):
            single = call.row(i)
            try:
                check_call(single)
            except AssertionError as error:
                raise AssertionError(f"failing input: {single!r}") from error
        raise
