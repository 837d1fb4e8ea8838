"""Kernel tests for `st` and `grad_replace`."""

import jax
import jax.numpy as jnp
import numpy as np

from diffbio.core.soft_ops import grad_replace, st


def test_st_forward_is_bitwise_hard_for_pytrees_with_none_leaves():
    def op(x, softness=0.1, mode="smooth"):
        hard = mode == "hard"
        values = jnp.round(x) if hard else x + 0.123456789
        return values, None, {"double": 2 * values}

    x = jnp.array([0.1, 1.7, 2.49999])
    values, none, extra = st(op)(x)
    assert none is None
    np.testing.assert_array_equal(values, jnp.round(x))
    np.testing.assert_array_equal(extra["double"], 2 * jnp.round(x))
    grad = jax.grad(lambda v: st(op)(v)[0].sum() + st(op)(v)[2]["double"].sum())(x)
    np.testing.assert_array_equal(grad, [3.0, 3.0, 3.0])


def test_st_keeps_the_callers_mode_for_the_backward_pass():
    def op(x, softness=0.1, mode="smooth"):
        return {"hard": 0.0 * x, "smooth": x**2, "c1": x**3}[mode]

    grad = jax.grad(lambda v: st(op)(v, mode="c1"))(2.0)
    assert float(grad) == 12.0
    assert float(st(op)(2.0, mode="c1")) == 0.0


def test_grad_replace_uses_forward_value_and_backward_gradient():
    @grad_replace
    def step(x, forward=True):
        return jnp.floor(x) if forward else x

    x = jnp.array([0.3, 1.8])
    np.testing.assert_array_equal(step(x), [0.0, 1.0])
    np.testing.assert_array_equal(jax.grad(lambda v: step(v).sum())(x), [1.0, 1.0])
    np.testing.assert_array_equal(jax.jit(step)(x), [0.0, 1.0])
