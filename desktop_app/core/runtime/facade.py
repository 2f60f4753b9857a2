"""One request for every way in: a call of a public method of the Ferry facade.

The window (over its engine's pipe, :mod:`desktop_app.core.runtime.host`) and other
`ferry` commands (over the local endpoint, :mod:`desktop_app.core.runtime.control`)
ask a running Ferry for the same thing: a :class:`FacadeCall` naming one of
:data:`FACADE_METHODS` with its arguments, answered with the method's own
typed result or a :class:`~desktop_app.core.model.errors.FerryError`. A new command
costs one facade method, a line here, and the view or command that calls it.

Promises: only a name in the allow-list is ever looked up, never a name
starting with ``_`` and never an attribute that is not a method; anything
else is refused with a :class:`FacadeRefused` saying what is offered.
Each method runs on a :class:`Lane`: a person's quick actions (Cancel,
Pause, Retry) never wait behind a check or a repair.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop_app.core.model.errors import FerryError


class Lane(enum.Enum):
    """Where a call waits its turn in a process that runs calls for a window."""

    ACTION = "action"  # a person's quick actions and journal reads: never queued behind work
    LOOKUP = "lookup"  # short questions to the server or the catalog
    QUEUE = "queue"  # adding files (a folder of thousands): never behind a check
    WORK = "work"  # what may take minutes: checks, repairs, waiting for transfers


# The allow-list: the facade methods a window or another command may call.
FACADE_METHODS: dict[str, Lane] = {
    "cancel": Lane.ACTION,
    "pause": Lane.ACTION,
    "unpause": Lane.ACTION,
    "retry": Lane.ACTION,
    # A person's answer to a conflict: a HEAD or two (the next free name, the object seen).
    "resolve": Lane.LOOKUP,
    "cancel_check": Lane.ACTION,
    "clear_finished": Lane.ACTION,
    "attempts": Lane.ACTION,
    "transfers": Lane.ACTION,
    "files": Lane.LOOKUP,
    "head": Lane.LOOKUP,
    "server_software": Lane.LOOKUP,
    "outbox_backlog": Lane.LOOKUP,
    "last_report": Lane.LOOKUP,  # the saved report, read when the window starts
    # A catalog write and one DELETE: never behind a check, never holding up a Cancel.
    "delete": Lane.LOOKUP,
    "queue": Lane.QUEUE,
    "wait": Lane.WORK,
    "resume": Lane.WORK,
    "run_check": Lane.WORK,
    "repair": Lane.WORK,
    "export_report": Lane.WORK,
    "set_watched_folders": Lane.WORK,
}


class FacadeRefused(FerryError):
    """A call of something that is not one of the facade's offered methods."""


@dataclass(frozen=True)
class FacadeCall:
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, method: Callable[..., object], /, *args: Any, **kwargs: Any) -> FacadeCall:
        """The call of ``Ferry.method`` (the function itself, so a rename is caught)."""
        return cls(method.__name__, args, kwargs)

    @property
    def lane(self) -> Lane:
        return FACADE_METHODS.get(self.method, Lane.ACTION)


def facade_method(facade: type[Any], name: str) -> Callable[..., Any]:
    """The facade's function called ``name``, or :class:`FacadeRefused`."""
    found = inspect.getattr_static(facade, name, None) if _offered(name) else None
    if not inspect.isfunction(found):
        offered = ", ".join(sorted(FACADE_METHODS))
        raise FacadeRefused(
            f"A running Ferry was asked for {name[:60]!r}, which is not one of the things it "
            f"does for the window or another ferry command ({offered}). Nothing was carried "
            "out. If this command and the running Ferry are different releases, stop the "
            "running Ferry and start it again.",
            title="Not a Ferry request",
        )
    return found


def _offered(name: str) -> bool:
    return name in FACADE_METHODS and not name.startswith("_")


def invoke(facade: object, call: FacadeCall) -> object:
    """Carry a call out on a facade object: its method's result, or its error."""
    function = facade_method(type(facade), call.method)
    try:
        inspect.signature(function).bind(facade, *call.args, **call.kwargs)
    except TypeError as exc:
        raise FacadeRefused(
            f"Ferry.{call.method} was called with arguments it does not take ({exc}); "
            "nothing was carried out.",
            title="Not a Ferry request",
        ) from exc
    return function(facade, *call.args, **call.kwargs)
