"""Rule: an axis outside [-ndim, ndim) or not an int (a tuple of distinct ints, where the op
reduces over several axes) is rejected while tracing, naming the valid range."""

import re

import pytest

from ._calls import SHAPE, params_of_kind, trace_only, traced_call, valid_args

AXIS_PARAMS = params_of_kind("axis") + params_of_kind("axes")
TUPLE_PARAMS = params_of_kind("axes")
NDIM = len(SHAPE)


@pytest.mark.parametrize(("name", "param"), AXIS_PARAMS)
@pytest.mark.parametrize("axis", [NDIM, -NDIM - 1, 7])
def test_axis_out_of_bounds_names_the_valid_axes(name, param, axis):
    message = (
        rf"(?m)^{name}: axis {axis} is out of bounds for an array of rank {NDIM}; "
        rf"valid axes are {-NDIM}\.\.{NDIM - 1}$"
    )
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**valid_args(name), param: axis})


@pytest.mark.parametrize(("name", "param"), AXIS_PARAMS)
@pytest.mark.parametrize("axis", [1.0, "0", True], ids=repr)
def test_axis_that_is_not_an_int_is_rejected(name, param, axis):
    message = (
        rf"(?m)^{name}: axis must be an int, a tuple of ints or None, "
        rf"got {re.escape(repr(axis))}$"
    )
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**valid_args(name), param: axis})


@pytest.mark.parametrize(("name", "param"), TUPLE_PARAMS)
@pytest.mark.parametrize("axis", [(0, 0), (1, -1)], ids=repr)
def test_repeated_axis_is_rejected(name, param, axis):
    message = rf"^{name}: repeated axis in axis={re.escape(repr(axis))}"
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**valid_args(name), param: axis})


@pytest.mark.parametrize(("name", "param"), TUPLE_PARAMS)
def test_an_out_of_bounds_axis_inside_a_tuple_is_rejected(name, param):
    with pytest.raises(ValueError, match=rf"^{name}: axis {NDIM} is out of bounds"):
        traced_call(name, **{**valid_args(name), param: (0, NDIM)})


@pytest.mark.parametrize(("name", "param"), AXIS_PARAMS)
def test_negative_in_range_axes_are_accepted(name, param):
    trace_only(name, **{**valid_args(name), param: -1})
