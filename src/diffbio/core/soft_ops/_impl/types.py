"""Semantic array aliases returned by soft operations."""

from typing import Annotated, TypeAlias

import jax

SoftBool: TypeAlias = Annotated[jax.Array, "SoftBool: values in [0, 1], a probability of truth"]
"""A JAX array with values in [0, 1]: the probability that a condition holds."""

SoftIndex: TypeAlias = Annotated[
    jax.Array, "SoftIndex: last axis is a probability distribution over positions"
]
"""A JAX array whose last axis is a probability distribution over indices (sums to 1)."""

Mode: TypeAlias = str
"""One of "hard", "smooth", "c0", "c1", "c2"."""
