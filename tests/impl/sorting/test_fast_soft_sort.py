"""fast_soft_sort kernels (Blondel et al. 2020) against a NumPy Pool Adjacent Violators
reference (float64), their limits, invariants, gradients and edge cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logit, logsumexp
from scipy.stats import rankdata

from diffbio.core.soft_ops._impl.sorting import fast_soft_sort as fss
from tests._compile import cheap_options
from tests._gradcheck import check_gradient
from tests._profile import quick_only

MODES = ["smooth", "c0", "c1", "c2"]

_RNG = np.random.default_rng(0)
X = np.concatenate(  # (4, 7): random, ties, a constant row, wide values
    [
        _RNG.normal(size=(1, 7)),
        np.array([[1.0, 0.0, 1.0, 1.0, 2.0, -1.0, 0.0]]),
        np.full((1, 7), 0.7),
        _RNG.normal(size=(1, 7)) * 20.0 + 3.0,
    ]
)


# --- NumPy reference ----------------------------------------------------------------------


def _block_value(s, w, mode):
    """γ with Σ f_i'(γ) = 0 on one block (see `_isotonic`)."""
    if mode == "c0":
        return s.mean() - w.mean()
    if mode == "smooth":
        return logsumexp(s) - logsumexp(w)
    power = 2 if mode == "c1" else 3
    phi = (lambda t: t * np.abs(t)) if mode == "c1" else (lambda t: t**3)
    reach = (np.abs(w.sum()) / len(s)) ** (1.0 / power) + 1.0
    lo, hi = s.min() - reach, s.max() + reach
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:  # the interval is down to adjacent floats
            break
        lo, hi = (lo, mid) if np.sum(phi(mid - s)) + w.sum() > 0 else (mid, hi)
    return 0.5 * (lo + hi)


def _pav(s, w, mode):
    """ψ(s - v) for the non-increasing isotonic fit `v`, by the stack form of PAV."""
    blocks = []  # [start, stop, value]
    for i in range(len(s)):
        blocks.append([i, i + 1, _block_value(s[i : i + 1], w[i : i + 1], mode)])
        while len(blocks) > 1 and blocks[-2][2] < blocks[-1][2]:
            start, stop = blocks[-2][0], blocks[-1][1]
            blocks[-2:] = [[start, stop, _block_value(s[start:stop], w[start:stop], mode)]]
    t = s - np.concatenate([np.full(b - a, g) for a, b, g in blocks])
    return {"c1": t * np.abs(t), "c2": t**3}.get(mode, t)


def _standardize(x):
    mean = x.mean(-1, keepdims=True)
    std = np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    return expit((x - mean) / std), mean, std


def _anchors(n, first):
    return (np.arange(n - 1 + first, first - 1, -1)) / max(n - 1, 1)


def np_sort(x, softness, mode, descending, standardize):
    z, mean, std = _standardize(x) if standardize else (x, 0.0, 1.0)
    n = x.shape[-1]
    out = np.stack([_pav(_anchors(n, 0) / softness, -np.sort(-row), mode) for row in z])
    out = out if descending else out[:, ::-1]
    return logit(np.clip(out, 1e-10, 1 - 1e-10)) * std + mean if standardize else out


def np_rank(x, softness, mode, descending, standardize):
    z = _standardize(x)[0] if standardize else x
    key = -z if descending else z
    n = x.shape[-1]
    out = np.empty_like(key)
    for r, row in enumerate(key):
        order = np.argsort(-row, kind="stable")
        out[r, order] = _pav(row[order] / softness, _anchors(n, 1), mode) * max(n - 1, 1)
    return out


# --- compiled kernels ----------------------------------------------------------------------

_VARIANTS = [(std, desc) for std in (True, False) for desc in (False, True)]


def _all_outputs(mode):
    """Every sort / rank variant for one mode, as a function of `(x, softness)`."""

    def f(x, softness):
        return {
            (op, std, desc): kernel(x, softness, mode, desc, std)
            for op, kernel in (("sort", fss.sort), ("rank", fss.rank))
            for std, desc in _VARIANTS
        }

    return f


@pytest.fixture
def outputs64(cheap_jit):
    """`outputs64(mode, x, softness)`: all variants in float64, compiled once per mode."""

    def run(mode, x, softness):
        with jax.enable_x64(True):
            args = (jnp.asarray(x, jnp.float64), jnp.float64(softness))
            out = cheap_jit(("outputs64", mode), _all_outputs(mode), *args)
            return {k: np.asarray(v) for k, v in out.items()}

    return run


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_matches_numpy_pav(outputs64, mode):
    for softness in (0.05, 0.3, 2.0):
        got = outputs64(mode, X, softness)
        for (op, std, desc), value in got.items():
            reference = (np_sort if op == "sort" else np_rank)(X, softness, mode, desc, std)
            np.testing.assert_allclose(
                value, reference, rtol=1e-9, atol=1e-9, err_msg=str((op, std, desc, softness))
            )


