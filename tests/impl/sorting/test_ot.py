"""Optimal-transport kernels (`method="ot"`): SoftJAX numbers, doubly stochastic plans,
limits, derivatives and the float32 edge cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("ott")
pytest.importorskip("optimistix")

from diffbio.core.soft_ops._impl.sorting import _ot_plan, ot  # noqa: E402
from diffbio.core.soft_ops._impl.sorting._common import convex_combination  # noqa: E402

MODES = ("smooth", "c0", "c1", "c2")
X = [0.3, -1.2, 0.8, 0.5, 2.0, -0.4]
S = 0.3
TIGHT = {"tol": 1e-12, "max_iter": 100000, "cg_tol": 1e-13}

# SoftJAX 0.1.1 in float64 (`jax_enable_x64`) with ot_kwargs sinkhorn_tol = lbfgs_tol =
# 1e-13 on X at softness 0.3: `sort`, `rank(descending=False)`, `argmax`,
# `top_k(k=2)` and `argquantile(q=0.3)`.
SOFTJAX = {
    "smooth": {
        "sort": [
            -0.250382923,
            -0.03244899848,
            0.2043117598,
            0.4505263112,
            0.6962491946,
            0.9317446558,
        ],
        "rank": [3.476736992, 2.437879322, 3.918002147, 3.657831304, 4.622670969, 2.886879266],
        "argmax": [
            0.09717997163,
            0.01294755674,
            0.1972357666,
            0.1308058649,
            0.5279704023,
            0.03386043793,
        ],
        "top_k": [1.186732113, 0.6385170291],
        "argquantile": [
            0.1799730104,
            0.2016045653,
            0.1498262718,
            0.1683230852,
            0.09513242944,
            0.2051406428,
        ],
    },
    "c0": {
        "sort": [-1.042540019, -0.5340841862, 0.3412394392, 0.5170368659, 0.7183478993, 2.0],
        "rank": [3.28968218, 1.196824977, 4.727826331, 3.949097495, 6.0, 1.836569017],
        "argmax": [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "top_k": [2.0, 0.7602929615],
        "argquantile": [0.3337765966, 0.00431122624, 0.0, 0.1662234132, 0.0, 0.4956887673],
    },
    "c1": {
        "sort": [
            -0.9657268751,
            -0.5009186848,
            0.263966549,
            0.5266770475,
            0.8908217362,
            1.785180203,
        ],
        "rank": [3.317853245, 1.292841404, 4.762167353, 3.914188374, 5.821099633, 1.891850031],
        "argmax": [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "top_k": [2.0, 0.6944045211],
        "argquantile": [0.2848369943, 0.1057450657, 0.04841948595, 0.1667435512, 0.0, 0.3942549191],
    },
    "c2": {
        "sort": [-0.965141718, -0.482346263, 0.2578025041, 0.5256118357, 0.9026404306, 1.761433229],
        "rank": [3.363661205, 1.2945367, 4.711567115, 3.912827729, 5.805609613, 1.911797642],
        "argmax": [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "top_k": [1.982608779, 0.7054905859],
        "argquantile": [0.2824067606, 0.1082245919, 0.05358046207, 0.1640127975, 0.0, 0.3917753886],
    },
}


def _from_argsort(p, x):
    """`(sort, rank)` from a soft permutation `p` `(..., n, n)` (rows = sorted positions),
    as `ot.sort` and `ot.rank` compute them."""
    n = p.shape[-1]
    ranks = jnp.einsum("...ji,j->...i", p, jnp.arange(1, n + 1, dtype=p.dtype))
    return p @ x[..., None], ranks / jnp.sum(p, axis=-2)


def _selections(x, s, mode, options):
    """`argmax`, `top_k` (values and index) and `argquantile(q = 0.3)` (n = 6: rows 1, 2)."""
    rows = ot.rows(x, jnp.array([1, 2]), s, mode, options=options)
    values, index = ot.top_k(x, 2, s, mode, options=options)
    return {
        "argmax": ot.argmax(x, s, mode, options=options),
        "top_k": values,
        "top_k_index": index,
        "argquantile": 0.5 * rows[..., 0, :] + 0.5 * rows[..., 1, :],
    }


_SLOW = pytest.mark.slow
QUICK_MODES = ("smooth", *(pytest.param(m, marks=_SLOW) for m in ("c0", "c1", "c2")))
"""`make test` runs smooth; the p-norm modes (one dual solver) run in `make test-full`."""


def _loss_rows(p, x):
    """Per-row scalar from a soft permutation: weighted soft sort plus weighted ranks."""
    values, ranks = _from_argsort(p, x)
    weights = jnp.cos(jnp.arange(x.shape[-1], dtype=x.dtype))
    return jnp.sum(weights * values[..., 0], -1) + jnp.sum(weights[::-1] * ranks, -1)


@pytest.mark.parametrize("mode", QUICK_MODES)
def test_float64_matches_softjax_and_finite_differences(mode, cheap_jit):
    """SoftJAX's numbers, and reverse- and forward-mode derivatives (in x and in the
    softness) against central differences, from one forward compile per mode."""
    with jax.enable_x64(True):
        x = jnp.asarray(X, jnp.float64)
        h = 1e-6
        batch = jnp.asarray(np.concatenate([[X], X + h * np.eye(6), X - h * np.eye(6)]))

        def forward(xb, s):
            p = ot.argsort(xb, s, mode, options=TIGHT)  # (13, 6, 6)
            values, ranks = _from_argsort(p[:1], xb[:1])
            extra = _selections(xb[0], s, mode, TIGHT)
            return dict(extra, sort=values[0, :, 0], rank=ranks[0], loss=_loss_rows(p, xb))

        got = cheap_jit(("x64", mode), forward, batch, jnp.float64(S))
        for key, want in SOFTJAX[mode].items():
            np.testing.assert_allclose(got[key], want, atol=2e-7, err_msg=key)
        np.testing.assert_allclose(got["top_k"], got["top_k_index"] @ x, atol=1e-12)
        fd_x = (got["loss"][1:7] - got["loss"][7:]) / (2 * h)
        up = cheap_jit(("x64", mode), forward, batch, jnp.float64(S + h))["loss"][0]
        down = cheap_jit(("x64", mode), forward, batch, jnp.float64(S - h))["loss"][0]
        fd_s = (up - down) / (2 * h)

        def derivatives(x, s, t):
            loss = lambda x, s: _loss_rows(ot.argsort(x, s, mode, options=TIGHT), x)  # noqa: E731
            gx, gs = jax.grad(loss, (0, 1))(x, s)
            return gx, gs, jax.jvp(lambda x: loss(x, s), (x,), (t,))[1]

        tangent = jnp.asarray(np.cos(np.arange(6.0)))
        gx, gs, jvp = cheap_jit(("x64-grad", mode), derivatives, x, jnp.float64(S), tangent)
        np.testing.assert_allclose(gx, fd_x, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gs, fd_s, rtol=1e-4, atol=1e-5)  # iterative dual
        np.testing.assert_allclose(jvp, fd_x @ np.asarray(tangent), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", QUICK_MODES)
def test_float32_plans_limits_and_gradients(mode, cheap_jit):
    """Default options in float32: doubly stochastic plans with ties and a constant row,
    sorted values inside [min, max], the hard limit at small softness, and finite
    gradients (in x and in a traced softness) at ties and constant rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7)).astype(np.float32)
    x[1, :4] = 0.5  # ties
    x[2] = 1.25  # constant row
    distinct = np.array([[0.3, -1.2, 0.8, 0.5, 2.0, -0.4, 1.4]], np.float32)

    def run(x, distinct, s):
        grads = jax.grad(lambda x, s: jnp.sum(_loss_rows(ot.argsort(x, s, mode), x)), (0, 1))(x, s)
        return ot.argsort(x, s, mode), ot.argsort(distinct, 1e-3, mode), grads

    p, sharp, (gx, gs) = cheap_jit(
        ("f32", mode), run, jnp.asarray(x), jnp.asarray(distinct), jnp.float32(S)
    )
    p = np.asarray(p)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-4)
    assert (p >= 0).all()
    values, ranks = (np.asarray(a) for a in _from_argsort(jnp.asarray(p), jnp.asarray(x)))
    values = values[..., 0]
    margin = 2e-4 * np.abs(x).max()
    lo, hi = x.min(-1, keepdims=True) - margin, x.max(-1, keepdims=True) + margin
    assert ((values >= lo) & (values <= hi)).all()
    assert (np.diff(values, axis=-1) >= -margin).all()  # non-decreasing
    np.testing.assert_allclose(values[2], 1.25, atol=1e-5)
    assert ((ranks >= 1 - 1e-3) & (ranks <= 7 + 1e-3)).all()
    np.testing.assert_allclose(ranks[2], 4.0, atol=1e-3)  # a constant row: all tied
    np.testing.assert_allclose(sharp, ot.argsort(distinct, 1e-3, "hard"), atol=1e-3)
    assert np.isfinite(gx).all() and np.isfinite(gs)


