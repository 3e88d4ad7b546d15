"""Line numbers of YAML documents, so that every YAML file Tempo reads (the directory, the catalogs,
process templates) reports its errors at the line they are on."""

from __future__ import annotations

from typing import Any

import yaml


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


class YamlSyntaxError(ValueError):
    """A document that is not YAML; the message names the file and the line."""


def load_with_lines(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The document and the line of each path in it (see ``line_index``)."""
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise YamlSyntaxError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return raw, line_index(node) if node is not None else {}
