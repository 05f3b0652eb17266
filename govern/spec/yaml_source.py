"""Safe YAML loading that remembers where every key and value came from.

PyYAML silently keeps the last of two equal keys and forgets positions once it
builds Python objects, so we compose the node tree ourselves: duplicate keys
become errors, and every path (``("stages", 2, "next", "reject")``) maps back to
the line and column a user must look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from govern.spec.errors import SpecError, SpecInvalid, display_path

try:  # the C loader is several times faster; fall back where libyaml is missing
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the build of PyYAML
    _Loader = yaml.SafeLoader

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int
    column: int


@dataclass
class YamlSource:
    """Plain data parsed from YAML plus the position of each path in it.

    Positions carry their file, so data merged from several files (a manifest
    and the base it extends) still points each error at the right one.
    """

    file: str
    data: Any
    values: dict[YamlPath, Position] = field(default_factory=dict)
    keys: dict[YamlPath, Position] = field(default_factory=dict)

    def position(self, path: YamlPath) -> Position:
        """Where a path's key stands (or its value, or the nearest enclosing node)."""
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            found = self.keys.get(prefix) or self.values.get(prefix)
            if found is not None:
                return found
        return Position(self.file, 1, 1)

    def value_position(self, path: YamlPath) -> Position:
        """Where a path's value starts; falls back to its key."""
        return self.values.get(path) or self.position(path)

    def error(self, path: YamlPath, message: str, *, at_value: bool = False) -> SpecError:
        where = self.value_position(path) if at_value else self.position(path)
        return SpecError(where.file, where.line, where.column, message)


def _mark(node: yaml.Node, file: str) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, source: YamlSource) -> None:
        self.source = source
        self.errors: list[SpecError] = []
        self.scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def build(self, node: yaml.Node, path: YamlPath) -> Any:
        self.source.values[path] = _mark(node, self.source.file)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalars.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: YamlPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            where = _mark(key_node, self.source.file)
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._fail(where, "merge keys ('<<') are not supported: write the keys out")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(where, "a key must be a plain word, not a list or mapping")
                continue
            key = self.scalars.construct_object(key_node)
            if not isinstance(key, str):
                # YAML 1.1 reads on/off/yes/no as booleans and 1 as an int: keep the text.
                key = key_node.value
            if key in first_seen:
                before = first_seen[key]
                self._fail(
                    where,
                    f"duplicate key '{key}' (first given at line {before.line}); "
                    "remove one of them",
                )
                continue
            first_seen[key] = where
            self.source.keys[(*path, key)] = where
            result[key] = self.build(value_node, (*path, key))
        return result

    def _fail(self, where: Position, message: str) -> None:
        self.errors.append(SpecError(where.file, where.line, where.column, message))


def parse_yaml(text: str, file: str) -> YamlSource:
    """Parse one YAML document; raise SpecInvalid with positions for any problem."""
    source = YamlSource(file=file, data=None)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        hint = f" ({exc.context})" if exc.context else ""
        raise SpecInvalid(
            [SpecError(file, line, column, f"invalid YAML: {problem}{hint}; check the indentation")]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecInvalid([SpecError(file, 1, 1, f"invalid YAML: {exc}")]) from None
    if root is None:
        raise SpecInvalid([SpecError(file, 1, 1, "the file is empty: expected a mapping")])
    builder = _Builder(source)
    source.data = builder.build(root, ())
    if builder.errors:
        raise SpecInvalid(builder.errors)
    if not isinstance(source.data, dict):
        raise SpecInvalid([source.error((), "expected a mapping of keys at the top level")])
    return source


def read_yaml(path: Path) -> YamlSource:
    """Read and parse a file; an unreadable file is a SpecInvalid, not an OSError."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecInvalid([SpecError(shown, 1, 1, "no such file")]) from None
    except IsADirectoryError:
        raise SpecInvalid([SpecError(shown, 1, 1, "is a folder, not a YAML file")]) from None
    except UnicodeDecodeError as exc:
        raise SpecInvalid([SpecError(shown, 1, 1, f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise SpecInvalid([SpecError(shown, 1, 1, f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(text, shown)
