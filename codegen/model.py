"""Strict schema of the catalogue `spec/soft_ops.yaml`.

Every model forbids unknown keys and is frozen; modes, methods, categories, return
types and parameter kinds are closed sets; rules that involve several fields live in
model validators whose messages say what to change.
"""

import keyword
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Mode = Literal["hard", "smooth", "c0", "c1", "c2"]
Method = Literal["softsort", "neuralsort", "sorting_network", "fast_soft_sort", "smooth_sort", "ot"]
Category = Literal[
    "elementwise", "comparison", "logical", "selection", "sorting", "quantile", "safe_math"
]
ReturnType = Literal["Array", "SoftBool", "SoftIndex", "tuple[Array, SoftIndex]"]
ParamKind = Literal[
    "array",  # a numeric array, promoted to the op's common float dtype
    "softbool",  # an array of probabilities in [0, 1], promoted like "array"
    "values",  # an array passed on unpromoted (its dtype decides, e.g. integer gathers)
    "softindex",  # a SoftIndex (last axis a distribution) or a hard integer index
    "sequence",  # a sequence of arrays or ints, passed on as it is
    "softness",  # the softness (temperature): positive float or traced scalar
    "mode",  # the smoothness mode, one of the entry's `modes`
    "method",  # the ordering algorithm, one of the entry's `methods`
    "axis",  # an int or None
    "axes",  # an int, a tuple of ints or None
    "k",  # a positive integer count (top_k)
    "q",  # quantile level(s) in [0, 1] (or percent for percentile)
    "float",  # a plain Python float option
    "int",  # a plain Python int option
    "bool",  # a plain Python bool option
    "str",  # a plain Python string option
    "options",  # a dict of solver options or None
]

