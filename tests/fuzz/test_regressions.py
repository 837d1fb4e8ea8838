"""Shrunk examples the catalogue fuzzer found, kept as regression tests.

Each test names the root cause that was fixed.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops


def test_div_gradient_with_a_tiny_denominator_is_finite():
    """div(0, 1e-30) in float32: the y-gradient was 0 · y⁻² = 0 · inf = NaN because
    y² underflows; the quotient's JVP is now (dx − q·dy) / y."""
    x, y = jnp.float32(0.0), jnp.float32(1e-30)
    gx, gy = jax.grad(soft_ops.div, argnums=(0, 1))(x, y)
    assert np.isfinite(gx) and gx == np.float32(1e30)
    assert gy == 0.0
    # Same rule elsewhere: d/dy (x / y) = -x / y².
    gy = jax.grad(soft_ops.div, argnums=1)(jnp.float32(3.0), jnp.float32(2.0))
    np.testing.assert_allclose(gy, -0.75, rtol=1e-6)


def test_norm_of_huge_values_does_not_overflow():
    """norm([1e30]) in float32 was inf: x² overflows above 1.8e19; the norm is now scaled
    by max |x| (held constant for the derivative)."""
    x = jnp.asarray([1e30, -1e30, 0.0], dtype=jnp.float32)
    np.testing.assert_allclose(soft_ops.norm(x), np.sqrt(2.0) * 1e30, rtol=1e-6)
    grad = jax.grad(soft_ops.norm)(x)
    np.testing.assert_allclose(grad, [2**-0.5, -(2**-0.5), 0.0], rtol=1e-6)
    batch = jnp.asarray([[3.0, 4.0], [0.0, 0.0]], dtype=jnp.float32)
    np.testing.assert_allclose(soft_ops.norm(batch, axis=-1), [5.0, 0.0])
    np.testing.assert_allclose(jax.grad(lambda b: soft_ops.norm(b, axis=-1).sum())(batch),
                               [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_hard_abs_of_a_subnormal_matches_jitted_jnp():
    """abs(1.4e-45, mode="hard") is 0 under jit: XLA:CPU flushes subnormals in fused
    kernels, as it does for `jax.jit(jnp.abs)`; the fuzzer's reference is jitted too."""
    x = jnp.asarray([1.401298464324817e-45], dtype=jnp.float32)
    ours = jax.jit(lambda v: soft_ops.abs(v, mode="hard"))(x)
    reference = jax.jit(jnp.abs)(x)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))


def test_standardize_of_huge_values_does_not_overflow():
    """top_k(x=[0, 1e30], k=1, softness=1e-5) in float32: the standardisation's variance
    (5e29)² overflowed, so std = inf, every z = 0.5, sorted values NaN (methods that map
    back through std) and the softness gradient NaN. The moments are now taken of
    x / max|x| and scaled back."""
    x = jnp.asarray([0.0, 1e30], dtype=jnp.float32)
    for method in ("softsort", "neuralsort", "sorting_network", "fast_soft_sort", "ot"):
        ops = (("top_k", {"k": 1}), ("sort", {}), ("max", {}))
        ops = ops[1:2] if method == "ot" else ops  # ot compiles slowest

        def totals(x, s, ops=ops, method=method):  # one compiled program per method
            def total(x, s, op, extra):
                out = getattr(soft_ops, op)(x, softness=s, method=method, **extra)
                return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(out))

            both = {op: jax.value_and_grad(total, argnums=(0, 1)) for op, _ in ops}
            found = {op: both[op](x, s, op, extra) for op, extra in ops}
            return found, soft_ops.top_k(x, 1, softness=1e-5, method=method)[0]  # static

        found, top = jax.jit(totals)(x, jnp.float32(1e-5))
        for op, (value, (gx, gs)) in found.items():
            assert np.isfinite(value) and np.all(np.isfinite(gx)) and np.isfinite(gs), (
                op, method, value, gx, gs)
        np.testing.assert_allclose(top, [1e30], rtol=1e-4, err_msg=method)
    # the standardised scores are unchanged for ordinary inputs
    from diffbio.core.soft_ops._impl.sorting._common import standardize

    y = jnp.asarray([[0.3, -2.0, 5.0, 1.0]], jnp.float32)
    mean, std = y.mean(), jnp.sqrt(y.var() + 1e-6)
    np.testing.assert_allclose(standardize(y), jax.nn.sigmoid((y - mean) / std), rtol=1e-6)
    np.testing.assert_allclose(standardize(y * 1e25), standardize(y), rtol=1e-5)


