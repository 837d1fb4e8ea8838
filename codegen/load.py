"""Load and validate the catalogue with ruamel.yaml, reporting file and line.

Every problem becomes a line ``<file>:<line>: <where>: <what to change>``; all
problems of a file are reported together in one `CatalogueError`.
"""

import importlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

from .model import Catalogue, OpSpec


class CatalogueError(Exception):
    """The catalogue is invalid; the message lists every problem with its line."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _line_of(node: Any, loc: tuple[Any, ...], fallback: int) -> int:
    """1-based line of the deepest node of ``loc`` that exists in the parsed YAML."""
    line = fallback
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _describe(error: dict[str, Any], model_fields: list[str]) -> tuple[tuple[Any, ...], str]:
    """Turn one pydantic error into (location, message that says what to change)."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = loc[-1]
        where = loc[:-1]
        allowed = ", ".join(model_fields) if not where else ""
        hint = f"; allowed keys are {allowed}" if allowed else ""
        return loc, f"unknown key {key!r}{hint}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "missing":
        return loc, f"missing required key {loc[-1]!r}"
    if kind.startswith("literal_error") or kind.endswith("_type") or "pattern" in kind:
        message = f"{message} (got {error['input']!r})"
    return loc, message


def _field_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse(text: str, path: str = "<string>") -> Catalogue:
    """Validate catalogue ``text``; ``path`` is used in error messages."""
    try:
        data = _yaml().load(text)
    except DuplicateKeyError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else 0
        raise CatalogueError(f"{path}:{line}: {error.problem.splitlines()[0]}") from None
    except MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else 0
        raise CatalogueError(f"{path}:{line}: invalid YAML: {error.problem}") from None
    if not isinstance(data, CommentedMap):
        raise CatalogueError(f"{path}:1: the catalogue must be a mapping with keys version, ops")

    problems: list[str] = []
    raw_ops = data.get("ops")
    ops: list[OpSpec] = []
    if isinstance(raw_ops, CommentedSeq):
        first_line: dict[str, int] = {}
        for index, entry in enumerate(raw_ops):
            line = raw_ops.lc.item(index)[0] + 1
            is_map = isinstance(entry, CommentedMap)
            name = entry.get("name", f"#{index}") if is_map else f"#{index}"
            try:
                op = OpSpec.model_validate(dict(entry) if is_map else entry)
            except ValidationError as error:
                for item in error.errors():
                    loc, message = _describe(item, list(OpSpec.model_fields))
                    where = f"op {name!r}"
                    if loc:
                        where += f", field {_field_path(loc)!r}"
                    problems.append(f"{path}:{_line_of(entry, loc, line)}: {where}: {message}")
                continue
            if op.name in first_line:
                problems.append(
                    f"{path}:{line}: duplicate op name {op.name!r} "
                    f"(first defined at line {first_line[op.name]}); rename or merge the entries"
                )
                continue
            first_line[op.name] = line
            ops.append(op)
    if problems:
        raise CatalogueError("\n".join(problems))

    try:
        catalogue = Catalogue.model_validate({**dict(data), "ops": ops})
    except ValidationError as error:
        for item in error.errors():
            loc, message = _describe(item, list(Catalogue.model_fields))
            where = f"field {_field_path(loc)!r}" if loc else "catalogue"
            problems.append(f"{path}:{_line_of(data, loc, 1)}: {where}: {message}")
        raise CatalogueError("\n".join(problems)) from None
    for index, field, message in catalogue.method_problems():
        entry = raw_ops[index]
        line = _line_of(entry, (field,), raw_ops.lc.item(index)[0] + 1)
        where = f"op {catalogue.ops[index].name!r}, field {field!r}"
        problems.append(f"{path}:{line}: {where}: {message}")
    if problems:
        raise CatalogueError("\n".join(problems))
    return catalogue


def resolve_hard(catalogue: Catalogue, text: str, path: str) -> None:
    """Check that every `hard` dotted path imports (importlib, never eval)."""
    data = _yaml().load(text)
    problems = []
    for index, op in enumerate(catalogue.ops):
        if op.hard is None:
            continue
        module_name, _, attribute = op.hard.rpartition(".")
        try:
            getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            entry = data["ops"][index]
            line = _line_of(entry, ("hard",), 0)
            problems.append(
                f"{path}:{line}: op {op.name!r}, field 'hard': {op.hard!r} cannot be imported; "
                "give the dotted path of a function (e.g. jax.numpy.greater)"
            )
    if problems:
        raise CatalogueError("\n".join(problems))


def load(path: Path) -> Catalogue:
    """Read, validate and resolve the catalogue at ``path``."""
    text = path.read_text()
    shown = str(path)
    catalogue = parse(text, shown)
    resolve_hard(catalogue, text, shown)
    return catalogue


def roundtrip(text: str) -> str:
    """Load and dump with ruamel; a tidy catalogue comes back unchanged."""
    import io

    yaml = _yaml()
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(yaml.load(text), buffer)
    return buffer.getvalue()
