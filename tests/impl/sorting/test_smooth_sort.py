"""`smooth_sort` kernels: reference solutions, SoftJAX's numbers, invariants and
derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _esp, smooth_sort

X = [0.3, -1.2, 0.8, 0.5, 2.0, -0.4]
TIGHT = {"tol": 1e-12, "max_iter": 5000, "cg_tol": 1e-13}

# The exact optimum (float64 Newton on the same dual, with SoftJAX 0.1.1's smooth bounds).
NEWTON = {
    0.3: {
        "sort": [
            -0.869929970701,
            -0.316642026276,
            0.128060838875,
            0.524900230591,
            0.961914299163,
            1.57169662835,
        ],
        "rank": [
            3.27897755893,
            0.145729606163,
            4.6988605621,
            3.9067428483,
            6.93697075074,
            2.03271867376,
        ],
    },
    2.0: {
        "sort": [
            -1.27676277571,
            -0.614974325793,
            0.0121761291965,
            0.643231262643,
            1.2795528481,
            1.95677686156,
        ],
        "rank": [
            2.36594092031,
            -3.33466371461,
            7.1475501749,
            4.68642008705,
            10.3951191602,
            -0.260366627855,
        ],
    },
}
# SoftJAX 0.1.1 `sort` / `rank(descending=False)` with `method="smooth_sort"` in float64:
# its L-BFGS stops at its fixed tolerance (rtol = atol = 1e-5), within 1e-4 of the optimum.
SOFTJAX = {
    0.3: {
        "sort": [-0.8699292048, -0.3166401522, 0.128062307, 0.5248997136, 0.961912872, 1.571696001],
        "rank": [3.27897799, 0.1457399774, 4.698856945, 3.906741135, 6.936970229, 2.032723824],
    },
    2.0: {
        "sort": [
            -1.276750201,
            -0.6149643143,
            0.01218178639,
            0.6432317054,
            1.279548239,
            1.956768889,
        ],
        "rank": [2.365960688, -3.33460034, 7.147538982, 4.68642671, 10.39507749, -0.2603293482],
    },
}


def _log_esp(u, size):
    """`log e_0 … log e_size` of `exp(u)` by the plain log-domain recurrence (float64;
    `−inf` beyond `len(u)`)."""
    log_e = np.full(size + 1, -np.inf)
    log_e[0] = 0.0
    for value in np.asarray(u, np.float64):
        log_e = np.logaddexp(log_e, value + np.concatenate([[-np.inf], log_e[:-1]]))
    return log_e


def _log_ratios_reference(u):
    """`log e_k − log e_{k−1}` by the plain log-domain recurrence (float64)."""
    log_e = _log_esp(u, len(u))
    return log_e[1:] - log_e[:-1]


def test_esp_log_ratios_in_float32():
    rng = np.random.default_rng(0)
    for n in (1, 2, 9, 40):
        for tau in (1.0, 0.01):
            w = rng.normal(size=n)
            w[: n // 3] = w[0]  # ties
            got = jax.jit(_esp.log_ratios)(jnp.asarray(w / tau, jnp.float32))
            want = _log_ratios_reference(w / tau)
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * np.abs(want).max())


def _inclusion_reference(u):
    """`∂ log(e_k / e_{k−1}) / ∂u_i` `(n, n)`: `π_{k,i} − π_{k−1,i}` with `π_{k,i} =
    t_i e_{k−1}(u without i) / e_k`, every `e` by the float64 log-domain recurrence."""
    u = np.asarray(u, np.float64)
    n = len(u)
    full = _log_esp(u, n)
    pi = np.zeros((n + 1, n))
    for i in range(n):
        rest = _log_esp(np.delete(u, i), n)
        pi[1:, i] = np.exp(u[i] + rest[:-1] - full[1:])
    return pi[1:] - pi[:-1]


def test_esp_log_ratios_across_blocks_with_ties():
    """Rows longer than one block of inputs (8), with tied runs, in float32 and float64."""
    rng = np.random.default_rng(5)
    for n, scale in ((8, 1.0), (9, 30.0), (100, 10.0)):
        u = rng.normal(size=(2, n)) * scale
        u[:, 2:5] = u[:, 2:3]
        want = np.stack([_log_ratios_reference(row) for row in u])
        got = jax.jit(_esp.log_ratios)(jnp.asarray(u, jnp.float32))
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
        with jax.enable_x64(True):
            got = _esp.log_ratios(jnp.asarray(u))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_esp_derivatives_are_the_inclusion_probabilities():
    """Forward and reverse mode against `π_{k,i} − π_{k−1,i}` (float64), for rows whose
    `ρ` falls slowly (one exponential per input and block) and by more than 40 within a
    block (one per entry), with ties, at 1e30 (where `ρ_k` rounds to `u_k` and only
    the offsets tell the sides apart) and with a batch dimension."""
    rng = np.random.default_rng(6)
    rows = [rng.normal(size=13), rng.normal(size=13) * 300.0, rng.normal(size=13) * 2e30]
    for row in rows:
        row[3] = row[5]
        row[7:10] = row[7]
    u = np.stack(rows)  # (3, 13)
    with jax.enable_x64(True):
        f = lambda v: _esp.log_ratios(v[None])[0]  # noqa: E731
        # at 1e30 the reference's log-domain sums cancel every digit: its limit, the
        # same order pattern 100 apart (e^−100 is below float64 resolution), stands in
        dense = np.unique(rows[2], return_inverse=True)[1] * 100.0
        references = [
            _inclusion_reference(rows[0]),
            _inclusion_reference(rows[1]),
            _inclusion_reference(dense),
        ]
        jacobians = jax.jit(lambda v: (jax.jacrev(f)(v), jax.jacfwd(f)(v)))  # one compile
        for row, want in zip(u, references, strict=True):
            reverse, forward = jacobians(jnp.asarray(row))
            np.testing.assert_allclose(reverse, want, atol=1e-10)
            np.testing.assert_allclose(forward, want, atol=1e-10)
        weights = jnp.asarray(rng.normal(size=u.shape))
        grad = jax.grad(lambda v: jnp.sum(weights * _esp.log_ratios(v)))(jnp.asarray(u))
        for want, w, g in zip(references, np.asarray(weights), np.asarray(grad), strict=True):
            np.testing.assert_allclose(g, w @ want, atol=1e-10)


def test_esp_gradient_in_float32():
    """Float32 gradients at n = 300 (|u| up to 40) agree with float64 to 2e-5 of their
    largest entry."""
    rng = np.random.default_rng(7)
    u = rng.normal(size=(2, 300)) * 10.0
    weights = rng.normal(size=u.shape)

    def grad(u, w):
        return jax.grad(lambda v: jnp.sum(w * _esp.log_ratios(v)))(u)

    g32 = jax.jit(grad)(jnp.asarray(u, jnp.float32), jnp.asarray(weights, jnp.float32))
    with jax.enable_x64(True):
        g64 = np.asarray(grad(jnp.asarray(u), jnp.asarray(weights)))
    np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-5 * np.abs(g64).max())


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_esp_geometric_log_ratios_match_the_recurrence(dtype):
    """The closed form for `u = (0, a, …, (n − 1)·a)` (q-binomial theorem) against the
    float64 log-domain recurrence, over step sizes from 1e-3 to 1e4."""
    rtol = 2e-6 if dtype == jnp.float32 else 1e-11  # the reference recurrence: ~1e-12
    with jax.enable_x64(dtype == jnp.float64):
        for n in (1, 2, 5, 40, 300):
            for step in (1e-3, 0.05, 1.0, 30.0, 1e4):
                want = _log_ratios_reference(np.arange(n) * step)
                got = np.asarray(_esp.geometric_log_ratios(n, jnp.asarray(step, dtype)))
                np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
        # one step per row
        steps = jnp.asarray([[0.1], [2.0]], dtype)
        got = np.asarray(_esp.geometric_log_ratios(6, steps))
        for row, step in enumerate((0.1, 2.0)):
            want = _log_ratios_reference(np.arange(6) * step)
            np.testing.assert_allclose(got[row], want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_rank_bounds_in_closed_form_equal_the_recurrence():
    """rank's anchors take the closed-form bounds; the projection equals the one whose
    bounds come from the recurrence, for a shared softness and one per row."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(3, 9)), jnp.float32)
    n = x.shape[-1]
    w = jnp.arange(1, n + 1, dtype=jnp.float32) / (n - 1)
    opts = smooth_sort.parse_options(None)
    per_row = jnp.asarray([[0.01], [0.3], [2.0]], jnp.float32)

    @jax.jit  # compiled once for the shared softness, once for the per-row one
    def both(x, s):
        closed = smooth_sort._project(x, w, s, opts, anchors=True)
        return closed, smooth_sort._project(x, jnp.broadcast_to(w, x.shape), s, opts)

    for s in (jnp.float32(0.05), jnp.float32(0.7), per_row):
        closed, recurrence = both(x, s)
        np.testing.assert_allclose(np.asarray(closed), np.asarray(recurrence), rtol=0, atol=1e-5)


