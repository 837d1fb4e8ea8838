"""Parametrisations split between `make test` (the quick profile) and `make test-full`."""

import pytest


def quick_only(values, quick):
    """`values` as parametrisations: those in `quick` run in `make test`, the others are
    marked `slow` (`make test-full`). For checks whose code path is shared across the
    values (the same kernel in another mode, the same property at another size)."""
    quick = set(quick)
    assert quick <= set(values), (quick, values)
    return [v if v in quick else pytest.param(v, marks=pytest.mark.slow) for v in values]
