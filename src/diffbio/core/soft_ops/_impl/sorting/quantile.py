"""Soft quantiles: interpolated rows of the ascending soft argsort (last axis).

With `p = q (n - 1)`, `k = ⌊p⌋` and `a = p - k`, the q-quantile of `jnp.quantile`
(`method="linear"`) is `(1 - a) · x_(k) + a · x_(k+1)` (0-based order statistics). The
soft index is the same mixture of rows `k` and `k + 1` of the ascending soft argsort;
the other `quantile_method`s change `k` and `a` exactly as `jnp.quantile` does:

| quantile_method | k                          | a                            |
|-----------------|----------------------------|------------------------------|
| `linear`        | ⌊p⌋                        | p - ⌊p⌋                      |
| `lower`         | ⌊p⌋                        | 0                            |
| `higher`        | ⌈p⌉                        | 0                            |
| `nearest`       | ⌊p⌋ if p - ⌊p⌋ ≤ ½ else ⌈p⌉ | 0                            |
| `midpoint`      | ⌊p⌋                        | ½ (0 when p is an integer)   |

SoftSort and NeuralSort build just those two rows (O(n) memory besides NeuralSort's
row sums); the sorting network runs forward once and pulls just those two rows back
through its layers (no `n × n` permutation). For the sorting network `quantile`
interpolates the network's own sorted values (mapped back from the standardised scale),
as its `sort` does; a values-only method interpolates its soft sorted values the same
way and has no `argquantile`.

References: Prillo & Eisenschlos (2020), arXiv:2006.16038; Grover et al. (2019),
arXiv:1903.08850; Petersen et al. (2021), arXiv:2105.04019.
"""

import jax
import jax.numpy as jnp
from jax import Array

from diffbio.core.soft_ops._impl.sorting import (
    KERNELS,
    neuralsort,
    solver_options,
    sorting_network,
)
from diffbio.core.soft_ops._impl.sorting._common import (
    compute_dtype,
    convex_combination,
    maybe_standardize,
    one_hot,
    output_dtype,
    prepare,
    soft_index,
    sort_rows,
    stable_argsort,
)

QUANTILE_METHODS = ("linear", "lower", "higher", "nearest", "midpoint")
METHODS = ("softsort", "neuralsort", "sorting_network", "fast_soft_sort", "smooth_sort", "ot")
_VALUES_ONLY: tuple[str, ...] = ("fast_soft_sort", "smooth_sort")
"""Values-only methods: the quantile interpolates their soft sorted values."""


def interpolation(q: Array, n: int, quantile_method: str) -> tuple[Array, Array, Array]:
    """0-based order-statistic positions `k`, `k + 1` (clipped to n - 1) and the weight `a`
    of the second, for a scalar `q` (clipped to [0, 1]), as `jnp.quantile`."""
    if quantile_method not in QUANTILE_METHODS:
        raise ValueError(
            f"Invalid quantile_method {quantile_method!r}; expected one of {QUANTILE_METHODS}"
        )
    p = jnp.clip(q, 0.0, 1.0) * (n - 1)
    low, high = jnp.floor(p), jnp.ceil(p)
    zero = jnp.zeros_like(p)
    if quantile_method == "linear":
        k, a = low, p - low
    elif quantile_method == "lower":
        k, a = low, zero
    elif quantile_method == "higher":
        k, a = high, zero
    elif quantile_method == "nearest":
        k, a = jnp.where(p - low <= 0.5, low, high), zero
    else:
        k, a = low, jnp.where(low == high, zero, 0.5)
    k = jnp.clip(k.astype(jnp.int32), 0, n - 1)
    return k, jnp.minimum(k + 1, n - 1), a


def _rows_softsort(z: Array, s: Array, mode: str, positions: Array) -> Array:
    anchors = jnp.take(sort_rows(z), positions, axis=-1)  # (..., 2)
    return soft_index(-jnp.abs(anchors[..., :, None] - z[..., None, :]), s, mode)  # (..., 2, n)


def _rows_neuralsort(z: Array, s: Array, mode: str, positions: Array) -> Array:
    n = z.shape[-1]
    a_sums = neuralsort.abs_row_sums(z, s, mode)  # (..., n)
    coef = neuralsort.coefficients(positions + 1, n, False, z.dtype)  # (2,)
    return soft_index(neuralsort.scores(coef, z, a_sums), s, mode)  # (..., 2, n)


