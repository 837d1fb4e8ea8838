"""NeuralSort kernels against their closed forms (NumPy, float64)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _common, _neuralsort_band, neuralsort
from diffbio.core.soft_ops._impl.sorting._abs_sums import abs_row_sums
from tests._profile import quick_only

S = 0.3


def _softmax(v):
    e = np.exp(v - v.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _closed_form(z, s):
    """Descending NeuralSort matrix with the smooth soft abs `d · tanh(d / 2s)`."""
    n = z.shape[-1]
    d = z[..., :, None] - z[..., None, :]  # (..., i, j)
    a_sums = (d * np.tanh(d / (2 * s))).sum(-2)  # (..., j)
    coef = n + 1 - 2 * np.arange(1, n + 1)  # r-th largest
    return _softmax((coef[:, None] * z[..., None, :] - a_sums[..., None, :]) / s), a_sums


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(3, 6))


def test_smooth_matches_closed_form(x):
    desc, a_sums = _closed_form(x, S)  # standardize=False: P is built from x itself
    asc = desc[..., ::-1, :]
    xj = jnp.asarray(x, dtype=jnp.float32)
    args = (S, "smooth", False, False)
    np.testing.assert_allclose(neuralsort.abs_row_sums(xj, S, "smooth"), a_sums, atol=1e-5)
    np.testing.assert_allclose(neuralsort.argsort(xj, *args), asc, atol=1e-5)
    np.testing.assert_allclose(
        neuralsort.sort(xj, *args), (asc * x[..., None, :]).sum(-1), atol=1e-5
    )
    ranks = (np.arange(1, 7)[:, None] * asc).sum(-2) / asc.sum(-2)
    np.testing.assert_allclose(neuralsort.rank(xj, *args), ranks, atol=1e-4)
    np.testing.assert_allclose(
        neuralsort.argmax(xj, S, "smooth", False), desc[..., 0, :], atol=1e-5
    )
    values, index = neuralsort.top_k(xj, 2, S, "smooth", False)
    np.testing.assert_allclose(index, desc[..., :2, :], atol=1e-5)
    np.testing.assert_allclose(values, (desc[..., :2, :] * x[..., None, :]).sum(-1), atol=1e-5)


def test_standardize_builds_the_matrix_from_z(x):
    z = jnp.asarray(_common.standardize(jnp.asarray(x)))
    xj = jnp.asarray(x, dtype=jnp.float32)
    perm = neuralsort.argsort(xj, S, "c1", False, True)
    np.testing.assert_allclose(perm, neuralsort.argsort(z, S, "c1", False, False), atol=1e-6)
    np.testing.assert_allclose(
        neuralsort.sort(xj, S, "c1"), _common.weighted_sum(perm, xj), atol=1e-5
    )


def test_blocked_rows_match_full_matrix(monkeypatch):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 13)), dtype=jnp.float32)

    def everything(x):
        sort_grad = jax.grad(lambda x: jnp.sum(jnp.sin(neuralsort.sort(x, S, "c2"))))(x)
        a_sums = neuralsort.abs_row_sums(x, S, "c2")
        return a_sums, neuralsort.sort(x, S, "c2"), neuralsort.rank(x, S, "c2"), sort_grad

    full = jax.jit(everything)(x)  # 13 rows fit in one block
    monkeypatch.setattr(_common, "_MAX_BLOCK_ROWS", 4)
    monkeypatch.setattr(_common, "_MIN_BLOCK_ROWS", 4)
    blocked = jax.jit(everything)(x)  # 4 blocks of 4 rows, the last padded
    for name, b, f in zip(("a", "sort", "rank", "grad"), blocked, full, strict=True):
        np.testing.assert_allclose(b, f, atol=1e-5, err_msg=name)


def test_rank_of_a_column_with_no_mass_is_its_exact_rank():
    # In c0 mode with a wide soft abs, NeuralSort gives the isolated maximum (index 4) no
    # mass in any row; its rank falls back to the exact one instead of 0/0.
    z = jnp.array([0.696, 0.422, 0.378, 0.378, 0.882, 0.22, 0.434])
    perm, ranks, grad = jax.jit(
        lambda z: (
            neuralsort.argsort(z, 0.1, "c0", False, False),
            neuralsort.rank(z, 0.1, "c0", False, False),
            jax.grad(lambda z: neuralsort.rank(z, 0.1, "c0").sum())(z),
        )
    )(z)
    assert float(perm[:, 4].sum()) == 0.0
    assert float(ranks[4]) == 7.0
    assert bool(jnp.all((ranks >= 1) & (ranks <= 7)))
    assert bool(jnp.all(jnp.isfinite(grad)))


def _dense_ranks(x, softness, descending):
    """The smooth ranks as the plain ratio `Σ_r r P_rj / Σ_r P_rj` of the full matrix
    (jnp, differentiable), the definition the kernel's log domain and band evaluate."""
    n = x.shape[-1]
    _, s, z, a_sums = neuralsort._setup(x, softness, "smooth", True)
    coef = neuralsort.coefficients(jnp.arange(1, n + 1), n, descending, z.dtype)
    p = jax.nn.softmax(neuralsort.scores(coef, z, a_sums) / s, axis=-1)  # (..., n, n)
    columns = jnp.sum(p, axis=-2)
    return jnp.sum(p * jnp.arange(1, n + 1)[:, None], axis=-2) / columns, columns


