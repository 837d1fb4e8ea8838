"""Shared test configuration."""

import os

# Several pytest-xdist workers share two cores: keep XLA from oversubscribing them. The
# tests check numbers on small inputs, where compiling dominates: XLA's cheap CPU
# pipeline (no expensive LLVM passes, backend optimisation level 0) compiles in about
# two thirds of the time.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0"
    " --xla_llvm_disable_expensive_passes=true",
)
