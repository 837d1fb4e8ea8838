"""Rule (NaN policy): NaN inputs are accepted, and a NaN propagates only to the outputs that
depend on it. For an ordering or reduction op that is the row (along the reduced or sorted
axis) that holds it; for an elementwise op, that element. Every other output, and its
gradient, is finite and equal to what the same input without the NaN gives.

The ordering ops run for every method whose kernel imports, in smooth mode: a batch of six
rows, the last three a copy of the first three with one NaN in row 3; rows 4 and 5 must
match rows 1 and 2 in values and gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops
from tests._compile import cheap_options
from tests.generated.cases import OPS

from ._calls import X, kinds, method_cases, valid_args

ROWS = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
BATCH = jnp.asarray(np.concatenate([ROWS, ROWS]).copy())  # (6, 5)
BATCH_NAN = BATCH.at[3, 2].set(jnp.nan)

ROW_OPS = [
    op
    for op in OPS
    if {"axis", "axes"} & set(kinds(op).values())
    and not {"values", "softindex", "sequence"} & set(kinds(op).values())
    and not OPS[op]["methods"]
]
ELEMENTWISE_OPS = [
    op
    for op in OPS
    if set(kinds(op).values()) & {"array", "softbool"}
    and not {"axis", "axes", "k", "q", "values", "softindex", "sequence"} & set(kinds(op).values())
]


def _weights(leaf):
    """Fixed weights that depend on the trailing dimensions only (the same for each row)."""
    trailing = leaf.shape[1:]
    return jnp.cos(jnp.arange(int(np.prod(trailing)), dtype=leaf.dtype)).reshape(trailing)


def _value_and_grad(fn, *arrays):
    def loss(arrays):
        out = fn(*arrays)
        return sum(jnp.sum(leaf * _weights(leaf)) for leaf in jax.tree.leaves(out)), out

    lowered = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(arrays)
    compiled = lowered.compile(compiler_options=cheap_options())
    (_, out), grads = compiled(arrays)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(out)], [np.asarray(g) for g in grads]


def _check_rows(name, fn, batch=BATCH_NAN):
    out, (grad,) = _value_and_grad(fn, batch)
    for leaf in out:
        assert np.isfinite(leaf[[0, 1, 2, 4, 5]]).all(), (name, leaf)
        np.testing.assert_allclose(leaf[4:6], leaf[1:3], rtol=1e-6, atol=1e-6, err_msg=name)
    assert np.isfinite(grad[[0, 1, 2, 4, 5]]).all(), (name, grad)
    np.testing.assert_allclose(grad[4:6], grad[1:3], rtol=1e-5, atol=1e-6, err_msg=name)


def _row_args(name):
    args = {k: v for k, v in valid_args(name).items() if kinds(name)[k] in ("k", "q")}
    primary = next(p for p, k in kinds(name).items() if k in ("array", "softbool"))
    axis = next(p for p, k in kinds(name).items() if k in ("axis", "axes"))
    return primary, {**args, axis: -1}


def _ordering_cases():
    """Each op with its default method and each method on `sort` always; the rest of
    the op x method matrix in the slow (`make test-full`) run."""
    for name, method in method_cases(("sorting", "quantile")):
        quick = method == OPS[name]["default_method"] or name == "sort"
        yield pytest.param(name, method, marks=() if quick else pytest.mark.slow)


@pytest.mark.parametrize(("name", "method"), list(_ordering_cases()))
def test_nan_in_one_row_leaves_the_other_rows_of_an_ordering_op_intact(name, method):
    primary, args = _row_args(name)
    fn = getattr(soft_ops, name)
    try:
        _check_rows(name, lambda x: fn(**{primary: x}, **args, method=method, mode="smooth"))
    except ImportError as error:  # the method's optional dependency is not installed
        pytest.skip(str(error))


@pytest.mark.parametrize("name", ROW_OPS)
def test_nan_in_one_row_leaves_the_other_rows_of_a_reduction_intact(name):
    primary, args = _row_args(name)
    fn = getattr(soft_ops, name)
    batch = jax.nn.sigmoid(BATCH_NAN) if kinds(name)[primary] == "softbool" else BATCH_NAN
    _check_rows(name, lambda x: fn(**{primary: x}, **args), batch)


@pytest.mark.parametrize("name", ELEMENTWISE_OPS)
def test_nan_in_one_element_leaves_the_other_elements_intact(name):
    names = [p for p, k in kinds(name).items() if k in ("array", "softbool")]
    fn = getattr(soft_ops, name)
    clean = [X] * len(names)
    with_nan = [X.at[0, 1].set(jnp.nan)] + [X] * (len(names) - 1)

    def call(*arrays):
        return fn(**dict(zip(names, arrays, strict=True)))

    out_clean, grad_clean = _value_and_grad(call, *clean)
    out_nan, grad_nan = _value_and_grad(call, *with_nan)
    mask = np.ones(X.shape, bool)
    mask[0, 1] = False
    for a, b in zip(out_clean, out_nan, strict=True):
        b = np.broadcast_to(b, X.shape)
        assert np.isfinite(b[mask]).all(), (name, b)
        np.testing.assert_allclose(b[mask], np.broadcast_to(a, X.shape)[mask], rtol=1e-6)
    for a, b in zip(grad_clean, grad_nan, strict=True):
        assert np.isfinite(b[mask]).all(), (name, b)
        np.testing.assert_allclose(b[mask], a[mask], rtol=1e-6, atol=1e-7)
