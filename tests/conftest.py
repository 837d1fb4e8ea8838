"""Shared test configuration."""

import os

# Several pytest-xdist workers share two cores: keep XLA from oversubscribing them.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false"
)
