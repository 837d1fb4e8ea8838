"""The `ot` kernels import their optional solver libraries lazily; `smooth_sort` needs none."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core.soft_ops._impl.sorting import _optional, ot, smooth_sort

_OPTIONAL = ("ott", "optimistix", "lineax")


def test_importing_soft_ops_imports_no_optional_dependency():
    code = (
        "import sys\n"
        "import diffbio.core.soft_ops\n"
        "from diffbio.core.soft_ops._impl.sorting import ot, smooth_sort, _ot_plan, _esp\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {_OPTIONAL!r})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.fixture
def without(monkeypatch):
    """`without(*packages)`: make the packages unimportable for this test."""

    def block(*packages):
        monkeypatch.setattr(_optional, "_cache", {})
        for name in list(sys.modules):
            if name.split(".")[0] in packages:
                monkeypatch.setitem(sys.modules, name, None)
        for name in packages:
            monkeypatch.setitem(sys.modules, name, None)

    return block


@pytest.mark.parametrize(
    "blocked, method, package",
    [(("ott",), "ot", "ott-jax"), (("optimistix",), "ot", "optimistix")],
)
def test_missing_dependency_names_the_extra(without, blocked, method, package):
    without(*blocked)
    with pytest.raises(ImportError) as info:
        _optional.require(method)
    message = str(info.value)
    assert "soft-ops-advanced" in message and package in message and repr(method) in message


def test_kernels_raise_the_import_error_and_hard_mode_needs_nothing(without):
    without(*_OPTIONAL)
    x = jnp.array([[0.3, -1.0, 2.0, 0.1]])
    with pytest.raises(ImportError, match="soft-ops-advanced"):
        ot.sort(x, 0.1, "smooth")
    with pytest.raises(ImportError, match="soft-ops-advanced"):
        ot.argsort(x, 0.1, "c1")
    # smooth_sort is pure JAX: its values keep the sum and the order of the input
    values = smooth_sort.sort(x, 0.1)
    np.testing.assert_allclose(values.sum(), x.sum(), rtol=1e-5)
    assert np.all(np.diff(np.asarray(values)) > 0)
    np.testing.assert_array_equal(ot.sort(x, 0.1, "hard"), jnp.sort(x))
    np.testing.assert_array_equal(ot.rank(x, 0.1, "hard"), [[3.0, 1.0, 4.0, 2.0]])
    np.testing.assert_array_equal(smooth_sort.sort(x, 0.1, "hard", descending=True), -jnp.sort(-x))
    np.testing.assert_array_equal(smooth_sort.top_k(x, 2, 0.1, "hard")[0], jax.lax.top_k(x, 2)[0])


def test_unknown_method():
    with pytest.raises(ValueError, match="no optional dependencies"):
        _optional.require("softsort")
