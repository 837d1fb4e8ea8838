"""Soft ordering kernels, one module per method (all work along the last axis).

Each of `softsort`, `neuralsort` and `sorting_network` provides `sort`, `argsort`,
`rank`, `argmax`, `argmin` and `top_k` with the same signatures; `quantile` provides
`argquantile` and `quantile` for all three. `KERNELS` maps a method name to its module.
"""

from types import ModuleType

from diffbio.core.soft_ops._impl.sorting import neuralsort, quantile, softsort, sorting_network

KERNELS: dict[str, ModuleType] = {
    "softsort": softsort,
    "neuralsort": neuralsort,
    "sorting_network": sorting_network,
}
"""Method name → kernel module."""

__all__ = ["KERNELS", "neuralsort", "quantile", "softsort", "sorting_network"]
