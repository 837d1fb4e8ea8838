"""Property-based fuzzing of the SoftIndex selection ops (`take_along_axis`, `take`,
`choose`, `dynamic_index_in_dim`, `dynamic_slice_in_dim`, `dynamic_slice`) and `where`.

Each drawn call has values `x` (ties, constants, ±1e30, tiny values; float32, float64,
bfloat16), a valid integer index for the hard jnp/lax function, and the SoftIndex
`p = (1 − λ)·onehot(index) + λ·q` for a random distribution `q` and `λ ∈ [0, 1]`
(λ = 0, 1 and values in between). Properties:

- values and gradients (with respect to `x` and `p`) are finite;
- with λ = 0 (a one-hot SoftIndex) the result equals the hard function with the
  integer index, exactly;
- the result is linear in the SoftIndex: `f(x, p) = (1 − λ) f(x, onehot) + λ f(x, q)`;
- every result lies within [min x, max x] (a convex combination of the inputs);
- shape and dtype equal the hard result's.

`make test` runs a small deterministic profile; the `fuzz` marker runs `FUZZ_EXAMPLES`
(10,000 by default) per op.
"""

import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffbio.core import soft_ops
from tests.fuzz._report import report_count

QUICK_EXAMPLES = 8
FULL_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
DTYPES = ("float32", "float64", "bfloat16")
SHAPES = ((1,), (5,), (2, 3), (3, 1), (2, 4))
_SPECIAL = (0.0, 1.0, -1.0, 0.5, 1e-30, -1e-30, 1e30, -1e30, 3.0, -7.5)


@dataclass(frozen=True)
class Selection:
    """A drawn selection: how to call the soft op and the hard one on the same data."""

    name: str
    dtype: str
    x: np.ndarray
    index: np.ndarray  # integer index (hard)
    q: np.ndarray  # a random distribution with the SoftIndex's shape
    lam: float
    static: dict

    def __repr__(self) -> str:  # enough to replay a shrunk failure
        return (
            f"Selection({self.name!r}, {self.dtype!r}, x={self.x.tolist()!r}, "
            f"index={self.index.tolist()!r}, q={self.q.tolist()!r}, lam={self.lam!r}, "
            f"static={self.static!r})"
        )


def _values(draw, shape) -> np.ndarray:
    kind = draw(st.sampled_from(("normal", "ties", "constant", "special")))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "normal":
        return rng.normal(size=shape) * 10.0 ** draw(st.integers(-3, 3))
    if kind == "ties":
        return rng.integers(-2, 3, size=shape).astype(float)
    if kind == "constant":
        return np.full(shape, draw(st.sampled_from(_SPECIAL)))
    return rng.choice(_SPECIAL, size=shape)


def _distribution(draw, shape) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    logits = rng.normal(size=shape) * 10.0 ** draw(st.integers(-1, 2))
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