@functools.partial(jax.jit, static_argnames=("softness", "descending"))
def _dense_ranks_and_pullback(x, w, softness, descending):
    """`_dense_ranks`, its column sums and its VJP at `w`, compiled as one program."""
    (ranks, columns), pullback = jax.vjp(lambda v: _dense_ranks(v, softness, descending), x)
    return ranks, columns, pullback((w, jnp.zeros_like(columns)))[0]


@pytest.mark.parametrize(  # n = 1024: scale, `make test-full`
    ("n", "band"), [(300, False), pytest.param(1024, True, marks=pytest.mark.slow)]
)
def test_smooth_rank_is_the_column_ratio_where_columns_are_light(n, band):
    """Rows rounded to tenths give columns of little mass (1e-20 at n = 1024): the ranks
    are still the plain column ratio (a floor δ = 1e-10 on the mass moved them by up
    to 5), over three blocks of rows (n = 300) and over the band (n = 1024), with
    gradients in float64 and finite ones in float32."""
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(size=(2, n)), 1)
    w = rng.normal(size=(2, n))
    assert _neuralsort_band.usable(n, 0.1, jnp.float32) == band
    kwargs = {"softness": 0.1, "descending": True}
    with jax.enable_x64(True):
        xj, wj = jnp.asarray(x), jnp.asarray(w)
        want, columns, want_grad = _dense_ranks_and_pullback(xj, wj, **kwargs)
        assert float(columns.min()) < 1e-4  # δ would move such a rank by 1e-3
        assert _common.block_rows((2,), n) < n or band  # several blocks of rows
        got, got_grad = _value_and_grad("rank", xj, wj, **kwargs)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(got_grad, want_grad, rtol=0, atol=1e-9 * np.abs(want_grad).max())
    got32, grad32 = _value_and_grad(
        "rank", jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), **kwargs
    )
    assert np.isfinite(np.asarray(grad32)).all()
    np.testing.assert_allclose(got32, want, rtol=0, atol=2e-6 * n)


def test_ties_give_no_gradient_jump():
    """The soft abs makes the scores smooth through a tie (|·| would kink there)."""
    f = lambda t: neuralsort.sort(jnp.array([0.0, t, 1.0]), S, "smooth", False, False)[1]
    grad = jax.jit(jax.grad(f))
    grads = [float(grad(t)) for t in (-1e-4, 0.0, 1e-4)]
    np.testing.assert_allclose(grads, grads[1], atol=1e-3)


def test_ungated_gradient_is_the_soft_permutation():
    x = jnp.array([0.3, -1.0, 2.0, 0.1])
    jac, perm = jax.jit(
        lambda x: (
            jax.jacrev(lambda x: neuralsort.sort(x, S, gated_grad=False))(x),
            neuralsort.argsort(x, S),
        )
    )(x)
    np.testing.assert_allclose(jac, perm, atol=1e-6)