def test_float64_optimum_and_softjax(cheap_jit):
    """Sorted values and ranks against the Newton optimum and SoftJAX's numbers."""
    with jax.enable_x64(True):
        x = jnp.asarray(X, jnp.float64)
        for s, want in NEWTON.items():
            got = cheap_jit(
                "x64",
                lambda x, s: (
                    smooth_sort.sort(x, s, options=TIGHT),
                    smooth_sort.rank(x, s, options=TIGHT),
                ),
                x,
                jnp.float64(s),
            )
            np.testing.assert_allclose(got[0], want["sort"], atol=1e-10)
            np.testing.assert_allclose(got[1], want["rank"], atol=1e-9)
            np.testing.assert_allclose(got[0], SOFTJAX[s]["sort"], atol=1e-4)
            np.testing.assert_allclose(got[1], SOFTJAX[s]["rank"], atol=1e-4)


# The generated conformance rows check smooth_sort's float64 finite differences (`rank`)
# in `make test`; this one (sort and rank, forward mode too) in `make test-full`.
@pytest.mark.slow
def test_float64_gradients_match_finite_differences(cheap_jit):
    """Reverse mode (in x and in the softness) and forward mode against central
    differences, with the solver run to a tolerance far below the step."""
    with jax.enable_x64(True):
        x = jnp.asarray(X, jnp.float64)
        weights = jnp.cos(jnp.arange(6.0))

        def loss(x, s):
            values = smooth_sort.sort(x, s, options=TIGHT)
            ranks = smooth_sort.rank(x, s, descending=True, options=TIGHT)
            return jnp.sum(weights * values, -1) + jnp.sum(weights[::-1] * ranks, -1)

        h = 1e-6
        batch = jnp.asarray(np.concatenate([X + h * np.eye(6), X - h * np.eye(6)]))
        tangent = jnp.asarray(np.sin(np.arange(6.0)))

        def derivatives(x, s, batch, t):
            gx, gs = jax.grad(loss, (0, 1))(x, s)
            jvp = jax.jvp(lambda x: loss(x, s), (x,), (t,))[1]
            bumped = loss(jnp.stack([x, x]), jnp.stack([s + h, s - h])[:, None])
            return gx, gs, jvp, loss(batch, s), bumped

        gx, gs, jvp, values, bumped = cheap_jit(
            "x64-fd", derivatives, x, jnp.float64(0.3), batch, tangent
        )
        fd_x = (values[:6] - values[6:]) / (2 * h)
        np.testing.assert_allclose(gx, fd_x, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gs, (bumped[0] - bumped[1]) / (2 * h), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(jvp, fd_x @ np.asarray(tangent), rtol=1e-6, atol=1e-7)


def test_float32_invariants_limits_and_gradients(cheap_jit):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 9)).astype(np.float32)
    x[1, :5] = 0.5  # ties
    x[2] = -0.75  # constant row

    def run(x, s):
        grads = jax.grad(lambda x, s: jnp.sum(jnp.sin(smooth_sort.sort(x, s))), (0, 1))(x, s)
        return (
            smooth_sort.sort(x, s),
            smooth_sort.rank(x, s),
            smooth_sort.top_k(x, 3, s)[0],
            smooth_sort.sort(x, 1e-3),
            grads,
        )

    values, ranks, top, sharp, (gx, gs) = cheap_jit("f32", run, jnp.asarray(x), jnp.float32(0.3))
    n = x.shape[-1]
    np.testing.assert_allclose(values.sum(-1), x.sum(-1), rtol=1e-5, atol=1e-5)  # Σ y = Σ x
    np.testing.assert_allclose(ranks.sum(-1), n * (n + 1) / 2, rtol=1e-5)
    assert (np.diff(np.asarray(values), axis=-1) >= -1e-5).all()
    # a constant row is spread symmetrically about its value: the smooth bounds of equal
    # inputs exceed the hard ones by τ log C(n, k)
    np.testing.assert_allclose(values[2] + values[2, ::-1], -1.5, atol=1e-4)
    np.testing.assert_allclose(top, np.asarray(values)[:, ::-1][:, :3], atol=1e-6)
    np.testing.assert_allclose(sharp[0], np.sort(x[0]), atol=1e-3)  # distinct inputs
    np.testing.assert_allclose(sharp, np.sort(x, -1), atol=1e-2)  # ties spread by ~τ log n
    assert np.isfinite(gx).all() and np.isfinite(gs)