MODES: tuple[str, ...] = Mode.__args__
METHODS: tuple[str, ...] = Method.__args__
CATEGORIES: tuple[str, ...] = Category.__args__

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")]
DottedPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")]
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_KINDS_WITH_DEFAULT_SLOT = {"softness", "mode", "method"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Param(_Strict):
    """One parameter of a public operation, in signature order."""

    name: Identifier
    kind: ParamKind
    default: Any = None
    doc: str | None = None
    choices: list[str] | None = None  # valid values of a "str" parameter

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set or self.kind in _KINDS_WITH_DEFAULT_SLOT

    @model_validator(mode="after")
    def _check_name(self) -> "Param":
        if keyword.iskeyword(self.name):
            raise ValueError(f"parameter name {self.name!r} is a Python keyword; rename it")
        return self


class TestSpec(_Strict):
    """Data the generated conformance tests need to build inputs for an entry."""

    domain: tuple[float, float] = (-3.0, 3.0)
    kinks: list[float] = []
    periodic_kinks: float | None = None  # kinks at every integer plus this offset
    fixed: dict[str, float] = {}
    boundary_points: list[float] = []
    binary_inputs: bool = False
    # "generic": the catalogue-driven conformance rows cover the op; "dedicated": its
    # inputs need a shape the generic builders cannot make, and tests/impl covers it.
    conformance: Literal["generic", "dedicated"] = "generic"


class OpSpec(_Strict):
    """One public operation of `diffbio.core.soft_ops`."""

    name: Identifier
    category: Category
    summary: str
    hard: DottedPath | None = None
    hard_args: list[str] | None = None
    hard_kwargs: list[Identifier] = []
    # Where mode="hard" is computed: in the generated wrapper (a call of `hard`, cast to
    # the input dtype) or in the kernel (when the hard result needs reshaping, e.g. a
    # one-hot SoftIndex).
    hard_in: Literal["wrapper", "kernel"] = "wrapper"
    kernel: DottedPath
    params: list[Param]
    modes: list[Mode] = []
    methods: list[Method] = []
    default_method: Method | None = None
    returns: ReturnType
    returns_doc: str
    st: bool = False
    math: str | None = None
    use_case: str | None = None
    example: str
    reference: str | None = None
    test: TestSpec = TestSpec()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> "OpSpec":
        names = [p.name for p in self.params]
        kinds = [p.kind for p in self.params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"parameter {duplicates[0]!r} is listed twice in `params`")
        if self.name.endswith("_st"):
            raise ValueError(
                f"op names must not end in '_st' (got {self.name!r}); set `st: true` on the "
                "base op and the straight-through variant is generated"
            )
        if len(set(self.modes)) != len(self.modes):
            raise ValueError("`modes` lists a mode twice")
        if self.modes and "mode" not in kinds:
            raise ValueError("`modes` is set but no parameter has kind 'mode'; add one")
        if "mode" in kinds and not self.modes:
            raise ValueError("a parameter has kind 'mode' but `modes` is empty; list the modes")
        if self.modes and "smooth" not in self.modes:
            raise ValueError("`modes` must include 'smooth', the default mode")
        soft_modes = [m for m in self.modes if m != "hard"]
        if soft_modes and "softness" not in kinds:
            raise ValueError("soft modes need a parameter of kind 'softness'; add one")
        if self.st and "hard" not in self.modes:
            raise ValueError(
                "`st: true` requires 'hard' in `modes` (the straight-through forward pass "
                "is the hard mode); add 'hard' to `modes` or set `st: false`"
            )
        if self.methods:
            if len(set(self.methods)) != len(self.methods):
                raise ValueError("`methods` lists a method twice")
            if self.default_method is None:
                raise ValueError("`methods` is set but `default_method` is missing; name one")
            if self.default_method not in self.methods:
                raise ValueError(
                    f"default_method {self.default_method!r} is not among methods "
                    f"{self.methods}; add it to `methods` or pick one of them"
                )
            if "method" not in kinds:
                raise ValueError("`methods` is set but no parameter has kind 'method'; add one")
        elif self.default_method is not None:
            raise ValueError("`default_method` is set but `methods` is empty; list the methods")
        elif "method" in kinds:
            raise ValueError("a parameter has kind 'method' but `methods` is empty")
        for name in self.hard_kwargs:
            if name not in names:
                raise ValueError(f"hard_kwargs names {name!r}, which is not a parameter")
        for arg in self.hard_args or []:
            if arg not in names and not _NUMBER.match(arg):
                raise ValueError(
                    f"hard_args entry {arg!r} must be a parameter name or a number literal"
                )
        if (self.hard_args or self.hard_kwargs) and self.hard is None:
            raise ValueError("hard_args/hard_kwargs need a `hard` equivalent")
        seen_default = False
        for param in self.params:
            if param.has_default:
                seen_default = True
            elif seen_default:
                raise ValueError(
                    f"parameter {param.name!r} has no default but follows one that has; "
                    "give it a default or move it earlier"
                )
        for param in self.params:
            if param.choices is not None and param.kind != "str":
                raise ValueError(f"parameter {param.name!r}: `choices` needs kind 'str'")
            if param.choices and "default" in param.model_fields_set:
                if param.default not in param.choices:
                    raise ValueError(
                        f"parameter {param.name!r}: default {param.default!r} is not among "
                        f"its choices {param.choices}"
                    )
        for key in self.test.fixed:
            if key not in names:
                raise ValueError(f"test.fixed names {key!r}, which is not a parameter")
        return self

    @property
    def array_params(self) -> list[Param]:
        return [p for p in self.params if p.kind in ("array", "softbool")]

    @property
    def primary_param(self) -> Param:
        """The array whose shape the axis arguments refer to."""
        return next(p for p in self.params if p.kind in ("array", "softbool", "values"))

    @property
    def has_mode(self) -> bool:
        return bool(self.modes)

    @property
    def soft_modes(self) -> list[str]:
        return [m for m in self.modes if m != "hard"]


class MethodSpec(_Strict):
    """One ordering algorithm: the soft modes it implements and what it can return."""

    name: Method
    summary: str
    complexity: str
    modes: list[Mode]
    # False for methods that produce sorted values directly (no soft permutation): they
    # cannot serve an operation that returns a SoftIndex, and `top_k` gives `None` for it.
    soft_index: bool
    extra: str | None = None  # the optional-dependency group the method needs
    reference: str

    @model_validator(mode="after")
    def _check_modes(self) -> "MethodSpec":
        if not self.modes:
            raise ValueError("`modes` is empty; list the soft modes the method implements")
        if "hard" in self.modes:
            raise ValueError("`modes` lists 'hard'; every method has it, list soft modes only")
        if "smooth" not in self.modes:
            raise ValueError("`modes` must include 'smooth', the default mode")
        if len(set(self.modes)) != len(self.modes):
            raise ValueError("`modes` lists a mode twice")
        return self


class Catalogue(_Strict):
    """The whole catalogue: a version, the ordering methods and the operations."""

    version: int = Field(ge=1)
    defaults: dict[str, float | str] = {}
    methods: list[MethodSpec] = []
    ops: list[OpSpec]

    @model_validator(mode="after")
    def _check_methods(self) -> "Catalogue":
        names = [m.name for m in self.methods]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"method {twice[0]!r} is described twice in `methods`")
        used = {m for op in self.ops for m in op.methods}
        missing = sorted(used - set(names))
        if missing:
            raise ValueError(
                f"ops use method(s) {missing} that `methods` does not describe; add an entry "
                "(name, summary, complexity, modes, soft_index, reference) for each"
            )
        return self

    @property
    def method_specs(self) -> dict[str, MethodSpec]:
        return {m.name: m for m in self.methods}

    def method_problems(self) -> list[tuple[int, str, str]]:
        """`(op index, field, message)` for each op whose methods contradict the method
        table: a values-only method on an op that returns a SoftIndex, or a default
        method that implements none of the op's soft modes."""
        specs = self.method_specs
        problems = []
        for index, op in enumerate(self.ops):
            for method in op.methods:
                spec = specs.get(method)
                if spec is None:
                    continue
                if op.returns == "SoftIndex" and not spec.soft_index:
                    problems.append((index, "methods", (
                        f"method {method!r} gives values only (soft_index: false) and cannot "
                        "return a SoftIndex; remove it from this op's methods"
                    )))
                if not set(spec.modes) & set(op.soft_modes):
                    problems.append((index, "methods", (
                        f"method {method!r} implements none of the op's soft modes "
                        f"{op.soft_modes}; remove it or add a mode"
                    )))
        return problems