@pytest.mark.slow  # memory at scale: `make test-full`
def test_sort_and_rank_memory_are_blocked():
    x = jax.ShapeDtypeStruct((32, 4096), jnp.float32)
    for fn in (neuralsort.sort, neuralsort.rank):
        grad = jax.grad(lambda x, fn=fn: jnp.sum(fn(x, 0.1) * jnp.arange(4096.0)))
        stats = jax.jit(grad).lower(x).compile().memory_analysis()
        if stats is None:
            pytest.skip("this backend reports no memory analysis")
        assert stats.temp_size_in_bytes < 128 * 2**20, fn.__name__


# --- the band of sorted columns (smooth mode, n ≥ 1024) ----------------------------------

BAND_N = 1024


def _full_matrix(monkeypatch, fn, *args, **kwargs):
    """`fn` computed with every row over all n columns."""
    with monkeypatch.context() as patch:
        patch.setattr(_neuralsort_band, "usable", lambda *_: False)
        return fn(*args, **kwargs)


def _value_and_grad(op, x, w, **kwargs):
    """The operation's values and the gradient of `Σ w · values`, in one jitted pass."""

    def run(x):
        values, pullback = jax.vjp(lambda x: getattr(neuralsort, op)(x, **kwargs), x)
        return values, pullback(w)[0]

    return jax.jit(run)(x)


@pytest.mark.parametrize(
    ("op", "descending"), [pytest.param("sort", False, marks=pytest.mark.slow), ("rank", True)]
)
def test_band_equals_the_full_matrix_in_float64(monkeypatch, op, descending):
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, BAND_N)))
        w = jnp.asarray(rng.normal(size=(2, BAND_N)))
        xc, s = _common.prepare(x, 0.1)
        z = _common.standardize(xc)
        band = _neuralsort_band.half_width(BAND_N, 0.1, s.dtype)
        assert _neuralsort_band.usable(BAND_N, 0.1, s.dtype)
        a_sums = neuralsort.abs_row_sums(z, s, "smooth")
        assert _neuralsort_band.sort(xc, z, a_sums, s, band, True)[1]  # the band is exact
        kwargs = {"softness": 0.1, "descending": descending}
        got = _value_and_grad(op, x, w, **kwargs)
        want = _full_matrix(monkeypatch, _value_and_grad, op, x, w, **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-9 * float(np.abs(want[1]).max()))


def test_band_descending_without_gated_gradient_in_float32(monkeypatch):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, BAND_N)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(2, BAND_N)), jnp.float32)
    kwargs = {"softness": 0.1, "gated_grad": False, "descending": True}
    got = _value_and_grad("sort", x, w, **kwargs)
    want = _full_matrix(monkeypatch, _value_and_grad, "sort", x, w, **kwargs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-4 * float(np.abs(want[1]).max()))


