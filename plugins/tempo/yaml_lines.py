"""YAML documents read with the line of every node, and validated against a pydantic model, so
that every YAML file Tempo reads (the directory, the catalogs, process templates) reports each of its
errors as ``file:line: field: message``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class YamlFileError(ValueError):
    """A YAML file that cannot be used; ``problems`` holds one line per problem, each naming the
    file, the line and the field."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each path in the document (``("people", 0, "email")``) to its 1-based line."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            lines.update({k: v for k, v in line_index(value_node, (*path, key)).items() if k != (*path, key)})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(line_index(item, (*path, index)))
    return lines


def line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc``, or of its nearest enclosing node that has one."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


@dataclass(frozen=True)
class Where:
    """Names a place of a document and what is wrong there: ``file:line: field: message``."""

    source: str
    raw: Any
    lines: dict[tuple[Any, ...], int]

    def __call__(self, loc: tuple[Any, ...], message: str) -> str:
        line = line_for(self.lines, loc)
        where = f"{self.source}:{line}" if line else self.source
        return f"{where}: {self.field(loc)}: {message}"

    def field(self, loc: tuple[Any, ...]) -> str:
        return ".".join(str(part) for part in loc) or "(document)"


def message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message, without the prefix pydantic puts before a validator's own."""
    return str(error["msg"]).removeprefix("Value error, ")


def validate_yaml(
    text: str,
    source: str,
    model: type[M],
    error: type[YamlFileError],
    *,
    where: type[Where] = Where,
    not_a_mapping: str | None = None,
) -> tuple[M, Where]:
    """The document validated against ``model``, and its ``where`` for the checks that follow.

    Raises ``error`` listing every problem: not YAML, empty (or, with ``not_a_mapping``, anything
    but a mapping), or each field pydantic refuses, at its line.
    """
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{source}:{mark.line + 1}" if mark else source
        raise error(f"{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not_a_mapping is not None and not isinstance(raw, dict):
        raise error(f"{source}: {not_a_mapping}")
    if raw is None:
        raise error(f"{source}: the file is empty")
    located = where(source, raw, line_index(node) if node is not None else {})
    try:
        return model.model_validate(raw), located
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                # The discriminator itself is what is wrong, not the mapping that lacks or misspells it.
                loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
            problems.append(located(loc, message(err)))
        raise error(problems) from None
