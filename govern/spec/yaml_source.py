"""Safe YAML loading that remembers where every key and value came from.

Every spec file goes through one guarded path: ``read_yaml`` reads at most
``MAX_FILE_BYTES`` from a regular file (never a FIFO or a device), and
``parse_yaml`` builds plain data from the parser's event stream, without
recursion, refusing what a spec never needs and an attacker could use:

- explicit tags (``!!int``, ``!!python/object``, ``!local``): specs are plain YAML;
- nesting deeper than ``MAX_DEPTH`` levels;
- aliases that refer to the node containing them, or that together expand to
  more than ``MAX_ALIAS_NODES`` nodes (a "billion laughs" bomb);
- more than one document, and keys given twice (plain PyYAML keeps the last).

Each refusal is a ``SpecError`` at its line and column. Every path
(``("stages", 2, "next", "reject")``) maps back to the line and column a user
must look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from govern.files import NotRegularFile, read_regular
from govern.spec.errors import SpecError, SpecInvalid, display_path, quoted

try:  # the C parser is several times faster; fall back where libyaml is missing
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the build of PyYAML
    _Loader = yaml.SafeLoader
# The C parser reports reader errors at a byte offset, the Python one at a character.
_BYTE_OFFSETS = _Loader is not yaml.SafeLoader

MAX_FILE_BYTES = 1 << 20  # the shipped specs are 1-4 KB
MAX_DEPTH = 64  # they nest 8 levels at most
MAX_ALIAS_NODES = 10_000  # nodes all aliases together may expand to

YamlPath = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_TAG_ADVICE = "a spec is plain YAML without tags: remove the tag (quote a value to keep it text)"


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


class _Stop(Exception):
    """A problem after which the rest of the stream cannot be read sensibly."""

    def __init__(self, error: SpecError) -> None:
        self.error = error


def _shown_tag(tag: str) -> str:
    if tag.startswith("tag:yaml.org,2002:"):
        return "!!" + tag.removeprefix("tag:yaml.org,2002:")
    return tag if tag.startswith("!") else f"!<{tag}>"


@dataclass(slots=True)
class _Anchor:
    value: Any
    path: YamlPath | None  # where the anchored node was recorded (None: nowhere)
    log_start: int
    log_end: int
    size: int  # nodes, counting what nested aliases expand to


_OPEN = object()  # an anchor whose node is still being read


class _Frame:
    """An open mapping or sequence."""

    __slots__ = (
        "anchor",
        "data",
        "first_seen",
        "is_map",
        "key",
        "key_ok",
        "log_start",
        "path",
        "size",
        "want_key",
    )

    def __init__(self, data: Any, path: YamlPath | None, anchor: str | None, log_start: int):
        self.data = data
        self.is_map = isinstance(data, dict)
        self.path = path
        self.anchor = anchor
        self.log_start = log_start
        self.size = 1
        self.want_key = True
        self.key: str = ""
        self.key_ok = False
        self.first_seen: dict[str, Position] = {}


class _Builder:
    """Plain data and positions from a YAML event stream, iteratively."""

    _helper = yaml.SafeLoader("")  # its resolver and scalar constructors only

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[SpecError] = []
        self.stack: list[_Frame] = []
        self.log: list[tuple[bool, YamlPath, Position]] = []  # (is_key, path, where)
        self.anchors: dict[str, Any] = {}
        self.alias_nodes = 0
        self.documents = 0
        self.root: Any = None
        self.tags: dict[str, str] = {}  # plain scalar -> the tag YAML 1.1 resolves it to

    # -- helpers -------------------------------------------------------------

    def _where(self, event: yaml.Event) -> Position:
        mark = event.start_mark
        return Position(self.file, mark.line + 1, mark.column + 1)

    def _fail(self, where: Position, message: str) -> None:
        self.errors.append(SpecError(where.file, where.line, where.column, message))

    def _stop(self, where: Position, message: str) -> None:
        raise _Stop(SpecError(where.file, where.line, where.column, message))

    def _child_path(self) -> YamlPath | None:
        """The path of the next node, or None when it will be dropped (after an error)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.path is None:
            return None
        if not top.is_map:
            return (*top.path, len(top.data))
        return (*top.path, top.key) if top.key_ok and not top.want_key else None

    def _place(self, value: Any, size: int) -> None:
        """A finished node goes into its parent (or becomes the root)."""
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.size += size
        if not top.is_map:
            top.data.append(value)
        elif top.want_key:  # a list, mapping or alias used as a key: already reported
            top.want_key, top.key_ok = False, False
        else:
            if top.key_ok:
                top.data[top.key] = value
            top.want_key = True

    def _refuse_tag(self, event: Any, where: Position) -> None:
        if event.tag is not None:
            self._fail(where, f"the tag '{_shown_tag(event.tag)}' is not allowed: {_TAG_ADVICE}")

    def _open_anchor(self, name: str | None, where: Position) -> None:
        if name is None:
            return
        if name in self.anchors:
            self._stop(where, f"the anchor '&{quoted(name)}' is defined twice: rename one")
        self.anchors[name] = _OPEN

    # -- events --------------------------------------------------------------

    def feed(self, event: yaml.Event) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self._scalar(event)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            self._start(event, {} if kind is yaml.MappingStartEvent else [])
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self._end()
        elif kind is yaml.AliasEvent:
            self._alias(event)
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                self._stop(
                    self._where(event),
                    "a second YAML document starts here: a spec file holds one; "
                    "remove the '---' line and what follows, or put it in its own file",
                )

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        where = self._where(event)
        self._refuse_tag(event, where)
        text: str = event.value
        plain = not event.style
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.want_key:
            self._key(top, text, plain, where)
            if event.anchor is not None:
                self._open_anchor(event.anchor, where)
                self.anchors[event.anchor] = _Anchor(text, None, 0, 0, 1)
            return
        path = self._child_path()
        if path is not None:
            self.log.append((False, path, where))
        value = self._construct(text, plain, where)
        if event.anchor is not None:
            self._open_anchor(event.anchor, where)
            start = len(self.log) - (path is not None)
            self.anchors[event.anchor] = _Anchor(value, path, start, len(self.log), 1)
        self._place(value, 1)

    def _construct(self, text: str, plain: bool, where: Position) -> Any:
        if not plain:
            return text
        tag = self.tags.get(text)
        if tag is None:
            tag = self.tags[text] = self._helper.resolve(yaml.ScalarNode, text, (True, False))
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return self._helper.bool_values[text.lower()]
        construct = self._helper.yaml_constructors.get(tag)
        if construct is None:  # '<<' or '=' as a value: YAML 1.1 gives them tags, we text
            return text
        try:
            return construct(self._helper, yaml.ScalarNode(tag, text))
        except Exception as exc:  # 2001-13-45, an int of 5,000 digits, ...
            kind = tag.removeprefix("tag:yaml.org,2002:")
            article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._fail(
                where,
                f"'{quoted(text)}' reads as {article} {kind} but is not a valid one "
                f"({quoted(reason)}): correct it, or quote it to keep it as text",
            )
            return text

    def _key(self, top: _Frame, text: str, plain: bool, where: Position) -> None:
        top.want_key = False
        top.key_ok = False
        top.size += 1
        if plain and text == "<<":  # the one plain key YAML 1.1 resolves to the merge tag
            self._fail(where, "merge keys ('<<') are not supported: write the keys out")
            return
        before = top.first_seen.get(text)
        if before is not None:
            self._fail(
                where,
                f"duplicate key '{quoted(text)}' (first given at line {before.line}); "
                "remove one of them",
            )
            return
        top.first_seen[text] = where
        top.key, top.key_ok = text, True
        if top.path is not None:
            self.log.append((True, (*top.path, text), where))

    def _start(self, event: Any, data: Any) -> None:
        where = self._where(event)
        if len(self.stack) >= MAX_DEPTH:
            self._stop(
                where,
                f"nesting deeper than {MAX_DEPTH} levels: a spec needs a few; flatten it",
            )
        self._refuse_tag(event, where)
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.want_key:
            self._fail(where, "a key must be a plain word, not a list or mapping")
        path = self._child_path()
        if path is not None:
            self.log.append((False, path, where))
        self._open_anchor(event.anchor, where)
        log_start = len(self.log) - (path is not None)
        self.stack.append(_Frame(data, path, event.anchor, log_start))

    def _end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.anchors[frame.anchor] = _Anchor(
                frame.data, frame.path, frame.log_start, len(self.log), frame.size
            )
        self._place(frame.data, frame.size)

    def _alias(self, event: yaml.AliasEvent) -> None:
        where = self._where(event)
        name = event.anchor
        anchor = self.anchors.get(name)
        if anchor is None:
            self._stop(where, f"the alias '*{quoted(name)}' has no anchor '&{quoted(name)}' above")
        if anchor is _OPEN:
            self._stop(
                where,
                f"the alias '*{quoted(name)}' refers to the node that contains it: "
                "a spec cannot contain itself",
            )
        self.alias_nodes += anchor.size
        if self.alias_nodes > MAX_ALIAS_NODES:
            self._stop(
                where,
                f"aliases here expand to more than {MAX_ALIAS_NODES:,} nodes in all: "
                "write the values out, or alias less",
            )
        top = self.stack[-1] if self.stack else None
        if top is not None and top.is_map and top.want_key:
            self._fail(where, "a key must be a plain word, not an alias")
            self._place(None, anchor.size)
            return
        path = self._child_path()
        if path is not None:
            if anchor.path is None:
                self.log.append((False, path, where))
            else:
                cut = len(anchor.path)
                self.log.extend(
                    (is_key, (*path, *old[cut:]), at)
                    for is_key, old, at in self.log[anchor.log_start : anchor.log_end]
                )
        self._place(anchor.value, anchor.size)


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    offset = exc.position
    if _BYTE_OFFSETS:
        before = text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "replace")
    else:
        before = text[:offset]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    char = exc.character
    shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
    return SpecError(
        file,
        line,
        column,
        f"invalid YAML: the character {shown} is not allowed in a YAML file "
        f"({exc.reason}); remove it, or write it as an escape in double quotes",
    )


