"""Shared fixtures for the sorting kernel tests."""

import jax
import jax.numpy as jnp
import pytest

# These tests check numbers, not speed: compiling with XLA's cheap CPU pipeline roughly
# halves the compile time that dominates the suite.
_CHEAP_CPU_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


class CheapJit:
    """`cheap_jit(key, fn, *args)`: compile `fn` once per `key` and argument signature."""

    def __init__(self) -> None:
        self._compiled = {}

    def __call__(self, key, fn, *args):
        leaves = jax.tree.leaves(args)
        signature = (key, tuple((jnp.shape(a), jnp.result_type(a)) for a in leaves))
        if signature not in self._compiled:
            options = _CHEAP_CPU_OPTIONS if jax.default_backend() == "cpu" else None
            lowered = jax.jit(fn).lower(*args)
            self._compiled[signature] = lowered.compile(compiler_options=options)
        return self._compiled[signature](*args)


@pytest.fixture(scope="session")
def cheap_jit() -> CheapJit:
    return CheapJit()