@pytest.mark.slow
def test_float32_selections_are_distributions(cheap_jit):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6)), jnp.float32)
    got = cheap_jit("sel", lambda x: _selections(x, S, "c0", None), x)
    for key in ("argmax", "argquantile"):
        np.testing.assert_allclose(got[key].sum(-1), 1.0, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(got["top_k_index"].sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(
        got["top_k"], jnp.einsum("bkn,bn->bk", got["top_k_index"], x), atol=1e-5
    )


@pytest.mark.parametrize("mode", ["smooth", pytest.param("c2", marks=_SLOW)])
def test_conjugate_gradient_path_matches_finite_differences(mode, cheap_jit):
    """n > 64 solves the implicit system by preconditioned CG instead of densely (for the
    entropy with the plan itself as the weights, scaled by 1/s)."""
    with jax.enable_x64(True):
        n = 70
        x = jnp.asarray(np.random.default_rng(1).normal(size=n))
        opts = dict(TIGHT, cg_tol=1e-12)
        weights = jnp.asarray(np.sin(np.arange(n)))
        h = 1e-6
        i = np.arange(0, n, 7)
        bumps = np.eye(n)[i] * h

        def run(x, batch):
            loss = lambda x: jnp.sum(weights * ot.sort(x, 0.1, mode, options=opts), -1)  # noqa: E731
            return jax.grad(loss)(x), loss(batch)

        grad, values = cheap_jit(("cg", mode), run, x, jnp.concatenate([x + bumps, x - bumps]))
        fd = (values[: len(i)] - values[len(i) :]) / (2 * h)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-4, atol=1e-6)


def test_sorted_values_read_the_plan_down_its_columns():
    """`sort` takes `Σ_i Γ_ij (x_i − m) / Σ_i Γ_ij + m` from the plan without transposing
    it: the same as the SoftIndex rows `n Γᵀ` divided by their sums, applied to `x`,
    including a column too light to be divided (mass ≤ 1/2 after scaling by n)."""
    rng = np.random.default_rng(4)
    n = 6
    plan = jnp.asarray((0.5 + rng.random((2, n, n))) / n**2, jnp.float32)  # (B, inputs, positions)
    plan = plan.at[1, :, 2].set(0.05 / n**2)  # a light column
    x = jnp.asarray(rng.normal(size=(2, n)) * 10.0, jnp.float32)
    rows = ot._distributions(jnp.swapaxes(n * plan, -1, -2))  # (B, positions, inputs)
    expected = convex_combination(rows, x)
    np.testing.assert_allclose(ot._sorted_values(plan, x), expected, rtol=1e-5, atol=1e-5)

    def transposed(p, x):
        return convex_combination(ot._distributions(jnp.swapaxes(n * p, -1, -2)), x)

    def grad_of(f):
        return jax.grad(lambda p, x: jnp.sum(jnp.cos(f(p, x))), (0, 1))(plan, x)

    grads = (grad_of(ot._sorted_values), grad_of(transposed))
    for ours, reference in zip(*grads, strict=True):
        np.testing.assert_allclose(
            ours, reference, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(reference)))
        )