def test_quantile_of_one_huge_value_is_finite():
    """quantile([1e30], q=0) in float32 (softsort): with the moments scaled by c = 1e30,
    1e-6 / c² underflowed and a one-element (constant) row got std = 0 and z = 0/0. The
    std is floored at sqrt(1e-6), its exact value for a constant row."""
    for value in (1e30, 9.22337194e15):
        x = jnp.asarray([value], jnp.float32)
        for op in (soft_ops.quantile, soft_ops.argquantile):
            out = op(x, 0.0, softness=1.0, method="softsort")
            assert np.all(np.isfinite(np.asarray(out))), (op, value, out)
            grad = jax.grad(lambda x, op=op: jnp.sum(jnp.sin(op(x, 0.0, softness=1.0))))(x)
            assert np.all(np.isfinite(np.asarray(grad))), (op, value, grad)
        np.testing.assert_allclose(soft_ops.quantile(x, 0.0, softness=1.0), value, rtol=1e-6)


def test_soft_values_of_a_large_constant_row_have_finite_gradients():
    """quantile(x = [2.71e25] * 5, q=0, softsort, softness 0.0057) in float32: the
    gradient was -inf. For a constant row z has slope 1/sqrt(1e-6) = 1000 per unit of x
    (the std floor), so `Σ_k ∂P_rk x_k` summed terms of size 1e25 · 1e3 / s that cancel
    exactly, and their rounding error overflowed. Values are now `P (x - m) + m` with the
    row mean `m` held constant (the same function and derivative), so the terms vanish."""
    value = 2.7105963423267137e25
    x = jnp.full((5,), value, jnp.float32)
    top_2 = lambda x, **kw: soft_ops.top_k(x, 2, **kw)[0]  # noqa: E731
    cases = [("softsort", op, extra) for op, extra in (
        (soft_ops.quantile, {"q": 0.0}), (soft_ops.sort, {}), (soft_ops.max, {}), (top_2, {})
    )] + [("neuralsort", soft_ops.sort, {}), ("ot", soft_ops.quantile, {"q": 0.0})]
    for method, op, extra in cases:

        def total(x, op=op, extra=extra, method=method):
            return jnp.sum(op(x, softness=0.0057, method=method, **extra))

        grad = np.asarray(jax.jit(jax.grad(total))(x), np.float64)
        outputs = jax.eval_shape(lambda x, op=op, extra=extra, method=method: op(
            x, softness=0.0057, method=method, **extra), x).size
        assert np.all(np.isfinite(grad)), (method, op, grad)
        # shift equivariance: Σ_j ∂(Σ_r values_r)/∂x_j = number of outputs, spread evenly
        np.testing.assert_allclose(grad, outputs / x.size, rtol=1e-3, err_msg=method)
    np.testing.assert_allclose(soft_ops.sort(x, method="softsort"), np.full(5, value), rtol=1e-6)


