"""Selection driven by a SoftBool: soft conditional branching."""

from jax import Array


def where(condition: Array, x: Array, y: Array) -> Array:
    """``x * condition + y * (1 - condition)``; equals ``jnp.where`` for a 0/1 condition."""
    return x * condition + y * (1.0 - condition)
