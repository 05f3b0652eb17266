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

from govern.spec.errors import SpecError, SpecInvalid
from govern.spec.yaml_source import YamlPath, YamlSource

M = TypeVar("M", bound=BaseModel)


def validate_data(model: type[M], data: Any, source: YamlSource, prefix: YamlPath = ()) -> M:
    """Build ``model`` from ``data`` (found at ``prefix`` in ``source``) or raise SpecInvalid."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [_translate(model, data, source, prefix, e) for e in exc.errors()]
        raise SpecInvalid(_unique(errors)) from None


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """ " (did you mean 'x'?)" for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _translate(
    model: type[BaseModel], data: Any, source: YamlSource, prefix: YamlPath, error: Any
) -> SpecError:
    loc: tuple[Any, ...] = error["loc"]
    path = _data_path(data, loc)
    where = (*prefix, *path)
    kind = error["type"]
    field = str(loc[-1]) if loc else ""
    if kind == "missing":
        owner = _owner_name(model, data, loc[:-1])
        return source.error(where, f"missing required key '{field}' in {owner}")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, data, loc[:-1])
        hint = suggest(field, allowed)
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return source.error(where, f"unknown key '{field}'{hint}{listing}")
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        return source.error(
            (*where, "kind"),
            f"unknown stage kind '{tag}'{suggest(tag, expected)}; "
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
            f"'{error['input']}' is not a valid id for '{field}': use lower-case letters, digits "
            "and underscores, starting with a letter",
            at_value=True,
        )
    if kind == "literal_error":
        expected = _literal_choices(model, data, loc)
        hint = suggest(str(error["input"]), expected) if expected else ""
        return source.error(
            where,
            f"'{error['input']}' is not allowed for '{field}'{hint}: {_lower(error['msg'])}",
            at_value=True,
        )
    if kind == "value_error":  # our own model validators: the message says it all
        return source.error(where, error["msg"].removeprefix("Value error, "))
    return source.error(where, f"'{field}': {_lower(error['msg'])}", at_value=True)


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
