"""Render the validated catalogue into the generated files (a path -> content map)."""

import re
from collections.abc import Iterable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .model import CATEGORIES, MODES, Catalogue, OpSpec, Param

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE_PATH = "spec/soft_ops.yaml"
PACKAGE_DIR = "src/diffbio/core/soft_ops"
GENERATED_DIRS = (f"{PACKAGE_DIR}/_generated", "tests/generated", "docs/reference/generated")
DTYPES = ("float32", "float64", "bfloat16")
DEFAULT_SOFTNESS = 0.1
NON_OP_EXPORTS = ("SoftBool", "SoftIndex", "grad_replace", "st")

# The marker is split so this generator's own source never carries it.
MARKER = "@" + "generated"

_ANNOTATIONS = {
    "array": "ArrayLike",
    "softbool": "ArrayLike",
    "values": "ArrayLike",
    "softindex": "ArrayLike",
    "sequence": "Sequence[ArrayLike]",
    "softness": "float | Array",
    "axis": "int | None",
    "axes": "int | tuple[int, ...] | None",
    "k": "int",
    "q": "ArrayLike",
    "float": "float",
    "int": "int",
    "bool": "bool",
    "str": "str",
    "options": "dict[str, Any] | None",
}
_RETURNS = {
    "Array": "Array",
    "SoftBool": "SoftBool",
    "SoftIndex": "SoftIndex",
    "tuple[Array, SoftIndex]": "tuple[Array, SoftIndex | None]",
}


def header(template: str, comment: str = "#") -> str:
    first = f"{MARKER} by codegen from {CATALOGUE_PATH} (template: {template})."
    second = "DO NOT EDIT: change the catalogue or the template and run `make generate`."
    if comment == "<!--":
        return f"<!-- {first}\n     {second} -->"
    return f"{comment} {first}\n{comment} {second}"


def _literal(value: object) -> str:
    return repr(value)