def parse_yaml(text: str, file: str) -> YamlSource:
    """Parse one YAML document; raise SpecInvalid with positions for any problem."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecInvalid([SpecError(file, 1, 1, _too_big())])
    builder = _Builder(file)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except _Stop as stop:
        raise SpecInvalid([*builder.errors, stop.error]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if "maximum nesting depth" in problem:  # libyaml's own limit, met while scanning ahead
            message = f"nesting deeper than {MAX_DEPTH} levels: a spec needs a few; flatten it"
        else:
            hint = f" ({exc.context})" if exc.context else ""
            message = f"invalid YAML: {problem}{hint}; check the indentation"
        error = SpecError(file, line, column, message)
        raise SpecInvalid([*builder.errors, error]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecInvalid([*builder.errors, _reader_error(exc, text, file)]) from None
    except UnicodeError:  # lone surrogates: only text that never came from a file has them
        error = SpecError(file, 1, 1, "not UTF-8 text (lone surrogates): save it as UTF-8")
        raise SpecInvalid([*builder.errors, error]) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every parser error is one of the above
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise SpecInvalid(
            [*builder.errors, SpecError(file, 1, 1, f"invalid YAML: {first}")]
        ) from None
    if builder.errors:
        raise SpecInvalid(builder.errors)
    if builder.documents == 0:
        raise SpecInvalid([SpecError(file, 1, 1, "the file is empty: expected a mapping")])
    source = YamlSource(file=file, data=builder.root)
    values, keys = source.values, source.keys
    for is_key, path, where in builder.log:
        (keys if is_key else values)[path] = where
    if not isinstance(source.data, dict):
        raise SpecInvalid([source.error((), "expected a mapping of keys at the top level")])
    return source


def _too_big() -> str:
    return (
        f"the file is larger than {MAX_FILE_BYTES / (1 << 20):g} MiB: a spec is a few KB; "
        "is this the right file?"
    )


def read_yaml(path: Path) -> YamlSource:
    """Read and parse a file; an unreadable file is a SpecInvalid, not an OSError.

    Only regular files are read (a FIFO or a device given as a spec would block
    or never end), and at most ``MAX_FILE_BYTES`` + 1 bytes of them.
    """
    shown = display_path(path)

    def fail(message: str) -> SpecInvalid:
        return SpecInvalid([SpecError(shown, 1, 1, message)])

    try:
        raw = read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise fail("no such file") from None
    except NotRegularFile as exc:
        if exc.kind == "a folder":
            raise fail("is a folder, not a YAML file") from None
        raise fail(f"is {exc.kind}, not a regular file: give a YAML file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise fail(f"cannot read: {reason}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise fail(_too_big())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise SpecInvalid(
            [SpecError(shown, line, column, f"not UTF-8 text ({exc.reason}): save it as UTF-8")]
        ) from None
    return parse_yaml(text, shown)
