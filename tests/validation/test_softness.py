"""Rule: a concrete softness that is not a finite positive number (<= 0, NaN, inf) is
rejected while tracing; a traced softness (a learned temperature) is accepted."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops
from tests.generated.cases import OPS, ST_NAMES

from ._calls import X, traced_call, valid_args

SOFTNESS_OPS = [name for name, info in OPS.items() if "softness" in info["kinds"]]
BAD = [0.0, -0.1, float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize("name", SOFTNESS_OPS + ST_NAMES)
@pytest.mark.parametrize("softness", BAD, ids=repr)
def test_bad_python_softness_is_rejected_with_its_value(name, softness):
    base = name.removesuffix("_st")
    shown = re.escape(repr(softness))
    message = rf"(?m)^{base}: softness must be a positive finite number, got {shown}$"
    with pytest.raises(ValueError, match=message):
        traced_call(name, **valid_args(base), softness=softness)


@pytest.mark.parametrize("name", SOFTNESS_OPS)
@pytest.mark.parametrize(
    "softness", [np.float32(0.0), jnp.asarray(-1.0), jnp.array([0.1, 0.0]), "0.1", None], ids=repr
)
def test_bad_array_or_non_numeric_softness_is_rejected(name, softness):
    with pytest.raises(ValueError, match=rf"^{name}: softness must be a positive finite number"):
        traced_call(name, **valid_args(name), softness=softness)


@pytest.mark.parametrize("name", SOFTNESS_OPS)
def test_traced_softness_is_accepted_while_tracing(name):
    fn = getattr(soft_ops, name)
    args = valid_args(name)

    def loss(s):
        out = fn(**args, softness=s)
        return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(out))

    grad = jax.jit(jax.grad(loss)).trace(jnp.float32(0.3))
    assert grad.out_info.shape == ()


def test_a_traced_softness_is_differentiated_not_checked():
    grad = jax.jit(jax.grad(lambda s: soft_ops.sort(X, softness=s).sum()))(0.3)
    assert np.isfinite(grad)
