"""Rule: integer and boolean inputs where a float is needed are promoted as `jnp` promotes
them (to the default float dtype, as `jnp.mean` does); floating inputs keep their dtype.

Every op and every mode returns a floating result, so that it can be differentiated;
`mode="hard"` returns the same dtype as the soft modes. Checked with `jax.eval_shape`
(tracing only, nothing is compiled).
"""

import jax
import jax.numpy as jnp
import pytest

from diffbio.core import soft_ops
from tests.generated.cases import OPS

from ._calls import ARRAY_KINDS, kinds, valid_args

DTYPES = ["int32", "uint8", "bool", "bfloat16", "float16", "float32"]
NUMERIC_KINDS = ("array", "softbool", "values")
NUMERIC_OPS = [op for op in OPS if set(kinds(op).values()) & set(NUMERIC_KINDS)]


def _cases():
    for op in NUMERIC_OPS:
        for mode in [m for m in ("smooth", "hard") if m in OPS[op]["modes"]] or [None]:
            yield op, mode


def _output_dtypes(name, dtype, mode):
    args = valid_args(name)
    ks = kinds(name)
    args = {k: v.astype(dtype) if ks[k] in NUMERIC_KINDS else v for k, v in args.items()}
    arrays = {k: v for k, v in args.items() if ks[k] in ARRAY_KINDS}
    static = {k: v for k, v in args.items() if k not in arrays}
    extra = {} if mode is None else {"mode": mode}
    out = jax.eval_shape(lambda a: getattr(soft_ops, name)(**a, **static, **extra), arrays)
    return {jnp.dtype(leaf.dtype) for leaf in jax.tree.leaves(out)}, args


@pytest.mark.parametrize(("name", "mode"), list(_cases()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_are_promoted_like_jnp(name, mode, dtype):
    dtypes, args = _output_dtypes(name, dtype, mode)
    # What jnp gives when it mixes the op's numeric inputs (and any SoftIndex) in floats.
    mixed = [v for k, v in args.items() if kinds(name)[k] in ("array", "softbool", "values")]
    mixed += [v for k, v in args.items() if kinds(name)[k] == "softindex"]
    mixed += [
        start for k, v in args.items() if k.startswith("soft_") and isinstance(v, list)
        for start in v
    ]
    expected = jnp.result_type(*mixed, float)
    assert jnp.issubdtype(expected, jnp.floating)
    assert dtypes == {expected}, (name, dtype, mode, dtypes)


def test_integer_inputs_become_the_default_float_dtype():
    default = jnp.zeros(()).dtype
    for name in ("sort", "rank", "quantile", "greater", "relu", "logical_and", "sqrt"):
        dtypes, _ = _output_dtypes(name, "int32", None if not OPS[name]["modes"] else "smooth")
        assert dtypes == {default}, name


def test_integer_values_with_a_hard_index_stay_integer_as_in_jnp():
    x = jnp.arange(6).reshape(2, 3)
    index = jnp.zeros((2, 1), dtype=jnp.int32)
    out = jax.eval_shape(lambda x, i: soft_ops.take_along_axis(x, i, axis=1), x, index)
    assert out.dtype == jnp.take_along_axis(x, index, axis=1).dtype
