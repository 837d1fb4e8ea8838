"""Straight-through estimators: the hard value forward, the soft gradient backward.

``st(f)`` returns ``stop_gradient(f_hard) + (f_soft - stop_gradient(f_soft))``, leaf by
leaf. Written this way the forward value is bit-for-bit the hard value (the soft terms
cancel exactly), while the derivative is that of ``f_soft``.
(Bengio, Léonard & Courville 2013, arXiv:1308.3432.)
"""

import functools
from collections.abc import Callable
from typing import Any

import jax


def _combine(hard: Any, soft: Any) -> Any:
    """Hard values with the soft derivative, leaf by leaf (``None`` leaves stay ``None``)."""

    def leaf(h, s):
        return jax.lax.stop_gradient(h) + (s - jax.lax.stop_gradient(s))

    return jax.tree_util.tree_map(leaf, hard, soft)


def st(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Straight-through version of a soft operation that takes a ``mode`` argument.

    The forward pass returns ``fn(..., mode="hard")``; the backward pass differentiates
    ``fn(...)`` in the mode the caller asked for (``"smooth"`` when not given).

    **Arguments:**

    - `fn`: a function of `diffbio.core.soft_ops` (or any function) with a `mode` keyword.

    **Returns:**

    A function with the same signature.

    **Example:**

    ```python
    import jax.numpy as jnp
    from diffbio.core.soft_ops import st, relu

    relu_st = st(relu)
    relu_st(jnp.array([-1.0, 2.0]), softness=0.1)  # Array([0., 2.])
    ```
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        soft = fn(*args, **kwargs)
        hard = fn(*args, **{**kwargs, "mode": "hard"})
        return _combine(hard, soft)

    return wrapper


def grad_replace(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Use ``fn(..., forward=True)`` forward and the gradient of ``fn(..., forward=False)``.

    **Arguments:**

    - `fn`: a function with a boolean keyword `forward`; it returns the forward value
      when `forward=True` and the differentiable surrogate when `forward=False`.

    **Returns:**

    A function with the same signature minus `forward`.

    **Example:**

    ```python
    import jax
    from diffbio.core.soft_ops import grad_replace

    @grad_replace
    def threshold(x, t, forward: bool = True):
        if forward:
            return (x > t).astype(float)
        return jax.nn.sigmoid((x - t) / 0.1)

    jax.grad(threshold)(0.0, 0.0)  # 2.5, the sigmoid's slope at 0
    ```
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("forward", None)
        hard = fn(*args, **kwargs, forward=True)
        soft = fn(*args, **kwargs, forward=False)
        return _combine(hard, soft)

    return wrapper