def test_jit_vmap_small_n_and_top_k(cheap_jit):
    x = jnp.array([[0.3, -1.2, 0.8, 0.5], [2.0, -0.4, 0.1, 0.1]], jnp.float32)

    def run(x, x1, x2):
        f = lambda r: smooth_sort.sort(r, 0.2)  # noqa: E731
        return f(x), jax.vmap(f)(x), f(x1), smooth_sort.rank(x2, 0.2)

    batched, mapped, one, rank_two = cheap_jit(
        "small", run, x, jnp.array([[0.7]]), jnp.array([[0.7, -0.2]])
    )
    # a batch is solved jointly, so rows agree to the solver tolerance, not bitwise
    np.testing.assert_allclose(mapped, batched, atol=5e-5)
    np.testing.assert_allclose(one, [[0.7]])
    assert rank_two[0, 0] > rank_two[0, 1]
    np.testing.assert_allclose(rank_two.sum(), 3.0, atol=2e-5)
    values, index = smooth_sort.top_k(x, 2, 0.2, "hard")
    assert index is None
    np.testing.assert_array_equal(values, jax.lax.top_k(x, 2)[0])


@pytest.mark.slow
def test_eager_equals_jit():
    x = jnp.array([[0.3, -1.2, 0.8, 0.5]], jnp.float32)
    np.testing.assert_allclose(
        smooth_sort.rank(x, 0.2), jax.jit(lambda x: smooth_sort.rank(x, 0.2))(x), atol=1e-6
    )


