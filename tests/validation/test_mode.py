"""Rule: an unknown mode is rejected while tracing, and the message lists the valid modes."""

import re

import pytest

from tests.generated.cases import OPS, ST_NAMES

from ._calls import traced_call, valid_args

MODE_OPS = [name for name, info in OPS.items() if info["modes"]]


@pytest.mark.parametrize("name", MODE_OPS + ST_NAMES)
@pytest.mark.parametrize("mode", ["soft", "Smooth", None])
def test_unknown_mode_is_rejected_naming_op_value_and_valid_modes(name, mode):
    base = name.removesuffix("_st")
    valid = ", ".join(repr(m) for m in OPS[base]["modes"])
    message = rf"(?m)^{base}: invalid mode {re.escape(repr(mode))}; valid modes are {valid}$"
    with pytest.raises(ValueError, match=message):
        traced_call(name, **valid_args(base), mode=mode)
