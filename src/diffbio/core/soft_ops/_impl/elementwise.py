"""Soft relaxations of per-element non-smooth functions, all built on `sigmoidal`.

Reference: Paulus et al. (2026), arXiv:2603.08824; soft rounding after Semenov et al.,
"Smooth Approximations of the Rounding Function", arXiv:2504.19026.
"""

import jax
import jax.numpy as jnp
from jax import Array

from .sigmoidal import sigmoidal, softabs, softrelu


def heaviside(x: Array, softness: float | Array, mode: str) -> Array:
    """Soft step (a SoftBool): ``sigmoidal(x)``; hard value 0.5 at 0."""
    return sigmoidal(x, softness, mode)


def sign(x: Array, softness: float | Array, mode: str) -> Array:
    """Soft sign in [-1, 1]: ``2 sigmoidal(x) - 1``."""
    return 2.0 * sigmoidal(x, softness, mode) - 1.0


def abs(x: Array, softness: float | Array, mode: str) -> Array:  # noqa: A001
    """Soft absolute value ``x * sign(x)``."""
    return softabs(x, softness, mode)


def relu(x: Array, softness: float | Array, mode: str, gated: bool) -> Array:
    """Soft ReLU (`softrelu`), or the gated ``x * sigmoidal(x)`` (SiLU-style)."""
    return softrelu(x, softness, mode, gated)


def clip(x: Array, a: Array, b: Array, softness: float | Array, mode: str, gated: bool) -> Array:
    """Soft clamp to [a, b]: ``a + relu(x - a) - relu(x - b)``."""
    return a + softrelu(x - a, softness, mode, gated) - softrelu(x - b, softness, mode, gated)


def round(x: Array, softness: float | Array, mode: str, neighbor_radius: int) -> Array:  # noqa: A001
    """Soft rounding: a sigmoidal-weighted sum over the integers near ``x``.

    ``round(x) = sum_n n [sigmoidal(x - n + 1/2) - sigmoidal(x - n - 1/2)]`` over
    ``n = floor(x) + k``, ``k = -R..R``. It is evaluated as ``c T + sum_k k w_k`` with
    ``c = floor(x)`` and the offset ``r = x - c`` in [0, 1), which is the same sum but
    keeps full precision for large |x| (where ``x - n`` would round to 0).
    """
    center = jax.lax.stop_gradient(jnp.floor(x))  # (...)
    offset = (x - center)[..., None]  # (..., 1)
    k = jnp.arange(-neighbor_radius, neighbor_radius + 1, dtype=x.dtype)  # (M,)
    lower = sigmoidal(offset - k + 0.5, softness, mode)  # (..., M)
    upper = sigmoidal(offset - k - 0.5, softness, mode)  # (..., M)
    weights = lower - upper  # (..., M)
    total = lower[..., 0] - upper[..., -1]  # (...) telescoped sum of the weights
    return center * total + jnp.sum(k * weights, axis=-1)  # (...)