@st.composite
def selections(draw, name: str) -> Selection:
    dtype = draw(st.sampled_from(DTYPES))
    lam = draw(st.one_of(st.sampled_from((0.0, 1.0)), st.floats(0.0, 1.0)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if name == "choose":
        shape = draw(st.sampled_from(SHAPES))
        m = draw(st.integers(1, 4))
        x = _values(draw, (m, *shape))  # the choices
        index = rng.integers(0, m, size=shape)
        return Selection(name, dtype, x, index, _distribution(draw, (*shape, m)), lam, {})
    shape = draw(st.sampled_from(SHAPES))
    x = _values(draw, shape)
    axis = draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    if name == "take_along_axis":
        k = draw(st.integers(1, 3))
        index_shape = shape[:axis] + (k,) + shape[axis + 1 :]
        index = rng.integers(0, n, size=index_shape)
        q = _distribution(draw, (*index_shape, n))
        return Selection(name, dtype, x, index, q, lam, {"axis": axis})
    if name == "take":
        flat = draw(st.booleans())
        size = x.size if flat else n
        index = rng.integers(0, size, size=(draw(st.integers(1, 3)),))
        static = {"axis": None if flat else axis}
        return Selection(name, dtype, x, index, _distribution(draw, (*index.shape, size)), lam,
                         static)
    if name == "dynamic_index_in_dim":
        index = np.asarray(rng.integers(0, n))
        static = {"axis": axis, "keepdims": draw(st.booleans())}
        return Selection(name, dtype, x, index, _distribution(draw, (n,)), lam, static)
    if name == "dynamic_slice_in_dim":
        size = draw(st.integers(1, n))
        index = np.asarray(rng.integers(0, n - size + 1))
        static = {"slice_size": size, "axis": axis}
        return Selection(name, dtype, x, index, _distribution(draw, (n,)), lam, static)
    if name == "dynamic_slice":
        sizes = [draw(st.integers(1, d)) for d in shape]
        starts = [int(rng.integers(0, d - s + 1)) for d, s in zip(shape, sizes, strict=True)]
        # one axis carries the SoftIndex, the others an integer start
        static = {"slice_sizes": sizes, "starts": starts, "soft_axis": axis}
        q = _distribution(draw, (n,))
        return Selection(name, dtype, x, np.asarray(starts[axis]), q, lam, static)
    raise ValueError(name)


def _soft(sel: Selection, x, p):
    s = sel.static
    if sel.name == "take_along_axis":
        return soft_ops.take_along_axis(x, p, axis=s["axis"])
    if sel.name == "take":
        return soft_ops.take(x, p, axis=s["axis"])
    if sel.name == "choose":
        return soft_ops.choose(p, x)
    if sel.name == "dynamic_index_in_dim":
        return soft_ops.dynamic_index_in_dim(x, p, axis=s["axis"], keepdims=s["keepdims"])
    if sel.name == "dynamic_slice_in_dim":
        return soft_ops.dynamic_slice_in_dim(x, p, s["slice_size"], axis=s["axis"])
    starts = [p if i == s["soft_axis"] else start for i, start in enumerate(s["starts"])]
    return soft_ops.dynamic_slice(x, starts, s["slice_sizes"])


def _hard(sel: Selection, x):
    s, index = sel.static, jnp.asarray(sel.index)
    if sel.name == "take_along_axis":
        return jnp.take_along_axis(x, index, axis=s["axis"])
    if sel.name == "take":
        return jnp.take(x, index, axis=s["axis"])
    if sel.name == "choose":
        return jnp.choose(index, x)
    if sel.name == "dynamic_index_in_dim":
        return jax.lax.dynamic_index_in_dim(x, index, axis=s["axis"], keepdims=s["keepdims"])
    if sel.name == "dynamic_slice_in_dim":
        return jax.lax.dynamic_slice_in_dim(x, index, s["slice_size"], axis=s["axis"])
    return jax.lax.dynamic_slice(x, s["starts"], s["slice_sizes"])


def _np(a) -> np.ndarray:
    return np.asarray(jnp.asarray(a, jnp.float64 if a.dtype == jnp.float64 else jnp.float32))


_compiled: dict[tuple, tuple] = {}


def _compiled_soft(sel: Selection):
    """The soft op and its gradient, jitted once per (op, static arguments): examples that
    share a shape and dtype then reuse the compiled code instead of compiling again."""
    key = (sel.name, repr(sel.static))
    if key not in _compiled:
        soft = jax.jit(lambda x, p: _soft(sel, x, p))
        grad = jax.jit(jax.grad(lambda x, p: jnp.sum(jnp.sin(_soft(sel, x, p))), argnums=(0, 1)))
        _compiled[key] = (soft, grad)
    return _compiled[key]


def check_selection(sel: Selection) -> None:
    with jax.enable_x64(sel.dtype == "float64"):
        dtype = jnp.dtype(sel.dtype)
        x = jnp.asarray(sel.x, dtype)
        size = sel.q.shape[-1]
        onehot = jax.nn.one_hot(jnp.asarray(sel.index), size, dtype=dtype)  # (..., size)
        q = jnp.asarray(sel.q, dtype)
        p = ((1.0 - sel.lam) * onehot + sel.lam * q).astype(dtype)
        soft, grad = _compiled_soft(sel)
        out = soft(x, p)
        hard = _hard(sel, x)
        assert out.shape == hard.shape and out.dtype == hard.dtype, (out.shape, hard.shape)
        values = _np(out)
        assert np.all(np.isfinite(values)), values
        np.testing.assert_array_equal(_np(soft(x, onehot)), _np(hard))  # one-hot = hard
        lo, hi = float(np.min(_np(x))), float(np.max(_np(x)))
        tol = {"float32": 1e-5, "float64": 1e-12, "bfloat16": 2e-2}[sel.dtype]
        scale = max(1.0, abs(lo), abs(hi))
        assert np.all(values >= lo - tol * scale) and np.all(values <= hi + tol * scale)
        mixed = (1.0 - sel.lam) * _np(soft(x, onehot)) + sel.lam * _np(soft(x, q))
        np.testing.assert_allclose(values, mixed, rtol=4 * tol, atol=4 * tol * scale)
        if sel.dtype != "bfloat16":
            for g in grad(x, p):
                assert np.all(np.isfinite(_np(g))), g


OPS = (
    "take_along_axis",
    "take",
    "choose",
    "dynamic_index_in_dim",
    "dynamic_slice_in_dim",
    "dynamic_slice",
)


def _settings(examples: int, quick: bool):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=quick,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


@pytest.mark.parametrize("name", OPS)
def test_fuzz_selection_quick(name):
    @_settings(QUICK_EXAMPLES, quick=True)
    @given(selections(name))
    def run(sel):
        check_selection(sel)

    run()


@pytest.mark.fuzz
@pytest.mark.parametrize("name", OPS)
def test_fuzz_selection_full(name):
    checked = []

    @_settings(FULL_EXAMPLES, quick=False)
    @given(selections(name))
    def run(sel):
        check_selection(sel)
        checked.append(1)

    run()
    report_count(name, configurations=len(checked), inputs=len(checked))
