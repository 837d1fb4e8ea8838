"""Rule: a concrete quantile level outside [0, 1] (a percentile outside [0, 100]), not
finite, or of more than one dimension is rejected while tracing; the bounds themselves
and a traced level are accepted."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffbio.core import soft_ops

from ._calls import params_of_kind, trace_only, traced_call, valid_args

Q_PARAMS = params_of_kind("q")


def high(param: str) -> float:
    """Percentiles (`p`) are in [0, 100], quantile levels (`q`) in [0, 1]."""
    return 100.0 if param == "p" else 1.0


def _shown(value) -> str:
    values = np.asarray(value, dtype=np.float64)
    return repr(values.item() if values.ndim == 0 else values.tolist())


@pytest.mark.parametrize(("name", "param"), Q_PARAMS)
@pytest.mark.parametrize("scale", [-0.1, 1.01, float("nan"), float("inf")], ids=repr)
def test_level_outside_its_range_is_rejected_with_the_range(name, param, scale):
    bad = scale * high(param)
    message = (
        rf"(?m)^{name}: {param} must lie in \[0, {high(param):g}\], got {re.escape(_shown(bad))}$"
    )
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**valid_args(name), param: bad})


@pytest.mark.parametrize(("name", "param"), Q_PARAMS)
def test_one_bad_level_in_an_array_is_rejected(name, param):
    bad = jnp.array([0.5, 1.5]) * high(param)
    with pytest.raises(ValueError, match=rf"^{name}: {param} must lie in \[0, {high(param):g}\]"):
        traced_call(name, **{**valid_args(name), param: bad})


@pytest.mark.parametrize(("name", "param"), Q_PARAMS)
def test_level_of_two_dimensions_is_rejected(name, param):
    with pytest.raises(ValueError, match=rf"^{name}: {param} must be a scalar or a 1-D array"):
        traced_call(name, **{**valid_args(name), param: np.full((2, 2), 0.5)})


@pytest.mark.parametrize(("name", "param"), Q_PARAMS)
@pytest.mark.parametrize("value", ["0.5", None], ids=repr)
def test_non_numeric_level_is_rejected(name, param, value):
    with pytest.raises(ValueError, match=rf"^{name}: {param} must"):
        traced_call(name, **{**valid_args(name), param: value})


@pytest.mark.parametrize(("name", "param"), Q_PARAMS)
def test_bounds_and_an_array_of_levels_are_accepted(name, param):
    for level in (0.0, 1.0, np.array([0.0, 0.25, 1.0]), 1):
        trace_only(name, **{**valid_args(name), param: level * high(param)})


@pytest.mark.parametrize(("name", "param"), Q_PARAMS)
def test_traced_level_is_accepted(name, param):
    args = valid_args(name)
    fn = getattr(soft_ops, name)
    jax.jit(lambda x, q: fn(**{**args, "x": x, param: q})).trace(args["x"], jnp.float32(0.5))