# Reproductions on the solver methods (smooth_sort's Newton loop, ot's dual solvers)
# compile slowest: they run in `make test-full`.
@pytest.mark.slow
def test_ot_gradient_of_a_single_element_row():
    """rank(x=[0.0], method="ot") in float32: the implicit derivative took the largest
    of the n − 1 chain conductances, an empty array for n = 1 (a trace-time ValueError).
    The maximum now starts from 0."""
    x = jnp.asarray([0.0], jnp.float32)
    for op in (soft_ops.rank, soft_ops.sort):

        def total(x, s, op=op):
            return jnp.sum(jnp.sin(op(x, softness=s, method="ot")))

        gx, gs = jax.grad(total, argnums=(0, 1))(x, jnp.float32(1.0))
        expected = np.cos(0.0) if op is soft_ops.sort else 0.0  # sort(x) = x; rank = 1
        np.testing.assert_allclose(gx, [expected], atol=1e-6)
        assert gs == 0.0


def test_piecewise_comparison_in_bfloat16_stays_in_unit_interval():
    """greater_equal(-1.72, 1.20, softness=0.62, mode="c2") in bfloat16 gave -0.0039:
    the quintic cancels to ~0 near u = -1 and bfloat16 rounding left [0, 1]. The
    polynomial is now evaluated in at least float32 and its value clipped (its slope
    kept)."""
    x = jnp.asarray([-1.7217211489594852], jnp.bfloat16)
    y = jnp.asarray([1.1955194199610943], jnp.bfloat16)
    got = soft_ops.greater_equal(x, y, softness=0.6208505369652786, mode="c2")
    assert got.dtype == jnp.bfloat16
    assert 0.0 <= float(got[0]) <= 1e-3
    u = jnp.linspace(-5.0, 5.0, 4001)
    for mode in ("c0", "c1", "c2"):
        for dtype in (jnp.bfloat16, jnp.float16, jnp.float32):
            values = np.asarray(soft_ops.sigmoidal(u.astype(dtype), mode=mode, softness=1.0),
                                np.float32)
            assert values.min() >= 0.0 and values.max() <= 1.0, (mode, dtype)
        # the slope is the polynomial's, also where the value was clipped
        slope = jax.grad(lambda v, mode=mode: soft_ops.sigmoidal(v, mode=mode, softness=1.0))
        np.testing.assert_allclose(slope(jnp.float32(0.0)), {"c0": 0.1, "c1": 0.15,
                                                              "c2": 0.1875}[mode], rtol=1e-6)


