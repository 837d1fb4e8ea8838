"""Rule: a count `k` outside [1, n] (n the length of the axis it selects along), or not an
integer, is rejected while tracing; k = 1 and k = n are accepted."""

import re

import numpy as np
import pytest

from ._calls import SHAPE, params_of_kind, trace_only, traced_call, valid_args

K_PARAMS = params_of_kind("k")
N = SHAPE[-1]


@pytest.mark.parametrize(("name", "param"), K_PARAMS)
@pytest.mark.parametrize("k", [N + 1, 100])
def test_k_larger_than_the_axis_is_rejected(name, param, k):
    message = rf"(?m)^{name}: {param} must be in \[1, {N}\] \(the length of the axis\), got {k}$"
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**valid_args(name), param: k})


@pytest.mark.parametrize(("name", "param"), K_PARAMS)
def test_k_is_checked_against_the_flattened_size_when_axis_is_none(name, param):
    size = int(np.prod(SHAPE))
    trace_only(name, **{**valid_args(name), param: size, "axis": None})
    with pytest.raises(ValueError, match=rf"^{name}: {param} must be in \[1, {size}\]"):
        traced_call(name, **{**valid_args(name), param: size + 1, "axis": None})


@pytest.mark.parametrize(("name", "param"), K_PARAMS)
@pytest.mark.parametrize("k", [0, -1, 1.0, 2.5, True, "2", None, np.array([1, 2])], ids=repr)
def test_k_below_one_or_not_an_integer_is_rejected(name, param, k):
    message = rf"(?m)^{name}: {param} must be an integer >= 1, got {re.escape(repr(k))}$"
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**valid_args(name), param: k})


@pytest.mark.parametrize(("name", "param"), K_PARAMS)
@pytest.mark.parametrize("k", [1, N, np.int64(N)], ids=repr)
def test_k_from_one_to_n_is_accepted(name, param, k):
    trace_only(name, **{**valid_args(name), param: k})