def test_jit_and_vmap_agree(cheap_jit):
    x = jnp.array([[0.3, -1.2, 0.8, 0.5], [2.0, -0.4, 0.1, 0.1]], jnp.float32)

    def run(x):
        f = lambda r: ot.rank(r, 0.2, "smooth")  # noqa: E731
        return f(x), jax.vmap(f)(x), f(x[None])[0]

    batched, mapped, leading = cheap_jit("jit-vmap", run, x)
    np.testing.assert_allclose(mapped, batched, atol=1e-6)
    np.testing.assert_allclose(leading, batched, atol=1e-6)


@pytest.mark.slow
def test_eager_equals_jit():
    x = jnp.array([[0.3, -1.2, 0.8, 0.5], [2.0, -0.4, 0.1, 0.1]], jnp.float32)
    np.testing.assert_allclose(
        ot.rank(x, 0.2, "smooth"), jax.jit(lambda x: ot.rank(x, 0.2, "smooth"))(x), atol=1e-6
    )


def test_small_n_and_traced_softness(cheap_jit):
    def run(x1, x2, s):
        return (
            ot.sort(x1, s, "smooth"),
            ot.argmax(x1, s, "c1"),
            ot.argsort(x2, s, "smooth"),
            jax.grad(lambda s: jnp.sum(ot.sort(x2, s, "smooth") * jnp.arange(2.0)))(s),
        )

    x1, x2 = jnp.array([[0.7]]), jnp.array([[0.7, -0.2]])
    s1, a1, p2, gs = cheap_jit("small", run, x1, x2, jnp.float32(0.1))
    np.testing.assert_allclose(s1, x1)
    np.testing.assert_allclose(a1, 1.0)
    np.testing.assert_allclose(p2.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(p2.sum(-2), 1.0, atol=1e-4)
    assert p2[0, 0, 1] > 0.5  # the smaller input comes first
    assert np.isfinite(gs) and gs < 0  # more softness mixes the two values


def test_hard_mode_and_validation():
    x = jnp.array([[0.3, -1.2, 0.8, 0.8]])
    np.testing.assert_array_equal(ot.sort(x, 0.1, "hard", descending=True), -jnp.sort(-x))
    np.testing.assert_array_equal(ot.rank(x, 0.1, "hard"), [[2.0, 1.0, 3.5, 3.5]])
    np.testing.assert_array_equal(ot.argsort(x, 0.1, "hard")[0, 0], [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(ot.rows(x, jnp.array([0, 3]), 0.1, "hard")[0, 1], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="Invalid mode"):
        ot.sort(x, 0.1, "sharp")
    with pytest.raises(ValueError, match="k must satisfy"):
        ot.top_k(x, 5, 0.1)
    with pytest.raises(ValueError, match="valid keys are"):
        ot.sort(x, 0.1, options={"max_iterations": 10})
    with pytest.raises(ValueError, match="only True"):
        ot.sort(x, 0.1, options={"implicit_diff": False})
    opts = _ot_plan.parse_options(
        {"sinkhorn_max_iter": 7, "lbfgs_tol": 1e-3, "implicit_diff": True}
    )
    assert opts["sinkhorn_max_iter"] == 7 and opts["lbfgs_tol"] == 1e-3
    assert _ot_plan.parse_options({"tol": 1e-6})["sinkhorn_tol"] == 1e-6


@pytest.mark.slow  # scale (n = 4096): `make test-full`
@pytest.mark.parametrize("mode", ["smooth", "c1"])
def test_float32_n4096_finite(mode, cheap_jit):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4096)), jnp.float32)
    x = x.at[0, :100].set(0.5)  # ties
    loss = lambda x: jnp.sum(jnp.sin(ot.sort(x, 0.1, mode)))  # noqa: E731
    value, grad = cheap_jit(("n4096", mode), jax.value_and_grad(loss), x)
    assert np.isfinite(value) and np.isfinite(grad).all()