@pytest.mark.slow
def test_smooth_sort_far_from_float64_at_1e5():
    """sort([1e5, 0, 3], softness=10, method="smooth_sort") in float32 was NaN (an L-BFGS
    line search accepted a trial point whose dual overflowed), then 3% from the float64
    optimum (L-BFGS stalled). The dual is now minimised by a damped Newton method whose
    line search rejects non-finite trials."""
    sort = jax.jit(partial(soft_ops.sort, softness=10.0, method="smooth_sort"))
    x = jnp.asarray([1e5, 0.0, 3.0], jnp.float32)
    values = sort(x)
    assert np.all(np.diff(np.asarray(values)) > 0)  # the order is kept
    with jax.enable_x64(True):
        exact = sort(jnp.asarray([1e5, 0.0, 3.0]))
        # (within the solver's tolerance, 1e-4 of the spread / sqrt(n))
        np.testing.assert_allclose(float(jnp.sum(exact)), 1e5 + 3.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(values, np.float64), np.asarray(exact), rtol=1e-4)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(sort(x)))))(x)
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.slow
def test_smooth_sort_of_values_spread_over_1e30():
    """sort([1e30, -6.7e-30], softness=10.1, smooth_sort) was -inf in float32 (and -1.8e59
    in float64). Three causes: the tolerance took the std of the bound increments, whose
    square overflows float32 (tolerance inf: the solver stopped at its start); the exp
    cap at 60 was below the optimum's slack (5e29 = exp(68)); and L-BFGS from the vertex
    start did not reach an optimum tens of units away. Fixed by the scaled std, a cap at
    85% of the float range, and Newton's method. Checked against the closed form of
    n = 2: the gap u of the two values solves 2·exp(−1/s)·u² + u = c, c = x₁ − x₂."""
    x = np.asarray([1e30, -6.672237811274032e-30])
    s = 10.126326633602927
    with jax.enable_x64(True):
        y64 = np.asarray(soft_ops.sort(jnp.asarray(x), softness=s, method="smooth_sort"))
        a, c = 2.0 * np.exp(-1.0 / s), x[0] - x[1]
        gap = (np.sqrt(1.0 + 4.0 * a * c) - 1.0) / (2.0 * a)
        # (the values are 5e29 ± gap / 2: the gap is resolved to a few ulps of 5e29)
        np.testing.assert_allclose(y64[1] - y64[0], gap, atol=4 * np.spacing(5e29))
        np.testing.assert_allclose(y64.sum(), x.sum(), rtol=1e-6)  # the solver's tolerance
    y32 = np.asarray(soft_ops.sort(jnp.asarray(x, jnp.float32), softness=s,
                                   method="smooth_sort"))
    np.testing.assert_allclose(y32, y64, rtol=1e-5)  # the solver's tolerance

    # derivatives in float32 match float64 for other scales and both operations (one
    # compiled gradient per operation and dtype, reused across the scales)
    weights = np.asarray([0.3, -1.0, 0.5, 2.0, 0.7])
    grads = {}
    for op in ("sort", "rank"):
        def total(x, s, op=op):
            out = getattr(soft_ops, op)(x, softness=s, method="smooth_sort")
            return jnp.sum(jnp.asarray(weights, x.dtype) * out)

        grads[op] = jax.jit(jax.grad(total))
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1e10, 1e20, 1e30):
        x = rng.normal(size=5) * scale
        x[3] = x[1]  # a tie
        for op, grad in grads.items():
            g32 = grad(jnp.asarray(x, jnp.float32), jnp.float32(0.5))
            with jax.enable_x64(True):
                x64 = jnp.asarray(x, jnp.float32).astype(jnp.float64)
                g64 = grad(x64, jnp.float64(0.5))
            assert np.all(np.isfinite(np.asarray(g32))), (scale, op, g32)
            np.testing.assert_allclose(np.asarray(g32, np.float64), np.asarray(g64),
                                       atol=1e-4 * np.max(np.abs(g64)), err_msg=f"{scale} {op}")


@pytest.mark.slow
def test_smooth_sort_of_a_huge_constant_row():
    """A constant row of 1e9 (or 1.2e30) in float32: the bound increments w + O(τ) rounded
    their O(τ) differences away (negative 'c', a dual unbounded below, NaN values), and
    the scores x / s = 1e35 had a derivative in s of 1e40. Both rows are now centred on
    their entry nearest zero first, which the projection commutes with."""
    ops = {op: jax.jit(partial(getattr(soft_ops, op), method="smooth_sort"))
           for op in ("sort", "rank")}
    grads = {
        op: jax.jit(jax.grad(lambda x, s, f=f: jnp.sum(jnp.sin(f(x, softness=s))), (0, 1)))
        for op, f in ops.items()
    }
    for value, s in ((7.73616535e9, 0.0479), (1.18348851e30, 9.5e-6)):
        x = jnp.full((5,), value, jnp.float32)
        s = jnp.float32(s)
        for op, f in ops.items():
            out = np.asarray(f(x, softness=s))
            if op == "rank":  # shift invariant: the ranks of a constant row of zeros
                np.testing.assert_allclose(out, f(jnp.zeros_like(x), softness=s), rtol=1e-5)
            else:  # the ESP enlargement τ·log C(n, k) is far below one ulp of the value
                np.testing.assert_allclose(out, value, rtol=1e-6)
            gx, gs = grads[op](x, s)
            assert np.all(np.isfinite(np.asarray(gx))) and np.isfinite(gs), (op, gx, gs)


