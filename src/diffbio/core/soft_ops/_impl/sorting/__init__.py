"""Soft ordering kernels, one module per method (all work along the last axis).

Each of `softsort`, `neuralsort`, `sorting_network` and `ot` provides `sort`, `argsort`,
`rank`, `argmax`, `argmin` and `top_k` with the same signatures; the values-only methods
`fast_soft_sort` and `smooth_sort` provide `sort`, `rank` and `top_k` (its index
`None`); `quantile` provides `argquantile` and `quantile` for all of them. `KERNELS`
maps a method name to its module, imported on first use, so a method whose kernel needs
an optional dependency costs nothing until it is called. The dispatcher (`ordering.py`,
`quantile.py`) also routes the values-only methods of the catalogue's methods table
(`VALUES_ONLY`: sorted values, no SoftIndex) and passes `ot_kwargs` to `method="ot"`.
"""

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

METHOD_MODULES = (
    "softsort",
    "neuralsort",
    "sorting_network",
    "fast_soft_sort",
    "smooth_sort",
    "ot",
)
"""Every method, by the name of its kernel module in this package."""


class _Kernels(Mapping[str, ModuleType]):
    """Method name → kernel module, importing each module the first time it is asked for."""

    def __getitem__(self, method: str) -> ModuleType:
        if method not in METHOD_MODULES:
            raise KeyError(method)
        return importlib.import_module(f"{__name__}.{method}")

    def __iter__(self) -> Iterator[str]:
        return iter(METHOD_MODULES)

    def __len__(self) -> int:
        return len(METHOD_MODULES)


KERNELS: Mapping[str, ModuleType] = _Kernels()
"""Method name → kernel module."""

SOLVER_METHODS = ("ot", "smooth_sort")
"""Methods with an iterative solver: `ot_kwargs` are their options."""


def solver_options(method: str, ot_kwargs: dict | None) -> dict:
    """Keyword arguments that pass `ot_kwargs` to a solver method's kernel (`options=`);
    empty for the other methods, which ignore them."""
    return {"options": ot_kwargs} if method in SOLVER_METHODS else {}


__all__ = ["KERNELS", "METHOD_MODULES", "SOLVER_METHODS", "solver_options"]
