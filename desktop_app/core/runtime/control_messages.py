"""The messages of Ferry's local endpoint: versioned JSON, decoded by the facade's types.

A message is a JSON document with a version ``v`` (:data:`PROTOCOL_VERSION`);
a request names a method of the Ferry facade and its arguments, a reply
carries the method's result (:class:`ControlReturned`) or a failure in words
(:class:`ControlFailed`). Promises: a call's arguments are decoded by the
types its facade method declares and its result by the type the method
returns, field by field through one small codec (dataclasses, enums, times,
paths, sequences, mappings of plain values; anything else is refused), so
nothing is unpickled; an unknown version or a garbled message is a
:class:`ControlChannelError` saying what to do, never a traceback.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from desktop_app.core.model.errors import ControlChannelError
from desktop_app.core.model.typed_json import Mismatch, decoder, to_json
from desktop_app.core.runtime.facade import FacadeCall, facade_method

PROTOCOL_VERSION = 2  # 2: one generic call of a facade method (#37)
# A request is a command line's worth of paths (argv itself is at most a few
# MiB); a reply lists every transfer a request touched with its attempts
# (about 1 KiB each), so a folder of 100,000 files still fits.
MAX_REQUEST = 16 * 1024 * 1024
MAX_REPLY = 256 * 1024 * 1024


# -- replies: running Ferry -> command -----------------------------------------------


@dataclass(frozen=True)
class ControlReturned:
    """A call's result as JSON; :meth:`RunningFerry.call` decodes it by the method's type."""

    value: Any


@dataclass(frozen=True)
class ControlFailed:
    title: str
    message: str


ControlReply = ControlReturned | ControlFailed


# -- the format: versioned JSON, decoded into the dataclasses field by field --------


def encode_request(profile: str | None, call: FacadeCall) -> bytes:
    document = {"v": PROTOCOL_VERSION, "profile": profile, "call": call.method}
    return _dump({**document, "args": to_json(call.args), "kwargs": to_json(call.kwargs)})


def decode_request(payload: bytes, facade: type[Any]) -> tuple[str | None, FacadeCall]:
    """The profile and call in a message, each argument decoded by the type the facade
    method declares; :class:`ControlChannelError` or :class:`FacadeRefused` if it is none."""
    document = _load(payload, "request")
    method = document.get("call")
    if type(method) is not str:
        raise _garbled("request", "no method named")
    function = facade_method(facade, method)
    try:
        profile: str | None = decoder(str | None)(document.get("profile"))
        args, kwargs = _decode_arguments(function, document.get("args"), document.get("kwargs"))
    except Mismatch as exc:
        raise _garbled("request", f"{method}{exc.where} {exc.problem}") from exc
    return profile, FacadeCall(method, args, kwargs)


def _decode_arguments(
    function: Callable[..., Any], args: Any, kwargs: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if type(args) is not list or type(kwargs) is not dict:
        raise Mismatch("has no argument list")
    hints = _hints(function)
    parameters = list(inspect.signature(function).parameters.values())[1:]  # self
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    if len(args) > len(positional):
        raise Mismatch(f"takes {len(positional)} positional argument(s), not {len(args)}")
    decoded = []
    for parameter, value in zip(positional, args, strict=False):
        decoded.append(_argument(hints, parameter.name, value))
    by_name = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    named = {}
    for name, value in kwargs.items():
        if name not in by_name:
            raise Mismatch(f"takes no argument {name[:40]!r}")
        named[name] = _argument(hints, name, value)
    return tuple(decoded), named


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _argument(hints: dict[str, Any], name: str, value: Any) -> Any:
    try:
        return decoder(hints[name])(value)
    except Mismatch as exc:
        raise exc.at(f"({name})") from exc
    except TypeError:  # a parameter with no JSON form: not for other commands
        raise Mismatch("cannot be asked for over the local endpoint") from None


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    if function not in _HINTS:
        _HINTS[function] = typing.get_type_hints(function)
    return _HINTS[function]


_HINTS: dict[Callable[..., Any], dict[str, Any]] = {}


def encode_reply(reply: ControlReply) -> bytes:
    if isinstance(reply, ControlFailed):
        body = {"failed": {"title": reply.title, "message": reply.message}}
    else:
        body = {"result": to_json(reply.value)}
    return _dump({"v": PROTOCOL_VERSION, **body})


def decode_reply(payload: bytes) -> ControlReply:
    """The reply in a message (a result still as JSON); :class:`ControlChannelError` if none."""
    document = _load(payload, "answer")
    if "result" in document:
        return ControlReturned(document["result"])
    try:
        failed: ControlFailed = decoder(ControlFailed)(document.get("failed"))
    except Mismatch as exc:
        raise _garbled("answer", f"failed{exc.where} {exc.problem}") from exc
    return failed


def decode_result(function: Callable[..., Any], value: Any) -> Any:
    """A returned value as the type ``function`` declares it returns."""
    try:
        return decoder(_hints(function)["return"])(value)
    except Mismatch as exc:
        raise _garbled("answer", f"{function.__name__}{exc.where} {exc.problem}") from exc


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=False).encode(
        "utf-8",
        "surrogateescape",  # a path may hold bytes that are not UTF-8
    )


def _load(payload: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(payload.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise _garbled(what, "not a JSON document") from exc
    if not isinstance(document, dict):
        raise _garbled(what, "not a JSON object")
    if document.get("v") != PROTOCOL_VERSION:
        raise ControlChannelError(
            f"The running Ferry speaks version {document.get('v')!r} of the local protocol, "
            f"this command version {PROTOCOL_VERSION}: one of them is another Ferry release. "
            "Stop the running Ferry (close the window or end `ferry watch`) and start it again.",
            title="Another Ferry version is running",
        )
    return document


def _garbled(what: str, detail: str) -> ControlChannelError:
    outcome = (
        "nothing was carried out. Run the command again"
        if what == "request"
        else "the running Ferry may have carried the request out (`ferry status` shows)"
    )
    return ControlChannelError(
        f"The {what} on Ferry's local endpoint could not be read ({detail}); {outcome}. "
        "If this repeats, stop the running Ferry and start it again.",
        title=f"Unreadable {what}",
    )