def test_modes_and_options_are_validated():
    x = jnp.array([[0.3, -1.2, 0.8]])
    for mode in ("c0", "c1", "c2"):
        with pytest.raises(ValueError, match="smooth_sort supports mode='smooth' only"):
            smooth_sort.sort(x, 0.1, mode)
        with pytest.raises(ValueError, match="smooth_sort supports mode='smooth' only"):
            smooth_sort.rank(x, 0.1, mode)
    with pytest.raises(ValueError, match="Invalid mode"):
        smooth_sort.top_k(x, 1, 0.1, "soft")
    with pytest.raises(ValueError, match="k must satisfy"):
        smooth_sort.top_k(x, 4, 0.1)
    with pytest.raises(ValueError, match="valid keys are"):
        smooth_sort.sort(x, 0.1, options={"sinkhorn_tolerance": 1e-3})
    # the Sinkhorn keys of method="ot" are ignored, so one ot_kwargs serves both methods
    assert smooth_sort.parse_options({"sinkhorn_tol": 1e-3}) == smooth_sort.DEFAULTS
    assert smooth_sort.parse_options({"lbfgs_max_iter": 9})["max_iter"] == 9
    np.testing.assert_array_equal(
        smooth_sort.rank(x, 0.1, "hard", descending=True), [[2.0, 3.0, 1.0]]
    )


@pytest.mark.slow  # scale (n = 4096): `make test-full`
def test_float32_n4096_finite(cheap_jit):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4096)), jnp.float32)
    x = x.at[0, :100].set(0.5)  # ties
    loss = lambda x: jnp.sum(jnp.sin(smooth_sort.sort(x, 0.1)))  # noqa: E731
    value, grad = cheap_jit("n4096", jax.value_and_grad(loss), x)
    assert np.isfinite(value) and np.isfinite(grad).all()
