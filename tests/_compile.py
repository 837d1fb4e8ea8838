"""Compiler options for tests that check numbers, not speed: XLA's cheap CPU pipeline
roughly halves the compile time that dominates the suite."""

import jax

CHEAP_CPU_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def cheap_options() -> dict | None:
    """The cheap pipeline's options on CPU; `None` (the defaults) on other backends,
    whose compilers do not take these flags."""
    return CHEAP_CPU_OPTIONS if jax.default_backend() == "cpu" else None