@pytest.mark.slow
def test_smooth_sort_softness_gradient_next_to_a_gap_of_1e35():
    """rank([-2.73, 1e30, 1e30, -2.73, -1e-28], softness=1.03e-5, smooth_sort) in float32:
    the softness gradient was NaN (eager) or -inf (jit). The tangent of the scores z / s
    in s is −(z / s)·(ṡ / s) = 1e40, which overflows; it met the slack of 0 of that gap as
    0 · inf. The projection now takes the unscaled scores and s, and forms the weighted
    tangent as σ·Δz·(ṡ / s) with σ·Δz = 0 there. Its gaps are also divided by s after the
    subtraction, so the tied entries keep a gap of exactly 0 under `jit`. Checked against
    float64 (and the softness gradient against a central difference at s = 0.7)."""
    x = np.asarray([-2.7276498387168457, 1e30, 1e30, -2.7276498387168457,
                    -1.0311407850219018e-28])

    def total(x, s):
        return jnp.sum(jnp.sin(soft_ops.rank(x, softness=s, method="smooth_sort")))

    grad = jax.grad(total, argnums=(0, 1))
    with jax.enable_x64(True):
        g64x, g64s = jax.jit(grad)(jnp.asarray(x), jnp.float64(1.032120152622066e-05))
    assert g64s == 0.0  # the gaps are 1e35 / 0: the ranks do not move with s
    for run in (grad, jax.jit(grad)):
        gx, gs = run(jnp.asarray(x, jnp.float32), jnp.float32(1.032120152622066e-05))
        assert np.isfinite(gs) and abs(gs) < 0.1, gs  # 0 up to float32 rounding
        np.testing.assert_allclose(np.asarray(gx), np.asarray(g64x), rtol=1e-5, atol=1e-3)
    values = jax.jit(partial(soft_ops.rank, method="smooth_sort"))(
        jnp.asarray(x, jnp.float32), softness=jnp.float32(1.032120152622066e-05))
    assert np.all(np.isfinite(np.asarray(values)))
    # a moderate row: the softness gradient equals a central difference (a tight solver
    # tolerance, so that the difference resolves the derivative)
    def tight(x, s):
        out = soft_ops.rank(x, softness=s, method="smooth_sort", ot_kwargs={"tol": 1e-12})
        return jnp.sum(jnp.sin(out))

    with jax.enable_x64(True):
        y = jnp.asarray([-2.7276498387168457, 1.0, 1.0, -2.7276498387168457, 0.0])
        s, h = 0.7, 1e-6
        gs = jax.jit(jax.grad(tight, argnums=1))(y, jnp.float64(s))
        values = jax.jit(tight)
        fd = (values(y, jnp.float64(s + h)) - values(y, jnp.float64(s - h))) / (2 * h)
        np.testing.assert_allclose(gs, fd, rtol=1e-6)


def test_jitted_gradient_on_a_huge_constant_row_is_finite():
    """max([-6.5e28] * 5, softsort) in float32 had an inf gradient under `jit` only: the
    jitted row mean missed the common value by one ulp (4.7e21), and the standardisation
    (std floored at 1e-3 on a constant row) and the centring magnified that offset. Rows
    are now centred on their entry nearest zero, which is exact on a constant row."""
    x = jnp.full((5,), -6.52524774713974e28, dtype=jnp.float32)
    s = jnp.float32(0.024128951472591108)
    ops = (("max", {}), ("quantile", {"q": 0.0}), ("sort", {}))
    for method in ("softsort", "neuralsort", "sorting_network", "fast_soft_sort"):

        def gradients(x, s, method=method):  # one compiled program per method
            def total(x, s, op, kwargs):
                out = getattr(soft_ops, op)(x, softness=s, method=method, **kwargs)
                return jnp.sum(jnp.sin(out))

            grad = jax.grad(total, argnums=(0, 1))
            return {op: grad(x, s, op, kwargs) for op, kwargs in ops}

        for op, (gx, gs) in jax.jit(gradients)(x, s).items():
            assert np.all(np.isfinite(gx)) and np.isfinite(gs), (op, method, gx, gs)
            # the exact derivative of a constant row's soft value is cos(x) / n per entry
            # (or cos(x) for each of sort's n outputs)
            n_out = 5 if op == "sort" else 1
            np.testing.assert_allclose(
                np.sum(gx), n_out * np.cos(np.float32(x[0])), rtol=1e-4,
                err_msg=f"{op} {method}")