def _strings(values: Iterable[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def annotation(op: OpSpec, param: Param) -> str:
    if param.kind == "mode":
        return f"Literal[{_strings(op.modes)}]"
    if param.kind == "method":
        return f"Literal[{_strings(op.methods)}]"
    return _ANNOTATIONS[param.kind]


def default(op: OpSpec, param: Param) -> str:
    if param.kind == "softness":
        return _literal(param.default if param.default is not None else DEFAULT_SOFTNESS)
    if param.kind == "mode":
        return '"smooth"'
    if param.kind == "method":
        return f'"{op.default_method}"'
    return _literal(param.default)


def signature(op: OpSpec) -> list[str]:
    parts = []
    for param in op.params:
        text = f"{param.name}: {annotation(op, param)}"
        if param.has_default:
            text += f" = {default(op, param)}"
        parts.append(text)
    return parts


def hard_call(op: OpSpec) -> str:
    module, _, name = op.hard.rpartition(".")
    alias = {"jax.numpy": "jnp", "jax.nn": "jax.nn", "jax.lax": "lax"}.get(module, module)
    args = op.hard_args if op.hard_args is not None else [p.name for p in op.array_params]
    args = list(args) + [f"{k}={k}" for k in op.hard_kwargs]
    return f"{alias}.{name}({', '.join(args)})"


# The validators (of `_impl/validation.py`) each parameter kind's generated checks call.
_VALIDATOR_OF_KIND = {
    "mode": ("check_choice",),
    "method": ("check_method",),
    "softness": ("check_softness",),
    "float": ("check_finite_float",),
    "int": ("check_nonnegative_int",),
    "k": ("check_k", "axis_length"),
    "q": ("check_level",),
    "axis": ("check_axis",),
    "axes": ("check_axis",),
}


def soft_sequence(param: Param) -> bool:
    """A `sequence` parameter named ``soft_*`` holds one (hard or soft) start per axis
    of the op's `values` array; the generated wrapper checks each SoftIndex's length."""
    return param.kind == "sequence" and param.name.startswith("soft_")


def percent_or_level(param: Param) -> str:
    """The upper bound of a `q` parameter: 100 for a percentile `p`, else 1."""
    return "100.0" if param.name == "p" else "1.0"


def _softindex_validators(op: OpSpec) -> set[str]:
    kinds = {p.kind for p in op.params}
    names = set()
    if "softindex" in kinds:
        names |= {"check_soft_index_along"} if "values" in kinds else {
            "check_soft_index", "number_of_choices"
        }
    if "values" in kinds and any(soft_sequence(p) for p in op.params):
        names.add("check_soft_starts")
    return names


def imports(ops: list[OpSpec]) -> dict[str, list[str]]:
    """The names each generated wrapper module needs, so it imports nothing unused."""
    kinds = {p.kind for op in ops for p in op.params}
    hard_calls = [
        hard_call(op) for op in ops if op.hard and "hard" in op.modes and op.hard_in == "wrapper"
    ]
    typing = [n for n, used in (("Any", "options" in kinds), ("Literal", "mode" in kinds)) if used]
    abc = ["Sequence"] if "sequence" in kinds else []
    promotes = any(op.array_params for op in ops)
    validation = {name for k in kinds for name in _VALIDATOR_OF_KIND.get(k, ())}
    for op in ops:
        validation |= _softindex_validators(op)
    if any(p.choices for op in ops for p in op.params):
        validation.add("check_choice")
    if promotes:
        validation.add("as_inexact")
    if "softness" in kinds:
        validation.add("cast_softness")
    annotations = " ".join(" ".join(signature(op)) + " " + _RETURNS[op.returns] for op in ops)
    return {
        "array": ["Array"] if re.search(r"\bArray\b", annotations) else [],
        "typing": typing,
        "abc": abc,
        "jax": ["jax"] if any(c.startswith("jax.") for c in hard_calls) else [],
        "jnp": ["jnp"]
        if any(c.startswith("jnp.") for c in hard_calls) or kinds & {"values", "softindex"}
        else [],
        "kernels": sorted({op.kernel.split(".")[0] for op in ops}),
        "types": sorted(
            {"SoftBool" for op in ops if "SoftBool" in op.returns}
            | {"SoftIndex" for op in ops if "SoftIndex" in op.returns}
        ),
        "validation": sorted(validation),
    }


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(ROOT / "codegen" / "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        code=lambda text: f"`{text}`",
        add_suffix=lambda name, suffix: f"{name}{suffix}",
        as_keyword=lambda name: f"{name}={name}",
    )
    env.globals.update(
        header=header,
        signature=signature,
        default=default,
        hard_call=hard_call,
        imports=imports,
        percent_or_level=percent_or_level,
        soft_sequence=soft_sequence,
        defaults=lambda op: (
            "{"
            + ", ".join(f'"{p.name}": {default(op, p)}' for p in op.params if p.has_default)
            + "}"
        ),
        returns=lambda op: _RETURNS[op.returns],
        strings=_strings,
        literal=_literal,
        MODES=MODES,
        DTYPES=DTYPES,
        NON_OP_EXPORTS=NON_OP_EXPORTS,
    )
    return env


def render(catalogue: Catalogue) -> dict[str, str]:
    """Every generated file, keyed by its path relative to the repository root."""
    env = _environment()
    specs = catalogue.method_specs

    def op_modes(op: OpSpec, method: str | None) -> list[str]:
        """The op's modes that `method` implements (`hard` always)."""
        if method is None or method not in specs:
            return list(op.modes)
        return [m for m in op.modes if m == "hard" or m in specs[method].modes]

    env.globals.update(op_modes=op_modes, method_specs=specs)
    by_category = {c: [op for op in catalogue.ops if op.category == c] for c in CATEGORIES}
    by_category = {c: ops for c, ops in by_category.items() if ops}
    st_ops = [op for op in catalogue.ops if op.st]
    files: dict[str, str] = {}

    for category, ops in by_category.items():
        files[f"{PACKAGE_DIR}/_generated/{category}.py"] = env.get_template(
            "wrappers.py.j2"
        ).render(category=category, ops=ops, template="wrappers.py.j2")
    files[f"{PACKAGE_DIR}/_generated/straight_through.py"] = env.get_template(
        "straight_through.py.j2"
    ).render(ops=st_ops, template="straight_through.py.j2")
    files[f"{PACKAGE_DIR}/_generated/methods.py"] = env.get_template("methods.py.j2").render(
        methods=catalogue.methods, template="methods.py.j2"
    )
    files[f"{PACKAGE_DIR}/_generated/__init__.py"] = env.get_template(
        "generated_init.py.j2"
    ).render(template="generated_init.py.j2")
    op_names = [op.name for op in catalogue.ops] + [f"{op.name}_st" for op in st_ops]
    exports = sorted(op_names + list(NON_OP_EXPORTS))
    files[f"{PACKAGE_DIR}/__init__.py"] = env.get_template("package_init.py.j2").render(
        by_category=by_category, st_ops=st_ops, exports=exports, template="package_init.py.j2"
    )
    files["tests/generated/__init__.py"] = header("(none)") + "\n"
    files["tests/generated/cases.py"] = env.get_template("cases.py.j2").render(
        ops=catalogue.ops, template="cases.py.j2"
    )
    for category, ops in by_category.items():
        files[f"docs/reference/generated/{category}.md"] = env.get_template(
            "category_table.md.j2"
        ).render(category=category, ops=ops, template="category_table.md.j2")
    files["docs/reference/generated/support-matrix.md"] = env.get_template(
        "support_matrix.md.j2"
    ).render(ops=catalogue.ops, methods=catalogue.methods, template="support_matrix.md.j2")
    return files
