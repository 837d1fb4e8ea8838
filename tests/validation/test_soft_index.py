"""Rule: a SoftIndex whose last dimension is not the length of the indexed axis (or the
number of choices, for `choose`) is rejected while tracing, naming the op, the argument,
the bad shape and the length it must have. Integer indices follow `jnp` / `lax`."""

import re

import jax.numpy as jnp
import pytest

from diffbio.core import soft_ops
from tests.generated.cases import OPS

from ._calls import SELECTION_ARGS, kinds, trace_only, traced_call, valid_args

# Every op that takes a SoftIndex: a `softindex` parameter, or a per-axis `soft_*` sequence.
INDEX_PARAMS = [
    (op, p)
    for op in OPS
    for p, kind in kinds(op).items()
    if kind == "softindex" or (kind == "sequence" and p.startswith("soft_"))
]
SINGLE_INDEX_PARAMS = [(op, p) for op, p in INDEX_PARAMS if kinds(op)[p] == "softindex"]


def _wrong_length(value):
    """The same SoftIndex with one position too many on its last axis."""
    value = jnp.asarray(value)
    return jnp.concatenate([value, jnp.zeros(value.shape[:-1] + (1,), value.dtype)], axis=-1)


def test_every_op_with_a_soft_index_has_a_valid_call():
    assert {op for op, _ in INDEX_PARAMS} <= set(SELECTION_ARGS)
    assert {"take_along_axis", "take", "choose", "dynamic_index_in_dim",
            "dynamic_slice_in_dim", "dynamic_slice"} <= {op for op, _ in INDEX_PARAMS}


@pytest.mark.parametrize(("name", "param"), INDEX_PARAMS)
def test_soft_index_of_the_wrong_length_is_rejected(name, param):
    args = valid_args(name)
    if isinstance(args[param], list):  # one start per axis: break the soft one
        position = next(i for i, s in enumerate(args[param]) if not isinstance(s, int))
        bad = list(args[param])
        bad[position] = _wrong_length(bad[position])
        argument, n = rf"{param}\[{position}\]", args["x"].shape[position]
    else:
        bad = _wrong_length(args[param])
        argument, n = param, bad.shape[-1] - 1
    shape = re.escape(str(tuple(jnp.shape(bad[position] if isinstance(bad, list) else bad))))
    message = (
        rf"(?m)^{name}: the SoftIndex's last axis must have the length of "
        rf"(axis \d of x|choices|the flattened x) \({n}\), "
        rf"got a SoftIndex of shape {shape} as {argument}$"
    )
    with pytest.raises(ValueError, match=message):
        traced_call(name, **{**args, param: bad})


@pytest.mark.parametrize(("name", "param"), SINGLE_INDEX_PARAMS)
def test_scalar_soft_index_is_rejected(name, param):
    with pytest.raises(ValueError, match=rf"^{name}: .* got a SoftIndex of shape \(\) as {param}"):
        traced_call(name, **{**valid_args(name), param: jnp.float32(1.0)})


def test_take_with_axis_none_checks_against_the_flattened_size():
    args = {**valid_args("take"), "axis": None}
    trace_only("take", **{**args, "soft_index": jnp.full((2, 6), 1 / 6)})
    with pytest.raises(ValueError, match=r"the length of the flattened x \(6\)"):
        traced_call("take", **args)


def test_dynamic_slice_needs_one_start_per_axis():
    args = valid_args("dynamic_slice")
    message = r"^dynamic_slice: soft_start_indices must hold one start per axis of x \(2\), got "
    with pytest.raises(ValueError, match=message + "1 starts"):
        traced_call("dynamic_slice", **{**args, "soft_start_indices": [0]})
    with pytest.raises(ValueError, match=message + "3 starts"):
        traced_call("dynamic_slice", **{**args, "soft_start_indices": jnp.array([0, 1, 0])})
    with pytest.raises(ValueError, match="(?m)" + message + "3$"):
        traced_call("dynamic_slice", **{**args, "soft_start_indices": 3})


@pytest.mark.parametrize(("name", "param"), SINGLE_INDEX_PARAMS)
def test_integer_indices_are_left_to_jnp(name, param):
    """A hard index is not a distribution: its shape follows the `jnp` rules, unchecked here.
    (Called eagerly: `jnp.choose`'s default mode="raise" needs a concrete index.)"""
    hard = jnp.zeros(jnp.shape(valid_args(name)[param])[:-1], dtype=jnp.int32)
    if name == "take_along_axis":
        hard = jnp.zeros((2, 1), dtype=jnp.int32)
    getattr(soft_ops, name)(**{**valid_args(name), param: hard})
