"""Properties the closed-form permutation kernels (softsort, neuralsort, sorting_network)
share. The solver-based and values-only methods (ot, fast_soft_sort, smooth_sort) have
their own kernel tests and the catalogue's conformance rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import rankdata

from diffbio.core.soft_ops._impl.sorting import KERNELS
from tests._gradcheck import check_gradient

METHODS = ["softsort", "neuralsort", "sorting_network"]
SOFT_MODES = ["smooth", "c0", "c1", "c2"]
N = 7  # not a power of two: the sorting network pads
K = 3  # for top_k

# All inputs share one shape (8, N) so each kernel compiles once per mode.
_RNG = np.random.default_rng(0)
SEPARATED = jnp.asarray(  # distinct integers plus a little noise: far from ties
    np.stack([_RNG.permutation(N) for _ in range(8)]) + 0.1 * _RNG.random((8, N)),
    dtype=jnp.float32,
)
TIES = jnp.asarray(  # exact ties everywhere, one constant row
    np.concatenate([_RNG.integers(-1, 3, size=(7, N)), np.full((1, N), 3)]), dtype=jnp.float32
)
RANDOM = jnp.asarray(_RNG.normal(size=(8, N)), dtype=jnp.float32)


def _outputs(kernel, x, softness, mode, descending=False):
    """Every kernel output for one input, in a dict."""
    values, index = kernel.top_k(x, min(K, x.shape[-1]), softness, mode)
    return {
        "sort": kernel.sort(x, softness, mode, descending),
        "argsort": kernel.argsort(x, softness, mode, descending),
        "rank": kernel.rank(x, softness, mode, descending),
        "argmax": kernel.argmax(x, softness, mode),
        "argmin": kernel.argmin(x, softness, mode),
        "top_k_values": values,
        "top_k_index": index,
    }


@pytest.fixture
def outputs(cheap_jit):
    """`outputs(method, x, softness, mode, descending=False)`, compiled once per variant."""

    def run(method, x, softness, mode, descending=False):
        both = lambda x, s: [_outputs(KERNELS[method], x, s, mode, d) for d in (False, True)]
        key = ("outputs", method, mode)
        return cheap_jit(key, both, x, jnp.asarray(softness, dtype=jnp.float32))[descending]

    return run


def _exact(x, descending=False):
    """The jnp / scipy results the hard mode must reproduce."""
    xn = np.asarray(x, dtype=np.float64)
    values, indices = jax.lax.top_k(x, K)
    return {
        "sort": jnp.sort(x, axis=-1, descending=descending),
        "argsort": jax.nn.one_hot(jnp.argsort(x, axis=-1, descending=descending), N),
        "rank": rankdata(-xn if descending else xn, axis=-1),
        "argmax": jax.nn.one_hot(jnp.argmax(x, axis=-1), N),
        "argmin": jax.nn.one_hot(jnp.argmin(x, axis=-1), N),
        "top_k_values": values,
        "top_k_index": jax.nn.one_hot(indices, N),
    }


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("method", METHODS)
def test_hard_mode_equals_jnp(outputs, method, descending):
    for x in (TIES, RANDOM):
        got = outputs(method, x, 0.1, "hard", descending)
        for name, expected in _exact(x, descending).items():
            np.testing.assert_array_equal(got[name], expected, err_msg=name)
            assert got[name].dtype == x.dtype, name


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_small_softness_converges_to_hard(outputs, method, mode):
    got = outputs(method, SEPARATED, 1e-3, mode)
    for name, expected in _exact(SEPARATED).items():
        np.testing.assert_allclose(got[name], expected, atol=2e-3, err_msg=name)
    n_sum = N * (N + 1) / 2
    np.testing.assert_allclose(got["rank"].sum(-1), n_sum, atol=1e-2)


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_soft_outputs_are_in_range(outputs, method, mode):
    low, high = RANDOM.min(-1, keepdims=True), RANDOM.max(-1, keepdims=True)
    for softness in (0.1, 1.0):
        out = outputs(method, RANDOM, softness, mode)
        for name in ("argsort", "argmax", "argmin", "top_k_index"):
            assert bool(jnp.all(out[name] >= 0)), name
            np.testing.assert_allclose(out[name].sum(-1), 1.0, atol=1e-5, err_msg=name)
        for name in ("sort", "top_k_values"):
            assert bool(jnp.all(out[name] >= low - 1e-5)), name
            assert bool(jnp.all(out[name] <= high + 1e-5)), name
        assert bool(jnp.all(out["rank"] >= 1 - 1e-5)) and bool(jnp.all(out["rank"] <= N + 1e-5))
        if method == "sorting_network":  # its permutation is doubly stochastic
            np.testing.assert_allclose(out["rank"].sum(-1), N * (N + 1) / 2, rtol=1e-5)
        else:
            # Not asserted for the sorting network: soft bitonic networks with these
            # sigmoids are not monotone (Petersen et al. 2022, "Monotonic Differentiable
            # Sorting Networks").
            assert bool(jnp.all(jnp.diff(out["sort"], axis=-1) >= -1e-5))


@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_descending_reverses_order(outputs, method, mode):
    asc = outputs(method, RANDOM, 0.2, mode)
    desc = outputs(method, RANDOM, 0.2, mode, descending=True)
    np.testing.assert_allclose(desc["argsort"], asc["argsort"][..., ::-1, :], atol=1e-6)
    np.testing.assert_allclose(desc["sort"], asc["sort"][..., ::-1], atol=1e-5)
    np.testing.assert_allclose(desc["rank"], N + 1 - asc["rank"], atol=1e-4)
    np.testing.assert_allclose(asc["top_k_index"], desc["argsort"][..., :K, :], atol=1e-6)
    np.testing.assert_allclose(asc["top_k_values"], desc["sort"][..., :K], atol=1e-5)


def _flat_outputs(kernel, mode):
    """Every differentiable output, flattened into one vector (descending ranks)."""

    def f(x, softness):
        values, index = kernel.top_k(x, min(2, x.shape[-1]), softness, mode)
        parts = [  # (argsort's rows are covered by top_k's)
            kernel.sort(x, softness, mode),
            kernel.rank(x, softness, mode, True),
            kernel.argmax(x, softness, mode),
            values,
            index,
        ]
        return jnp.concatenate([p.reshape(-1) for p in parts])

    return f


# The generated conformance rows check the float64 finite differences of every method
# and mode in `make test`; this check (sort, rank and argmax at n = 7, which the network
# pads) runs in `make test-full`.
@pytest.mark.slow
@pytest.mark.parametrize("mode", SOFT_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_gradients_match_finite_differences(method, mode):
    kernel = KERNELS[method]

    def f(x, softness):  # soft values (sort), soft ranks and a soft index (argmax)
        parts = [
            kernel.sort(x, softness, mode),
            kernel.rank(x, softness, mode),
            kernel.argmax(x, softness, mode),
        ]
        return jnp.concatenate([p.reshape(-1) for p in parts])

    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 5)), dtype=jnp.float64)
        check_gradient(f, (x, jnp.float64(0.3)), atol=1e-5, rtol=1e-5)
        # Same shapes, one compiled gradient: finite at exact ties and on a constant row,
        # also at a softness where every projection is one-hot.
        ties = jnp.array([[1.0, 0.0, 1.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
        grad = jax.jit(jax.grad(lambda x, s: jnp.sum(jnp.cos(f(x, s))), argnums=(0, 1)))
        for softness in (0.3, 1e-3):
            gx, gs = grad(ties, softness)
            assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.isfinite(gs)), softness


def _loss(method, mode):
    """A scalar mixing every differentiable output (ranks descending)."""
    f = _flat_outputs(KERNELS[method], mode)
    return lambda x, softness: jnp.sum(jnp.cos(f(x, softness)))


@pytest.mark.parametrize("method", METHODS)
def test_float32_gradients_finite_at_edge_inputs(cheap_jit, method):
    """Ties and constant rows (at a softness where every projection is one-hot), n = 1 and
    n = 2, in float32. The projections' own edge cases are covered per mode in
    test_simplex.py and the float64 ties per mode in the finite-difference test."""
    grad = jax.grad(_loss(method, "c1"), argnums=(0, 1))
    cases = [
        (TIES, 0.1),
        (TIES, 1e-3),
        (jnp.array([5.0]), 0.1),
        (jnp.array([[1.0, 1.0], [1.0, 2.0]]), 0.1),
    ]
    for x, softness in cases:
        gx, gs = cheap_jit(("grad", method, "c1"), grad, x, jnp.float32(softness))
        assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.isfinite(gs)), (x, softness)


@pytest.mark.slow  # the generated conformance rows check jit and vmap of every method
@pytest.mark.parametrize("method", METHODS)
def test_jit_and_vmap_agree_with_eager(method):
    kernel = KERNELS[method]

    def f(x, softness):
        return kernel.sort(x, softness, "c1"), kernel.rank(x, softness, "c1")

    x = RANDOM[:4]
    eager = f(x, 0.2)
    jitted = jax.jit(f)(x, 0.2)
    mapped = jax.jit(jax.vmap(lambda x: f(x, 0.2)))(x)
    for value, from_jit, from_vmap in zip(eager, jitted, mapped, strict=True):
        np.testing.assert_allclose(from_jit, value, atol=1e-5)
        np.testing.assert_allclose(from_vmap, value, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float64])
@pytest.mark.parametrize("method", METHODS)
def test_dtype_is_kept(outputs, method, dtype):
    with jax.enable_x64(True):
        x = SEPARATED.astype(dtype)
        for name, value in outputs(method, x, 0.01, "smooth").items():
            assert value.dtype == dtype, name
            expected = _exact(SEPARATED)[name]
            np.testing.assert_allclose(np.asarray(value, np.float64), expected, atol=0.05)