@pytest.mark.parametrize("mode", quick_only(MODES, ["c1"]))  # c1: the search in a row
def test_rows_of_many_chunks_match_numpy_pav(cheap_jit, mode):
    """At n = 150 the solver cuts each row into 5 chunks of 32 (`_isotonic._chunk_size`):
    blocks that span chunks pool across the seams, and in c1 mode pooled blocks whose
    root falls inside them take the search along the row (the unstandardised sorts at
    softness 0.3 do). Rows: normal draws, draws rounded to halves, and seven values each
    repeated about 21 times (long tied blocks)."""
    rng = np.random.default_rng(200)
    x = np.stack(
        [
            rng.normal(size=150),
            np.round(rng.normal(size=150) * 2.0) / 2.0,
            np.tile(X[1], 22)[:150],
        ]
    )

    def f(x, softness):
        return {
            (op, std): kernel(x, softness, mode, False, std)
            for op, kernel in (("sort", fss.sort), ("rank", fss.rank))
            for std in (True, False)
        }

    with jax.enable_x64(True):
        for softness in (0.3, 1.0):
            args = (jnp.asarray(x, jnp.float64), jnp.float64(softness))
            got = cheap_jit(("many_chunks", mode), f, *args)
            for (op, std), value in got.items():
                reference = (np_sort if op == "sort" else np_rank)(x, softness, mode, False, std)
                np.testing.assert_allclose(
                    value, reference, rtol=1e-9, atol=1e-9, err_msg=str((op, std, softness))
                )


@pytest.mark.parametrize("mode", quick_only(["c0", "smooth"], ["c0"]))
def test_seams_of_many_levels_match_numpy_pav(cheap_jit, mode):
    """At n = 1000 the solver cuts each row into 8 chunks of 128 (24 of them padding),
    joined in three levels of seams, and passes in one step over runs of positions that
    cannot pool. Softness 0.02 leaves most positions alone; 3 pools blocks that span
    several chunks. Rows: normal draws, draws rounded to tenths (ties) and heavy-tailed
    draws."""
    rng = np.random.default_rng(201)
    x = np.stack(
        [
            rng.normal(size=1000),
            np.round(rng.normal(size=1000) * 10.0) / 10.0,
            rng.standard_cauchy(size=1000),
        ]
    )

    def f(x, softness):
        return {"sort": fss.sort(x, softness, mode), "rank": fss.rank(x, softness, mode)}

    with jax.enable_x64(True):
        for softness in (0.02, 3.0):
            args = (jnp.asarray(x, jnp.float64), jnp.float64(softness))
            got = cheap_jit(("many_levels", mode), f, *args)
            for op, value in got.items():
                reference = (np_sort if op == "sort" else np_rank)(x, softness, mode, False, True)
                np.testing.assert_allclose(
                    value, reference, rtol=1e-9, atol=1e-9, err_msg=str((op, softness))
                )


def _tied_ranks(x, descending, mode):
    """Hard ranks; tied inputs pool their ranks: the mean (scipy's average ranks), or for
    the entropic mode the log-mean-exp of the ranks / (n - 1)."""
    if mode != "smooth":
        return rankdata(-x if descending else x, axis=-1)
    n = x.shape[-1]
    low = rankdata(-x if descending else x, axis=-1, method="min")
    high = rankdata(-x if descending else x, axis=-1, method="max")
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        ranks = np.arange(low[idx], high[idx] + 1) / (n - 1)
        out[idx] = (logsumexp(ranks) - np.log(len(ranks))) * (n - 1)
    return out


@pytest.mark.parametrize("mode", MODES)
def test_limits_of_the_softness(outputs64, mode):
    n = X.shape[-1]
    hard = outputs64(mode, X, 1e-7)
    for std, desc in _VARIANTS:
        np.testing.assert_allclose(
            hard[("sort", std, desc)],
            np.sort(X)[:, ::-1] if desc else np.sort(X),
            rtol=1e-6,
            atol=1e-6,
        )
        np.testing.assert_allclose(hard[("rank", std, desc)], _tied_ranks(X, desc, mode), atol=1e-6)
    flat = outputs64(mode, X, 1e7)
    if mode == "smooth":  # every position pools: log-mean-exp of the values / anchors
        mean_sort = logsumexp(X, axis=-1, keepdims=True) - np.log(n)
        mean_rank = (logsumexp(_anchors(n, 1)) - np.log(n)) * (n - 1)
    else:  # c0, c1, c2: the mean
        mean_sort, mean_rank = X.mean(-1, keepdims=True), (n + 1) / 2
    for desc in (False, True):
        np.testing.assert_allclose(
            flat[("sort", False, desc)], np.broadcast_to(mean_sort, X.shape), rtol=1e-5, atol=1e-5
        )
        for std in (False, True):
            np.testing.assert_allclose(
                flat[("rank", std, desc)], np.full(X.shape, mean_rank), rtol=1e-5, atol=1e-5
            )


