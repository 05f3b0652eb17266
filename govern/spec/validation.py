"""Validate plain YAML data against a model, reporting errors at their YAML lines.

pydantic reports locations such as ``("stages", 2, "review", "decisions", 0)``;
we walk them through the data (skipping union tags like ``"review"``) to find
the node, and through the model types to list the keys allowed there.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from govern.spec.errors import MAX_ERRORS_PER_FILE, SpecError, SpecInvalid, quoted
from govern.spec.yaml_source import YamlPath, YamlSource

M = TypeVar("M", bound=BaseModel)


def validate_data(model: type[M], data: Any, source: YamlSource, prefix: YamlPath = ()) -> M:
    """Build ``model`` from ``data`` (found at ``prefix`` in ``source``) or raise SpecInvalid."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        hints = Hints()
        errors = [_translate(model, data, source, prefix, e, hints) for e in exc.errors()]
        raise SpecInvalid(_unique(errors)) from None


DIFFLIB_MAX_CHOICES = 300  # difflib compares the word with every choice: keep that small
SUGGEST_MAX_WORD = 100
LISTED_CHOICES = 20
_EDIT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """ " (did you mean 'x'?)" for the closest choice, or ''.

    difflib over a small set of choices; over a large one (a generated institution's
    stage ids) only a choice one edit away, found without comparing against all.
    """
    if not isinstance(word, str) or not word or len(word) > SUGGEST_MAX_WORD:
        return ""
    if len(choices) <= DIFFLIB_MAX_CHOICES:
        close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
        found = close[0] if close else None
    else:
        found = _one_edit_away(word, frozenset(choices))
    return f" (did you mean '{quoted(found)}'?)" if found is not None else ""


def _one_edit_away(word: str, choices: frozenset[str]) -> str | None:
    """The smallest choice one deletion, transposition, substitution or insertion away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    candidates = {a + b[1:] for a, b in splits if b}
    candidates |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    candidates |= {a + c + b[1:] for a, b in splits if b for c in _EDIT_ALPHABET}
    candidates |= {a + c + b for a, b in splits for c in _EDIT_ALPHABET}
    found = sorted(candidates & choices)
    return found[0] if found else None


def listing(choices: list[str] | tuple[str, ...], limit: int = LISTED_CHOICES) -> str:
    """Choices for an error message: all of a few, the first ``limit`` of many."""
    if len(choices) <= limit:
        return ", ".join(quoted(c) for c in choices)
    shown = ", ".join(quoted(c) for c in choices[:limit])
    return f"{shown}, … ({len(choices)} in all)"


class Hints:
    """``suggest`` for one file's checks, computed for its first ``limit`` errors only.

    Only the first errors of a file are shown (``MAX_ERRORS_PER_FILE``), so a file
    with thousands of misspelt names costs thousands of cheap errors, not
    thousands of searches for the closest name.
    """

    def __init__(self, limit: int = MAX_ERRORS_PER_FILE) -> None:
        self.left = limit

    def __call__(self, word: str, choices: list[str] | tuple[str, ...]) -> str:
        if self.left <= 0:
            return ""
        self.left -= 1
        return suggest(word, choices)


def _translate(
    model: type[BaseModel],
    data: Any,
    source: YamlSource,
    prefix: YamlPath,
    error: Any,
    hint: Hints,
) -> SpecError:
    loc: tuple[Any, ...] = error["loc"]
    path = _data_path(data, loc)
    where = (*prefix, *path)
    kind = error["type"]
    field = str(loc[-1]) if loc else ""
    if kind == "missing":
        owner = _owner_name(model, data, loc[:-1])
        return source.error(where, f"missing required key '{quoted(field)}' in {owner}")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, data, loc[:-1])
        close = hint(field, allowed)
        allowed_keys = f"; allowed keys: {listing(allowed)}" if allowed else ""
        return source.error(where, f"unknown key '{quoted(field)}'{close}{allowed_keys}")
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        return source.error(
            (*where, "kind"),
            f"unknown stage kind '{quoted(tag)}'{hint(tag, expected)}; "
            f"expected one of: {', '.join(expected)}",
            at_value=True,
        )
    if kind == "union_tag_not_found":
        return source.error(
            where,
            "a stage needs a 'kind' (propose, draft, review, vote, "
            "execute, cluster, integrate or terminal)",
        )
    if kind == "string_pattern_mismatch":
        return source.error(
            where,
            f"'{quoted(error['input'])}' is not a valid id for '{quoted(field)}': use lower-case "
            "letters, digits and underscores, starting with a letter",
            at_value=True,
        )
    if kind == "literal_error":
        expected = _literal_choices(model, data, loc)
        close = hint(str(error["input"]), expected) if expected else ""
        return source.error(
            where,
            f"'{quoted(error['input'])}' is not allowed for '{quoted(field)}'{close}: "
            f"{_lower(error['msg'])}",
            at_value=True,
        )
    if kind == "value_error":  # our own model validators: the message says it all
        return source.error(where, error["msg"].removeprefix("Value error, "))
    if kind == "model_type":  # pydantic names its class; the user wrote YAML
        got = "nothing" if error["input"] is None else f"a {type(error['input']).__name__}"
        return source.error(
            where, f"'{quoted(field)}' should be a mapping of keys, not {got}", at_value=True
        )
    return source.error(where, f"'{quoted(field)}': {_lower(error['msg'])}", at_value=True)


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _data_path(data: Any, loc: tuple[Any, ...]) -> YamlPath:
    """The part of a pydantic location that names real keys and indices in the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and not isinstance(part, int) and part != node.get("kind"):
            path.append(part)  # a missing or unknown key: point at it (its parent if absent)
            node = None
    return tuple(path)


def _model_at(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> Any:
    """The type found by following ``loc`` from ``model``, or None."""
    current: Any = model
    for part in loc:
        current = _step(_unwrap(current), part)
        if current is None:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp


def _step(tp: Any, part: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(tp)
    if origin is list and isinstance(part, int):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1]
    if origin in (Union, types.UnionType):
        for member in get_args(tp):
            member = _unwrap(member)
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and get_args(kind.annotation) == (part,):
                return member
    return None


def _allowed_keys(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[str]:
    owner = _model_at(model, data, loc)
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        return [info.alias or name for name, info in owner.model_fields.items()]
    return []


def _owner_name(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> str:
    owner = _model_at(model, data, loc)
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        name = owner.__name__.removesuffix("Stage")
        return (
            f"this {name.lower()} stage"
            if owner.__name__.endswith("Stage")
            else f"this {name.lower()}"
        )
    return "this mapping"


def _literal_choices(model: type[BaseModel], data: Any, loc: tuple[Any, ...]) -> list[str]:
    tp = _model_at(model, data, loc)
    return [str(a) for a in get_args(tp)] if get_origin(tp) is Literal else []


def _unique(errors: list[SpecError]) -> list[SpecError]:
    return list(dict.fromkeys(errors))