@pytest.mark.slow
def test_centring_keeps_the_small_entries_next_to_a_huge_one():
    """rank([3, -1e-30, -9.05, -2.96e15, 1e30], s=29437, smooth_sort) in float32 was
    [4.1, 2.1, 0.5, -1.4, 9.7] (float64: [4.6, 3.0, 1.4, -3.7, 9.7]): centring on the
    midrange 5e29 rounded 3, 0 and -9 to the same number. Rows are centred on their entry
    nearest zero, so no entry loses more precision than it has."""
    x = np.asarray([3.0, -1e-30, -9.0455224959718, -2956812573979239.0, 1e30], np.float32)
    s = 29437.94729442191
    r32 = soft_ops.rank(jnp.asarray(x), softness=s, method="smooth_sort")
    with jax.enable_x64(True):
        r64 = soft_ops.rank(jnp.asarray(x, jnp.float64), softness=s, method="smooth_sort")
    np.testing.assert_allclose(np.asarray(r32, np.float64), np.asarray(r64), atol=1e-4)
    # soft values keep the small entries too (near-hard softness; smooth_sort is
    # accurate relative to the row's 1e30 scale only, by its non-scale-free regulariser)
    for method in ("softsort",):
        values = soft_ops.sort(jnp.asarray(x), softness=1e-4, method=method,
                               standardize=False)
        np.testing.assert_allclose(np.asarray(values)[1:4], [-9.0455224959718, -1e-30, 3.0],
                                   atol=1e-3, err_msg=method)


@pytest.mark.slow  # a solver method's reproduction (see above)
@pytest.mark.parametrize("mode", ["c0", "c2"])  # p = 2 and p = 4/3 (c1, p = 3/2, lies between)
def test_ot_soft_sort_is_monotone_in_float64(mode):
    """sort(method="ot", mode="c0") of [-0, -1e-30, -1.147e-8, 3, 3.8143] in float64 broke
    its order by 2.5e-7: a plan's marginals hold to the solver tolerance (1e-4), so the
    soft values Σ_i P_ij x_i carried that error times |x| between (nearly) tied
    positions. SoftIndex rows are now divided by their sums (each value is a weighted mean
    of the inputs). These rows broke the order by up to 8e-5 before."""
    with jax.enable_x64(True):
        cases = {  # standardize: (rows, softness of each row)
            True: ([[3.0, 0.56695976, 3.0, 3.0, 3.0], [3.8143, 3.8143, 0.5, 3.30359313, 3.8143]],
                   [0.8242187, 0.0604246]),
            False: ([[0.5, 1.0, -0.0, 1.0, -0.0], [0.592787432, 1.18657276e-30, 0.5, 0.5, 0.0]],
                    [0.6461929, 0.0543153]),
        }
        for standardize, (x, s) in cases.items():
            x, s = jnp.asarray(x, jnp.float64), jnp.asarray(s, jnp.float64)
            kwargs = dict(mode=mode, method="ot", standardize=standardize)

            def rows(op, x=x, s=s, kwargs=kwargs):  # one softness per row
                each = jax.vmap(lambda xr, sr: op(xr, softness=sr, **kwargs))
                return np.asarray(jax.jit(each)(x, s))

            values = rows(soft_ops.sort)  # (2, 5)
            assert np.all(np.diff(values) >= -1e-14 * np.abs(values).max()), (mode, values)
            if mode == "c0":
                index = rows(soft_ops.argsort)  # (2, 5, 5)
                np.testing.assert_allclose(index.sum(-1), 1.0, atol=1e-14)
                expected = np.einsum("bji,bi->bj", index, np.asarray(x))
                np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-14)