@pytest.mark.parametrize("mode", MODES)
def test_sorted_and_sum_preserving(outputs64, mode):
    n = X.shape[-1]
    got = outputs64(mode, X, 0.3)
    for (op, std, desc), value in got.items():
        if op == "sort":
            steps = np.diff(value, axis=-1) * (-1 if desc else 1)
            assert np.all(steps >= -1e-12), (op, std, desc)
        else:  # ranks order like the inputs (ties share their rank)
            key = -X if desc else X
            for row, k in zip(value, key, strict=True):
                order = np.argsort(k, kind="stable")
                assert np.all(np.diff(row[order]) >= -1e-12), (op, std, desc)
    # the projection keeps Σ ψ^{-1}-weighted totals: Σ values for c0/c1/c2, Σ exp for smooth
    total = (lambda v: np.exp(v).sum(-1)) if mode == "smooth" else (lambda v: v.sum(-1))
    np.testing.assert_allclose(total(got[("sort", False, False)]), total(X), rtol=1e-10)
    anchors = _anchors(n, 1)
    np.testing.assert_allclose(
        total(got[("rank", False, True)] / (n - 1)), np.full(len(X), total(anchors)), rtol=1e-10
    )


# The generated conformance rows check the float64 finite differences of every mode's
# rank (and smooth sort) in `make test`; this check (both orders, unstandardised sorts,
# forward mode too) runs in `make test-full`.
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_finite_differences(mode):
    def f(x, softness):
        parts = [
            fss.sort(x, softness, mode),
            fss.rank(x, softness, mode, descending=True),
            fss.sort(x, softness, mode, standardize=False),
        ]
        return jnp.concatenate([p.reshape(-1) for p in parts])

    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5)), dtype=jnp.float64)
        check_gradient(f, (x, jnp.float64(0.3)), atol=1e-6, rtol=1e-6, forward=True)
        # exact ties and a constant row: finite, also at a softness where nothing pools
        ties = jnp.array([[1.0, 0.0, 1.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
        grad = jax.jit(
            jax.grad(lambda x, s: jnp.sum(jnp.cos(f(x, s))), argnums=(0, 1)),
            compiler_options=cheap_options(),
        )
        for softness in (0.3, 1e-4):
            gx, gs = grad(ties, softness)
            assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.isfinite(gs)), softness


def _finite_everything(x, softness):
    """Values and gradients (in x and the softness) of every mode, sort and rank."""

    def loss(x, softness):
        total = 0.0
        for mode in MODES:
            for std in (True, False):
                total += jnp.sum(jnp.cos(fss.sort(x, softness, mode, standardize=std)))
                total += jnp.sum(jnp.cos(fss.rank(x, softness, mode, standardize=std)))
        return total

    value, grads = jax.value_and_grad(loss, argnums=(0, 1))(x, softness)
    return value, *grads


@pytest.mark.parametrize("n", quick_only([5, 4096], [5]))  # n = 4096: `make test-full`
def test_float32_edge_cases_are_finite(cheap_jit, n):
    """Values and gradients of every mode, sort and rank, in float32 at n = 5 (one chunk)
    and n = 4096 (many chunks and seams): ties, a repeated pattern of ties and a constant
    row (and at n = 4096 a normal row and one with half its entries tied), at scales 1 and
    1e-20 and softnesses from 1e-6 to 1e6 (one compiled program per n)."""
    rng = np.random.default_rng(3)
    half_tied = rng.normal(size=n)
    half_tied[::2] = 0.5
    rows = np.stack([np.resize([1.0, 0.0, 1.0, 1.0, 2.0], n), np.full(n, 3.0)])
    if n > 5:
        rows = np.concatenate([rows, [rng.normal(size=n), half_tied]])
    for scale in (1.0, 1e-20):
        x = jnp.asarray(rows * scale, jnp.float32)
        for softness in (1e-6, 0.1, 1e6):
            out = cheap_jit("finite", _finite_everything, x, jnp.float32(softness))
            assert all(bool(jnp.all(jnp.isfinite(v))) for v in out), (scale, softness)


@pytest.mark.slow
def test_float64_huge_and_tiny_rows_are_finite(cheap_jit):
    rows = np.array([[1e30, -1e30, 0.0, 1e29, 5.0], [1e-30] * 5])
    with jax.enable_x64(True):  # |x| up to 1e30 (unstandardised moments would overflow)
        x = jnp.asarray(rows, jnp.float64)
        for softness in (1e-6, 1e6):
            out = cheap_jit("finite64", _finite_everything, x, jnp.float64(softness))
            assert all(bool(jnp.all(jnp.isfinite(v))) for v in out), softness


@pytest.mark.parametrize("n", quick_only([1, 2], [1]))
def test_tiny_rows(n):
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, n)), jnp.float32)

    def total(x, mode):
        values, ranks = fss.sort(x, 0.5, mode), fss.rank(x, 0.5, mode)
        return jnp.sum(jnp.sin(values + ranks)), (values, ranks)

    every_mode = jax.jit(lambda x: {m: jax.grad(total, has_aux=True)(x, m) for m in MODES})
    for mode, (grad, (values, ranks)) in every_mode(x).items():  # one compiled program
        if n == 1:
            np.testing.assert_allclose(values, np.sort(x), rtol=1e-5, atol=1e-6)
        assert ranks.shape == x.shape
        if mode != "smooth":  # the log-KL smooth mode does not keep the sum
            np.testing.assert_allclose(ranks.sum(-1), n * (n + 1) / 2, rtol=1e-5)
        assert bool(jnp.all((ranks >= 1 - 1e-5) & (ranks <= n + 1e-5)))
        assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.slow  # the generated conformance rows check jit and vmap of every mode