def test_band_falls_back_to_all_columns_where_it_is_not_exact(monkeypatch):
    """A traced softness sizes the band for 0.1; at softness 4 rows spread over far more
    columns, the exactness check fails, and the result is the full matrix's."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(2, BAND_N)), jnp.float32)
    s = jnp.float32(4.0)
    xc = x
    z = _common.standardize(xc)
    band = _neuralsort_band.half_width(BAND_N, s, s.dtype)  # traced: sized for 0.1
    a_sums = neuralsort.abs_row_sums(z, s, "smooth")
    assert not _neuralsort_band.sort(xc, z, a_sums, s, band, True)[1]
    ranks = jax.jit(lambda x, s: neuralsort.rank(x, s))(x, s)
    want = _full_matrix(monkeypatch, lambda: jax.jit(lambda x, s: neuralsort.rank(x, s))(x, s))
    np.testing.assert_allclose(ranks, want, rtol=1e-6)
    # and the exact ranks are far from it: the fallback is not the band
    assert float(np.abs(np.asarray(ranks) - np.argsort(np.argsort(np.asarray(x))) - 1).max()) > 1


@pytest.mark.slow  # vmap of the band: `make test-full`
def test_band_under_vmap_equals_the_batch():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(3, BAND_N)), jnp.float32)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(lambda r: neuralsort.rank(r, 0.1)))(x), neuralsort.rank(x, 0.1), atol=1e-2
    )


def test_softabs_gap_bounds_the_soft_absolute_value():
    """`|d| − d tanh(d / 2s) ≤ κ s` with `κ = _SOFTABS_GAP`, and `κ` is within 1e-3 of
    the maximum (so the one-pass bound below is not loose by more than that)."""
    u = np.linspace(0.0, 40.0, 400_001)
    gap = u - u * np.tanh(u / 2)  # (|d| − softabs(d)) / s at u = |d| / s
    assert gap.max() <= neuralsort._SOFTABS_GAP
    assert gap.max() >= neuralsort._SOFTABS_GAP - 1e-3


def _log_weights(z, s, descending):
    """`ℓ_rj = log P_rj` of the (ascending or descending) row softmaxes, float64."""
    n = z.shape[-1]
    d = z[..., :, None] - z[..., None, :]
    a_sums = (d * np.tanh(d / (2 * s))).sum(-2)  # (..., j)
    coef = np.arange(1, n + 1) * 2.0 - n - 1
    coef = -coef if descending else coef
    v = (coef[:, None] * z[..., None, :] - a_sums[..., None, :]) / s  # (..., r, j)
    top = v.max(-1, keepdims=True)
    return v - top - np.log(np.exp(v - top).sum(-1, keepdims=True))


@pytest.mark.parametrize("descending", [False, True])
def test_every_column_keeps_the_weight_of_the_one_pass_bound(descending):
    """The bound `_one_pass_is_exact` rests on: each column's largest log-weight is at
    least `−κ (n − 1) − log n`, on rows built to starve columns (ties, a cluster next to
    a gap, values packed at one end, equal rows) and at softness 1e-3 … 10."""
    rng = np.random.default_rng(11)
    n = 48
    rows = [
        rng.uniform(size=n),
        np.round(rng.uniform(size=n), 1),  # ties
        np.concatenate([np.full(n // 2, 0.5), 0.5 + 1e-4 * rng.normal(size=n // 2)]),
        np.concatenate([rng.uniform(0.0, 0.01, n - 3), [0.2, 0.9, 1.0]]),
        np.full(n, 0.3),
        np.sort(rng.uniform(size=n)) ** 8,  # packed at 0
    ]
    floor = -neuralsort._SOFTABS_GAP * (n - 1) - np.log(n)
    for s in (1e-3, 0.05, 0.3, 10.0):
        for z in rows:
            column_max = _log_weights(z, s, descending).max(-2)  # (n,)
            assert column_max.min() >= floor - 1e-9, (s, column_max.min(), floor)


def test_one_pass_is_exact_only_where_the_bound_holds(monkeypatch):
    assert neuralsort._one_pass_is_exact(64, 0.1, jnp.float32)
    assert not neuralsort._one_pass_is_exact(128, 0.1, jnp.float32)
    assert neuralsort._one_pass_is_exact(128, 0.1, jnp.float64)
    assert not neuralsort._one_pass_is_exact(64, 1e-5, jnp.float32)  # rounding of scores
    assert not neuralsort._one_pass_is_exact(64, jnp.float32(0.1), jnp.float32)  # not static
    # unstandardised rows have no bound on |z|: the log domain takes them
    monkeypatch.setattr(neuralsort, "_one_pass_ranks", None)
    x = jnp.asarray(np.random.default_rng(13).normal(size=(2, 64)), jnp.float32)
    ranks = neuralsort.rank(x, 0.1, "smooth", False, False)
    assert bool(jnp.all((ranks >= 1) & (ranks <= 64)))
    with pytest.raises(TypeError):  # and standardised ones the one pass
        neuralsort.rank(x, 0.1, "smooth", False, True)


@pytest.mark.parametrize("descending", quick_only([False, True], [True]))
def test_one_pass_ranks_equal_the_log_domain_ones(monkeypatch, descending):
    """Where it applies (n = 64, standardised, softness 0.1 and 1e-3), the one-pass ranks
    and gradients equal the log domain's in float64 (to 1e-10); in float32 the one-pass
    ranks are no farther from float64 than the log domain's, and its gradients within
    twice their distance (normal and tied rows)."""
    rng = np.random.default_rng(12)
    x = np.stack([rng.normal(size=64), np.round(rng.normal(size=64), 1)])
    w = rng.normal(size=(2, 64))

    def both(dtype, **kwargs):
        xj, wj = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
        one_pass = _value_and_grad("rank", xj, wj, **kwargs)
        with monkeypatch.context() as patch:
            patch.setattr(neuralsort, "_one_pass_is_exact", lambda *a: False)
            log_domain = _value_and_grad("rank", xj, wj, **kwargs)
        return tuple(tuple(np.asarray(a) for a in pair) for pair in (one_pass, log_domain))

    for s in (0.1, 1e-3):
        kwargs = {"softness": s, "descending": descending}
        assert neuralsort._one_pass_is_exact(64, s, jnp.float32)
        with jax.enable_x64(True):
            (got, got_grad), (want, want_grad) = both(jnp.float64, **kwargs)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
        np.testing.assert_allclose(
            got_grad, want_grad, rtol=0, atol=1e-10 * np.abs(want_grad).max()
        )
        (got32, grad32), (log32, log_grad32) = both(jnp.float32, **kwargs)
        error, log_error = np.abs(got32 - want).max(), np.abs(log32 - want).max()
        assert error <= 1.25 * log_error + 1e-6, (s, error, log_error)
        assert error <= 2e-5 * 64 / min(1.0, 100 * s), (s, error)
        assert np.isfinite(np.asarray(grad32)).all()
        grad_error = np.abs(grad32 - want_grad).max()
        # (at softness 1e-3 the scores reach 6e4 and both are 1e-4 of the largest entry off)
        assert grad_error <= 2 * np.abs(log_grad32 - want_grad).max() + 1e-6, (s, grad_error)


@pytest.mark.parametrize("descending", [False, True])
def test_one_pass_forward_equals_the_normalised_form(descending):
    """Undifferentiated, the one-pass ranks are one product of the unnormalised row
    weights; differentiated, `_normalised_column_ranks` (which writes the row softmaxes)
    gives the values and the tangents. Both values agree: to 1e-10 in float64, and in
    float32 to within twice the normalised form's error against float64 (normal, tied and
    constant rows, softness 0.1 and 1e-3); and the JVP is the normalised form's."""
    rng = np.random.default_rng(21)
    x = np.stack([rng.normal(size=64), np.round(rng.normal(size=64), 1), np.full(64, 3.0)])
    dx = rng.normal(size=x.shape)

    def inputs(x, s):
        """`(z, a_sums, s)` of the rows `x` at softness `s`, in `x`'s dtype."""
        z, s = _common.standardize(x), jnp.asarray(s, x.dtype)
        return z, abs_row_sums(z, s, "smooth"), s

    def forms(x, s):
        args = (*inputs(x, s), descending)
        product = jax.jit(neuralsort._one_pass_ranks, static_argnums=3)(*args)
        normalised = jax.jit(neuralsort._normalised_column_ranks, static_argnums=3)(*args)
        return np.asarray(product), np.asarray(normalised)

    for s in (0.1, 1e-3):
        with jax.enable_x64(True):
            product64, normalised64 = forms(jnp.asarray(x, jnp.float64), s)
            assert np.abs(product64 - normalised64).max() <= 1e-10
            # the custom JVP is the normalised form's
            primals = inputs(jnp.asarray(x, jnp.float64), s)
            tangents = (jnp.asarray(dx), jnp.asarray(dx[:, ::-1]), jnp.float64(0.5))
            _, got = jax.jvp(
                lambda *a: neuralsort._one_pass_ranks(*a, descending), primals, tangents
            )
            _, want = jax.jvp(
                lambda *a: neuralsort._normalised_column_ranks(*a, descending), primals, tangents
            )
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        product32, normalised32 = forms(jnp.asarray(x, jnp.float32), s)
        error = np.abs(product32 - product64).max()
        # (at softness 0.1: 2.2e-5 against 1.5e-5; at 1e-3 both 3.6e-4)
        assert error <= 2 * np.abs(normalised32 - normalised64).max() + 4e-6, (s, error)
        assert np.abs(product32[2] - (64 + 1) / 2).max() <= 1e-4  # a constant row: all tied
