"""The catalogue validator: bad YAML snippets give exact, located error messages."""

import textwrap

import pytest

from codegen.load import CatalogueError, parse, roundtrip

GOOD_ENTRY = """\
version: 1
ops:
  - name: greater
    category: comparison
    summary: Soft x > y.
    hard: jax.numpy.greater
    kernel: comparison.greater
    params:
      - {name: x, kind: array}
      - {name: y, kind: array}
      - {name: softness, kind: softness}
      - {name: mode, kind: mode}
    modes: [hard, smooth, c0]
    returns: SoftBool
    returns_doc: Probabilities.
    example: soft_ops.greater(1.0, 0.0)
    st: true
"""

SORT_ENTRY = """\
version: 1
ops:
  - name: sort
    category: sorting
    summary: Soft sort.
    hard: jax.numpy.sort
    kernel: sorting.sort
    params:
      - {name: x, kind: array}
      - {name: axis, kind: axis, default: -1}
      - {name: softness, kind: softness}
      - {name: mode, kind: mode}
      - {name: method, kind: method}
    modes: [hard, smooth, c0, c1, c2]
    methods: [softsort, neuralsort, sorting_network]
    default_method: neuralsort
    returns: Array
    returns_doc: Sorted values.
    example: soft_ops.sort(x)
    st: true
methods:
  - {name: softsort, summary: S., complexity: O(n²), modes: [smooth, c0], soft_index: true, reference: R.}
  - {name: neuralsort, summary: N., complexity: O(n²), modes: [smooth], soft_index: true, reference: R.}
  - {name: sorting_network, summary: B., complexity: O(n log² n), modes: [smooth], soft_index: true, reference: R.}
  - {name: fast_soft_sort, summary: P., complexity: O(n log n), modes: [smooth], soft_index: false, reference: R.}
"""


def errors_of(text: str) -> str:
    with pytest.raises(CatalogueError) as info:
        parse(textwrap.dedent(text), "spec.yaml")
    return str(info.value)


def test_good_entries_parse():
    catalogue = parse(GOOD_ENTRY, "spec.yaml")
    assert [op.name for op in catalogue.ops] == ["greater"]
    sort = parse(SORT_ENTRY, "spec.yaml").ops[0]
    assert sort.default_method == "neuralsort"
    assert sort.returns == "Array"


def test_schema_describes_every_return_type_and_category_of_the_reference():
    text = SORT_ENTRY.replace("returns: Array", "returns: tuple[Array, SoftIndex]")
    assert parse(text, "spec.yaml").ops[0].returns == "tuple[Array, SoftIndex]"
    for category in ("elementwise", "comparison", "logical", "selection", "quantile", "safe_math"):
        entry = SORT_ENTRY.replace("category: sorting", f"category: {category}")
        assert parse(entry, "spec.yaml").ops[0].category == category


def test_unknown_key():
    text = GOOD_ENTRY.replace("    st: true\n", "    st: true\n    hardd: jax.numpy.greater\n")
    assert errors_of(text) == (
        "spec.yaml:18: op 'greater', field 'hardd': unknown key 'hardd'; allowed keys are "
        "name, category, summary, hard, hard_args, hard_kwargs, hard_in, kernel, params, modes, "
        "methods, default_method, returns, returns_doc, st, math, use_case, example, reference, "
        "test"
    )


def test_unknown_key_in_a_parameter():
    text = GOOD_ENTRY.replace("{name: y, kind: array}", "{name: y, kind: array, dflt: 1}")
    assert errors_of(text) == (
        "spec.yaml:10: op 'greater', field 'params[1].dflt': unknown key 'dflt'"
    )


def test_unknown_mode():
    text = GOOD_ENTRY.replace("modes: [hard, smooth, c0]", "modes: [hard, smooth, c3]")
    assert errors_of(text) == (
        "spec.yaml:13: op 'greater', field 'modes[2]': Input should be 'hard', 'smooth', "
        "'c0', 'c1' or 'c2' (got 'c3')"
    )


def test_default_method_not_among_methods():
    text = SORT_ENTRY.replace("default_method: neuralsort", "default_method: ot")
    assert errors_of(text) == (
        "spec.yaml:3: op 'sort': default_method 'ot' is not among methods "
        "['softsort', 'neuralsort', 'sorting_network']; add it to `methods` or pick one of them"
    )


def test_st_without_hard_mode():
    text = GOOD_ENTRY.replace("modes: [hard, smooth, c0]", "modes: [smooth, c0]")
    assert errors_of(text) == (
        "spec.yaml:3: op 'greater': `st: true` requires 'hard' in `modes` (the straight-through "
        "forward pass is the hard mode); add 'hard' to `modes` or set `st: false`"
    )


def test_duplicate_op_name():
    second = GOOD_ENTRY.split("ops:\n")[1]
    assert errors_of(GOOD_ENTRY + second) == (
        "spec.yaml:18: duplicate op name 'greater' (first defined at line 3); "
        "rename or merge the entries"
    )


def test_duplicate_key_inside_an_entry():
    text = GOOD_ENTRY.replace("    st: true\n", "    st: true\n    st: false\n")
    assert (
        errors_of(text)
        == 'spec.yaml:18: found duplicate key "st" with value "False" (original value: "True")'
    )


def test_missing_required_key():
    text = GOOD_ENTRY.replace("    returns: SoftBool\n", "")
    assert (
        errors_of(text)
        == "spec.yaml:3: op 'greater', field 'returns': missing required key 'returns'"
    )


def test_every_problem_is_reported():
    text = GOOD_ENTRY.replace("modes: [hard, smooth, c0]", "modes: [hard, smooth, c3]").replace(
        "category: comparison", "category: comparisons"
    )
    lines = errors_of(text).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("spec.yaml:4: op 'greater', field 'category': Input should be")


def test_the_catalogue_round_trips_unchanged():
    from codegen.generate import CATALOGUE_PATH, ROOT

    text = (ROOT / CATALOGUE_PATH).read_text()
    assert roundtrip(text) == text


def test_methods_table_describes_the_modes_each_method_implements():
    catalogue = parse(SORT_ENTRY, "spec.yaml")
    specs = catalogue.method_specs
    assert specs["softsort"].modes == ["smooth", "c0"]
    assert not specs["fast_soft_sort"].soft_index


def test_values_only_method_on_an_op_that_returns_a_soft_index():
    text = SORT_ENTRY.replace("returns: Array", "returns: SoftIndex").replace(
        "methods: [softsort, neuralsort, sorting_network]",
        "methods: [softsort, neuralsort, sorting_network, fast_soft_sort]",
    )
    assert errors_of(text) == (
        "spec.yaml:15: op 'sort', field 'methods': method 'fast_soft_sort' gives values only "
        "(soft_index: false) and cannot return a SoftIndex; remove it from this op's methods"
    )


def test_method_missing_from_the_methods_table():
    text = SORT_ENTRY.replace("  - {name: neuralsort, summary: N., complexity: O(n²), "
                              "modes: [smooth], soft_index: true, reference: R.}\n", "")
    assert errors_of(text) == (
        "spec.yaml:1: catalogue: ops use method(s) ['neuralsort'] that `methods` does not "
        "describe; add an entry (name, summary, complexity, modes, soft_index, reference) for each"
    )


def test_method_modes_must_be_soft_modes():
    text = SORT_ENTRY.replace("modes: [smooth, c0], soft_index", "modes: [hard, smooth], soft_index")
    assert errors_of(text) == (
        "spec.yaml:22: field 'methods[0]': `modes` lists 'hard'; every method has it, list soft "
        "modes only"
    )
