"""The public surface: names, promotion, broadcasting and argument errors."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from codegen.generate import NON_OP_EXPORTS
from diffbio.core import soft_ops
from tests.generated.cases import OPS, ST_NAMES


def required_args(name: str) -> dict:
    """Arrays of ones for the array parameters, and a valid value for k / q."""
    info = OPS[name]
    args = {p: jnp.ones(3) for p in info["array_params"]}
    for param, kind in zip(info["params"], info["kinds"], strict=True):
        if kind == "k":
            args[param] = 1
        elif kind == "q":
            args[param] = 50.0 if "percentile" in name else 0.5
    return args


SOFTNESS_OPS = [name for name, info in OPS.items() if "softness" in info["params"]]
MODE_OPS = [name for name, info in OPS.items() if info["modes"]]


def test_catalogue_names_equal_all_minus_non_op_exports():
    assert set(soft_ops.__all__) - set(NON_OP_EXPORTS) == set(OPS) | set(ST_NAMES)
    assert len(soft_ops.__all__) == len(set(soft_ops.__all__))
    for name in soft_ops.__all__:
        assert getattr(soft_ops, name) is not None


def test_every_st_variant_has_a_hard_mode():
    for name in ST_NAMES:
        assert "hard" in OPS[name.removesuffix("_st")]["modes"]
        assert callable(getattr(soft_ops, name))


def test_importing_soft_ops_pulls_in_no_optional_dependency():
    import subprocess
    import sys

    code = (
        "import sys; import diffbio.core.soft_ops; "
        "bad = [m for m in ('flax', 'datarax', 'yaml', 'ruamel', 'jinja2', 'pydantic', 'scipy') "
        "if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", MODE_OPS)
def test_unknown_mode_names_op_value_and_valid_modes(name):
    args = required_args(name)
    valid = ", ".join(repr(m) for m in OPS[name]["modes"])
    with pytest.raises(
        ValueError, match=rf"^{name}: invalid mode 'soft'; valid modes are {valid}$"
    ):
        getattr(soft_ops, name)(**args, mode="soft")


@pytest.mark.parametrize("name", SOFTNESS_OPS)
@pytest.mark.parametrize("softness", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_softness_is_rejected_with_its_value(name, softness):
    args = required_args(name)
    with pytest.raises(
        ValueError, match=rf"^{name}: softness must be a positive finite number, got {softness!r}$"
    ):
        getattr(soft_ops, name)(**args, softness=softness)


def test_bad_softness_is_rejected_while_tracing_under_jit():
    with pytest.raises(ValueError, match="softness must be a positive finite number, got 0.0"):
        jax.jit(lambda x: soft_ops.greater(x, 0.0, softness=0.0))(jnp.ones(2))


def test_traced_softness_is_accepted_and_differentiable():
    x = jnp.array([-0.2, 0.1, 0.4])
    grad = jax.jit(jax.grad(lambda s: soft_ops.greater(x, 0.0, softness=s).sum()))(0.3)
    sig = jax.nn.sigmoid((x - 1e-10) / 0.3)
    np.testing.assert_allclose(grad, np.sum(-sig * (1 - sig) * x / 0.09), rtol=1e-5)


@pytest.mark.parametrize("axis", [2, -3, 1.5, "0"])
def test_bad_axis_is_rejected(axis):
    with pytest.raises(ValueError, match=r"^all: axis"):
        soft_ops.all(jnp.ones((2, 2)), axis=axis)


def test_bad_neighbor_radius_is_rejected():
    with pytest.raises(
        ValueError, match=r"^round: neighbor_radius must be an integer >= 0, got -1$"
    ):
        soft_ops.round(jnp.ones(2), neighbor_radius=-1)


@pytest.mark.parametrize(
    "name", ["greater", "relu", "sign", "round", "equal", "logical_and", "sqrt"]
)
def test_integer_and_boolean_inputs_are_promoted_like_jnp(name):
    args = {p: jnp.array([0, 1, 3]) for p in OPS[name]["array_params"]}
    assert getattr(soft_ops, name)(**args).dtype == jnp.zeros(1).dtype
    bools = {p: jnp.array([True, False, True]) for p in OPS[name]["array_params"]}
    assert getattr(soft_ops, name)(**bools).dtype == jnp.zeros(1).dtype


@pytest.mark.parametrize(
    "name", [n for n, i in OPS.items() if len(i["array_params"]) >= 2 and not i["fixed"]]
)
def test_binary_ops_broadcast_like_jnp(name):
    x, y = jnp.linspace(0.1, 0.9, 3)[:, None], jnp.linspace(0.2, 0.8, 4)[None, :]
    args = dict(zip(OPS[name]["array_params"], (x, y, y), strict=False))
    assert getattr(soft_ops, name)(**args).shape == (3, 4)


def test_clip_broadcasts_bounds():
    x = jnp.zeros((2, 3))
    out = soft_ops.clip(x, jnp.array([-1.0, 0.5, 1.0]), 2.0, mode="hard")
    np.testing.assert_array_equal(out, jnp.clip(x, jnp.array([-1.0, 0.5, 1.0]), 2.0))


def test_bfloat16_stays_bfloat16_with_an_array_softness():
    x = jnp.array([0.1, -0.2], dtype=jnp.bfloat16)
    assert soft_ops.relu(x, softness=jnp.float32(0.1)).dtype == jnp.bfloat16
    assert soft_ops.greater(x, 0.0, softness=jnp.float32(0.1)).dtype == jnp.bfloat16


def test_every_public_op_has_a_docstring_with_the_sections():
    for name in OPS:
        doc = inspect.getdoc(getattr(soft_ops, name))
        for section in ("**Arguments:**", "**Returns:**", "**Example:**"):
            assert section in doc, (name, section)


@pytest.mark.parametrize("name", sorted(OPS) + sorted(ST_NAMES))
def test_docstring_examples_run(name):
    doc = inspect.getdoc(getattr(soft_ops, name))
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(code, scope)  # noqa: S102
