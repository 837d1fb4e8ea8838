"""Rule: an unknown method, a values-only method where a SoftIndex is needed, and a method
asked for a mode it does not implement are rejected while tracing; each message lists
what would work."""

import re

import pytest

from tests.generated.cases import METHODS, OPS

from ._calls import traced_call, valid_args

METHOD_OPS = [name for name, info in OPS.items() if info["methods"]]
VALUES_ONLY = [m for m, spec in METHODS.items() if not spec["soft_index"]]


def _listing(names) -> str:
    return re.escape(", ".join(repr(m) for m in names))


@pytest.mark.parametrize("name", METHOD_OPS)
@pytest.mark.parametrize("method", ["bogus", "NeuralSort", None])
def test_unknown_method_lists_the_valid_methods(name, method):
    message = (
        rf"(?m)^{name}: invalid method {re.escape(repr(method))}; "
        rf"valid methods are {_listing(OPS[name]['methods'])}$"
    )
    with pytest.raises(ValueError, match=message):
        traced_call(name, **valid_args(name), method=method)


@pytest.mark.parametrize(
    ("name", "method"),
    [(n, m) for n in METHOD_OPS for m in VALUES_ONLY if m not in OPS[n]["methods"]],
)
def test_values_only_method_on_an_op_that_needs_a_soft_index(name, method):
    message = (
        rf"(?m)^{name}: method '{method}' produces sorted values only and no SoftIndex, which "
        rf"{name} needs; methods that give one are {_listing(OPS[name]['methods'])}$"
    )
    with pytest.raises(ValueError, match=message):
        traced_call(name, **valid_args(name), method=method)


@pytest.mark.parametrize(
    ("name", "method", "mode"),
    [
        (n, m, mode)
        for n in METHOD_OPS
        for m in OPS[n]["methods"]
        for mode in OPS[n]["modes"]
        if mode != "hard" and mode not in METHODS[m]["modes"]
    ]
    or [pytest.param(None, None, None, marks=pytest.mark.skip("every method has every mode"))],
)
def test_method_without_the_mode_names_its_modes(name, method, mode):
    modes = _listing(["hard", *METHODS[method]["modes"]])
    message = rf"^{name}: method '{method}' does not implement mode '{mode}'; its modes are {modes}"
    with pytest.raises(ValueError, match=message):
        traced_call(name, **valid_args(name), method=method, mode=mode)