def _single(
    x: Array,
    q: Array,
    softness: float | Array,
    mode: str,
    method: str,
    standardize: bool,
    quantile_method: str,
    options: dict | None = None,
    *,
    gated_grad: bool = True,
) -> tuple[Array | None, Array | None]:
    """`(soft index (..., n) in the compute dtype or None, values (...) or None)` for a
    scalar `q`: the index for the permutation methods, the values for the methods that
    compute them directly (sorting network, values-only methods)."""
    n = x.shape[-1]
    k, k_next, a = interpolation(q, n, quantile_method)
    positions = jnp.stack([k, k_next])  # (2,)
    if mode == "hard":
        order = stable_argsort(x)  # (..., n)
        rows = one_hot(jnp.take(order, positions, axis=-1), n, compute_dtype(x))  # (..., 2, n)
        values = None
    elif method in _VALUES_ONLY:
        sorted_values = KERNELS[method].sort(
            x, softness, mode, False, standardize, gated_grad=gated_grad,
            **solver_options(method, options),
        )  # (..., n)
        values = jnp.take(sorted_values, positions, axis=-1)  # (..., 2)
        return None, ((1 - a) * values[..., 0] + a * values[..., 1]).astype(output_dtype(x))
    elif method == "sorting_network":
        rows, sorted_values = sorting_network.rows_and_values(
            x, positions, softness, mode, standardize
        )  # (..., 2, n), (..., n)
        values = jnp.take(sorted_values, positions, axis=-1)  # (..., 2)
        values = ((1 - a) * values[..., 0] + a * values[..., 1]).astype(output_dtype(x))
    elif method == "ot":
        rows = KERNELS["ot"].rows(
            x, positions, softness, mode, standardize, options=options
        )  # (..., 2, n)
        rows = rows.astype(compute_dtype(x))
        values = None
    else:
        xc, s = prepare(x, softness)
        z = maybe_standardize(xc, standardize)  # (..., n)
        build = {"softsort": _rows_softsort, "neuralsort": _rows_neuralsort}[method]
        rows = build(z, s, mode, positions)  # (..., 2, n)
        values = None
    a = a.astype(rows.dtype)
    return (1 - a) * rows[..., 0, :] + a * rows[..., 1, :], values  # (..., n), (...)


def _check(q: Array, method: str, mode: str, index: bool = False) -> None:
    if q.ndim > 1:
        raise ValueError(f"q must be a scalar or 1-D, got shape {q.shape}")
    if mode != "hard" and method not in METHODS:
        raise ValueError(f"Invalid method {method!r}; expected one of {METHODS}")
    if index and mode != "hard" and method in _VALUES_ONLY:
        valid = tuple(m for m in METHODS if m not in _VALUES_ONLY)
        raise ValueError(
            f"method {method!r} produces sorted values only and no SoftIndex; "
            f"argquantile needs one of {valid}"
        )


def _over_q(fn, q: Array):
    """Apply `fn(q_scalar)` to a scalar `q`, or map it over a 1-D `q` (leading axis)."""
    return fn(q) if q.ndim == 0 else jax.vmap(fn)(q)


def argquantile(
    x: Array,
    q: float | Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    quantile_method: str = "linear",
    options: dict | None = None,
) -> Array:
    """SoftIndex of the q-quantile: `(..., n)` for a scalar `q`, `(len(q), ..., n)` for a
    1-D `q` (a leading q axis, as `jnp.quantile`). Hard mode gives the one-hot (or, when
    interpolating, two-hot) mixture of the exact order statistics."""
    q = jnp.asarray(q)
    _check(q, method, mode, index=True)
    dtype = output_dtype(x)

    def single(qi: Array) -> Array:
        index = _single(x, qi, softness, mode, method, standardize, quantile_method, options)[0]
        return index.astype(dtype)  # (..., n)

    return _over_q(single, q)


def quantile(
    x: Array,
    q: float | Array,
    softness: float | Array = 0.1,
    mode: str = "smooth",
    method: str = "neuralsort",
    standardize: bool = True,
    quantile_method: str = "linear",
    *,
    gated_grad: bool = True,
    options: dict | None = None,
) -> Array:
    """Soft q-quantile: `(...)` for a scalar `q`, `(len(q), ...)` for a 1-D `q`.

    Hard mode is `jnp.quantile(x, q, axis=-1, method=quantile_method)`. Otherwise the
    `argquantile` index applied to `x` (sorting network: its interpolated sorted values).
    `gated_grad=False` stops the gradient through the soft index.
    """
    q = jnp.asarray(q)
    _check(q, method, mode)
    if mode == "hard":
        return jnp.quantile(x, q, axis=-1, method=quantile_method)

    def single(qi: Array) -> Array:
        index, values = _single(
            x, qi, softness, mode, method, standardize, quantile_method, options,
            gated_grad=gated_grad,
        )
        if values is not None:
            return values  # (...)
        if not gated_grad:
            index = jax.lax.stop_gradient(index)
        xc = x.astype(index.dtype)
        return convex_combination(index[..., None, :], xc)[..., 0].astype(output_dtype(x))  # (...)

    return _over_q(single, q)
