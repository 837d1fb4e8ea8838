"""Shared fixtures for the sorting kernel tests."""

import jax
import jax.numpy as jnp
import pytest

from tests._compile import cheap_options


class CheapJit:
    """`cheap_jit(key, fn, *args)`: compile `fn` once per `key` and argument signature."""

    def __init__(self) -> None:
        self._compiled = {}

    def __call__(self, key, fn, *args):
        leaves = jax.tree.leaves(args)
        signature = (key, tuple((jnp.shape(a), jnp.result_type(a)) for a in leaves))
        if signature not in self._compiled:
            lowered = jax.jit(fn).lower(*args)
            self._compiled[signature] = lowered.compile(compiler_options=cheap_options())
        return self._compiled[signature](*args)


@pytest.fixture(scope="session")
def cheap_jit() -> CheapJit:
    return CheapJit()
