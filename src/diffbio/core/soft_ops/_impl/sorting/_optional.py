"""Lazy access to the optional solver libraries of the `ot` method.

`method="ot"` solves transport problems with ott-jax (Sinkhorn) and optimistix (L-BFGS,
which brings lineax). They come with the `soft-ops-advanced` extra and are imported
here on first use only, so that `import diffbio.core.soft_ops` never imports them and
the other methods work without them.
"""

import importlib
import types

EXTRA = "soft-ops-advanced"
"""Name of the optional-dependency group that installs the solver libraries."""

_MODULES = {
    "optimistix": "optimistix",
    "lineax": "lineax",
    "geometry": "ott.geometry.geometry",
    "linear_problem": "ott.problems.linear.linear_problem",
    "sinkhorn": "ott.solvers.linear.sinkhorn",
}
"""Attribute of the namespace returned by `require` → module it holds."""

_NEEDS = {
    "ot": ("optimistix", "geometry", "linear_problem", "sinkhorn"),
}
"""Method → attributes it needs."""

_PACKAGES = {"optimistix": "optimistix", "lineax": "lineax", "ott": "ott-jax"}
"""Top-level module → distribution name, for the error message."""

_cache: dict[str, types.ModuleType] = {}


def require(method: str) -> types.SimpleNamespace:
    """Import the optional libraries that `method` needs, on first use.

    **Arguments:**

    - `method`: `"ot"`.

    **Returns:**

    A namespace with the imported modules as attributes (`optimistix`, `geometry`,
    `linear_problem`, `sinkhorn`; only those the method needs).

    **Raises:**

    `ImportError` naming the missing package and the `soft-ops-advanced` extra that
    installs it.
    """
    try:
        names = _NEEDS[method]
    except KeyError:
        raise ValueError(f"no optional dependencies are known for method={method!r}") from None
    modules = {}
    for name in names:
        if name not in _cache:
            path = _MODULES[name]
            try:
                _cache[name] = importlib.import_module(path)
            except ImportError as error:
                package = _PACKAGES[path.split(".")[0]]
                wanted = ", ".join(sorted({_PACKAGES[_MODULES[n].split(".")[0]] for n in names}))
                raise ImportError(
                    f"method={method!r} needs the optional dependencies {wanted} "
                    f"({package} could not be imported: {error}). Install them with: "
                    f"pip install 'diffbio-soft-ops[{EXTRA}]'"
                ) from error
        modules[name] = _cache[name]
    return types.SimpleNamespace(**modules)