def test_jit_and_vmap_agree_with_eager():
    x = jnp.asarray(X, jnp.float32)

    def f(x):
        return fss.sort(x, 0.2, "c1"), fss.rank(x, 0.2, "smooth", descending=True)

    eager = f(x)
    # one compiled program for the three transformed calls
    jitted, mapped, batched = jax.jit(
        lambda x: (f(x), jax.vmap(f)(x), jax.vmap(jax.vmap(f))(jnp.stack([x, x])))
    )(x)
    # float32 rounding only (XLA fuses differently under jit): the last row spans ±60,
    # so a few float32 ulps of the standardised scores show up at 1e-5 after logit
    for value, a, b, c in zip(eager, jitted, mapped, batched, strict=True):
        np.testing.assert_allclose(a, value, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(b, value, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(c[1], value, rtol=2e-5, atol=2e-6)


def test_descending_and_top_k(outputs64):
    got = outputs64("c1", X, 0.3)
    for std in (True, False):
        np.testing.assert_allclose(got[("sort", std, True)], got[("sort", std, False)][:, ::-1])
    x = jnp.asarray(X, jnp.float32)
    np.testing.assert_allclose(
        fss.rank(x, 0.3, "smooth", descending=True),
        fss.rank(-x, 0.3, "smooth"),
        rtol=1e-5,
        atol=1e-5,
    )
    values, index = fss.top_k(x, 3, 0.3, "c0")
    assert index is None
    np.testing.assert_allclose(values, fss.sort(x, 0.3, "c0", descending=True)[:, :3])
    values, index = fss.top_k(x, 3, mode="hard")
    assert index is None
    np.testing.assert_array_equal(values, jax.lax.top_k(x, 3)[0])


def test_hard_mode_and_dtypes():
    x = jnp.asarray(X, jnp.float32)
    np.testing.assert_array_equal(fss.sort(x, mode="hard"), jnp.sort(x, axis=-1))
    np.testing.assert_array_equal(
        fss.rank(x, mode="hard", descending=True), rankdata(-X, axis=-1).astype(np.float32)
    )
    for dtype in (jnp.bfloat16, jnp.float16):
        xs = x.astype(dtype)
        assert fss.sort(xs, 0.01).dtype == dtype
        assert fss.rank(xs, 0.01, "c2").dtype == dtype
        # c0 gives tied inputs their average rank (the smooth mode does not, see below);
        # bfloat16 spacing is 1/32 between 4 and 8
        np.testing.assert_allclose(
            np.asarray(fss.rank(xs, 0.001, "c0"), np.float32),
            rankdata(np.asarray(xs, np.float32), axis=-1),
            atol=0.07,
        )


def test_smooth_mode_ties_share_the_log_kl_rank():
    """The smooth mode is the log-KL projection `s - v` (SoftJAX's variant): a block of `m`
    tied inputs gets `(n - 1)·(logsumexp(ρ'_B) - log m)`, whatever the softness, not the
    average rank. A constant row of 7 gives 4.3297 instead of 4 (SoftJAX 0.1.1: 4.329712)."""
    n = 7
    anchors = _anchors(n, 1)
    want = (n - 1) * (logsumexp(anchors) - np.log(n))
    for softness in (1.0, 1e-3):
        got = fss.rank(jnp.full((n,), 0.7, jnp.float32), softness)
        np.testing.assert_allclose(got, np.full(n, want), rtol=5e-5)  # float32
    np.testing.assert_allclose(want, 4.329712, rtol=5e-5)
