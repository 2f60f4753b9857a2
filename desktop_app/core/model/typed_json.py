"""Typed JSON: values of Ferry's dataclasses, enums, times and paths as JSON, and back.

What goes out is what :func:`to_json` can write, and nothing else (a type it
does not know is refused). What comes in is decoded by the type it must
have (:func:`decoder`), checked all the way down: a value that is not what
its type says raises :class:`Mismatch` naming where, so nothing received
is ever more than data of the expected shape.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any


def to_json(value: object) -> Any:
    """A message's value as JSON: dataclasses as objects, enums by value, times in ISO 8601,
    paths as text, sequences and sets as lists; anything else is refused (TypeError)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_json(getattr(value, name)) for name in field_types(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple | list | set | frozenset):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    raise TypeError(f"no JSON form for {type(value).__name__}")


class Mismatch(Exception):
    """A value is not what its field's type says; ``where`` grows as it goes up."""

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.where = where

    def at(self, step: str) -> Mismatch:
        return Mismatch(self.problem, step + self.where)


Decoder = Callable[[Any], Any]
_DECODERS: dict[Any, Decoder] = {}
_FIELDS: dict[type[Any], dict[str, Any]] = {}


def field_types(cls: type[Any]) -> dict[str, Any]:
    """A dataclass's field types, resolved once (a reply may hold thousands of records)."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls)
        _FIELDS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _FIELDS[cls]


def decoder(tp: Any) -> Decoder:
    """A function that turns JSON into ``tp``, checked all the way down, else Mismatch.

    Built once a type: each field's decoder is found when the type is first met."""
    if tp not in _DECODERS:
        _DECODERS[tp] = _build_decoder(tp)
    return _DECODERS[tp]


def _build_decoder(tp: Any) -> Decoder:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return _union_decoder(args)
    if origin in _SEQUENCES and (origin is not tuple or args[1:] == (Ellipsis,)):
        return _sequence_decoder(decoder(args[0]), _SEQUENCES[origin])
    if origin in (dict, collections.abc.Mapping) and args[0] in (int, str):
        return _mapping_decoder(args[0], decoder(args[1]))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_decoder(tp)
    if tp is datetime:
        return _time_decoder
    if tp is Path:
        return _path_decoder
    if tp in (str, bool, int, float, type(None)):
        return _plain_decoder(tp)
    if tp is object:
        # Declared as any value (a saved report read back as it was written):
        # what json.loads gives is already nothing but data.
        return _as_it_is
    raise TypeError(f"no JSON form for {tp!r}")


def _as_it_is(value: Any) -> Any:
    return value


# What a JSON list becomes for each sequence type a field or parameter declares.
_SEQUENCES: dict[Any, type[Any]] = {
    tuple: tuple,
    list: list,
    set: set,
    frozenset: frozenset,
    collections.abc.Iterable: list,
    collections.abc.Sequence: list,
}


def _union_decoder(args: tuple[Any, ...]) -> Decoder:
    optional = type(None) in args
    choices = [decoder(arg) for arg in args if arg is not type(None)]

    def decode(value: Any) -> Any:
        if value is None and optional:
            return None
        first: Mismatch | None = None
        for choice in choices:
            try:
                return choice(value)
            except Mismatch as exc:
                first = first or exc
        raise first or Mismatch("is null")

    return decode


def _sequence_decoder(item: Decoder, kind: type[Any]) -> Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise Mismatch("is not a list")
        items = []
        for index, element in enumerate(value):
            try:
                items.append(item(element))
            except Mismatch as exc:
                raise exc.at(f"[{index}]") from exc
        return items if kind is list else kind(items)

    return decode


def _mapping_decoder(key_type: type[Any], item: Decoder) -> Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise Mismatch("is not an object")
        decoded = {}
        for key, element in value.items():
            if key_type is int and not (key.isascii() and key.lstrip("-").isdigit()):
                raise Mismatch(f"has the key {key[:40]!r}, not a number")
            try:
                decoded[key_type(key)] = item(element)
            except Mismatch as exc:
                raise exc.at(f"[{key}]") from exc
        return decoded

    return decode


def _dataclass_decoder(cls: type[Any]) -> Decoder:
    fields = {name: decoder(tp) for name, tp in field_types(cls).items()}

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise Mismatch("is not an object")
        unknown = value.keys() - fields.keys()
        if unknown:
            raise Mismatch(f"has unknown fields {sorted(unknown)[:5]}")
        known = {}
        for name, element in value.items():
            try:
                known[name] = fields[name](element)
            except Mismatch as exc:
                raise exc.at(f".{name}") from exc
        try:
            return cls(**known)
        except (TypeError, ValueError):  # a field without a default is missing
            raise Mismatch(f"lacks fields of {cls.__name__}") from None

    return decode


def _enum_decoder(cls: type[enum.Enum]) -> Decoder:
    def decode(value: Any) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise Mismatch(f"is not a {cls.__name__}") from None

    return decode


def _time_decoder(value: Any) -> datetime:
    if type(value) is str:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    raise Mismatch("is not a time")


def _path_decoder(value: Any) -> Path:
    if type(value) is str and value and "\0" not in value:
        return Path(value)
    raise Mismatch("is not a path")


def _plain_decoder(tp: type[Any]) -> Decoder:
    def decode(value: Any) -> Any:
        # Exact types: True is an int to Python, never to a message.
        if type(value) is tp:
            return value
        if tp is float and type(value) is int:
            return float(value)
        raise Mismatch(f"is not {'null' if tp is type(None) else tp.__name__}")

    return decode
