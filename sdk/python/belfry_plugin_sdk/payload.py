"""Typed access to an event payload (JSON text) whose errors name the field.

A notifier answers the contract's ``invalid-payload`` with the message of a
:class:`PayloadError`, so an operator reads which field was wrong::

    p = parse_payload(payload)
    email = field(p, "customer.email", str)           # PayloadError "customer.email: is missing"
    phone = field(p, "customer.phone", str, optional=True)
"""

from __future__ import annotations

import json
from typing import Any, Optional, Type, TypeVar, overload

T = TypeVar("T")

_MISSING = object()


class PayloadError(ValueError):
    """A payload that lacks what the plugin needs; ``field`` is the dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def parse_payload(text: str) -> dict:
    """The payload as a dict; anything but a JSON object is a PayloadError naming ``payload``."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise PayloadError("payload", f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise PayloadError("payload", f"expected a JSON object, got {_kind(value)}")
    return value


_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "a boolean",
          list: "an array", dict: "an object"}


@overload
def field(obj: Any, path: str, kind: Type[T], *, optional: bool = False, prefix: str = "") -> T: ...
@overload
def field(obj: Any, path: str, kind: None = None, *, optional: bool = False, prefix: str = "") -> Any: ...


def field(obj, path, kind=None, *, optional=False, prefix=""):
    """The value at ``path`` (dots between keys; numbers index arrays: ``customers.0.email``).

    ``kind`` is ``str``, ``int``, ``float``, ``bool``, ``list`` or ``dict`` (``float`` accepts
    whole numbers too; ``bool`` is never taken for a number). Missing or null raises a
    PayloadError unless ``optional``, then it is ``None``. ``prefix`` names where ``obj`` sits.
    """
    full = f"{prefix}.{path}" if prefix else path
    v: Any = obj
    for key in path.split("."):
        if isinstance(v, dict):
            v = v.get(key, _MISSING)
        elif isinstance(v, list) and key.isdigit() and int(key) < len(v):
            v = v[int(key)]
        else:
            v = _MISSING
        if v is _MISSING:
            break
    if v is _MISSING or v is None:
        if optional:
            return None
        raise PayloadError(full, "is missing")
    if kind is not None:
        ok = isinstance(v, kind) and not (kind in (int, float) and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise PayloadError(full, f"expected {_NAMES.get(kind, kind.__name__)}, got {_kind(v)}")
        if kind is str and not v.strip() and not optional:
            raise PayloadError(full, "is empty")
    return v


def optional_field(obj: Any, path: str, kind: Optional[type] = None, *, prefix: str = "") -> Any:
    """``field(..., optional=True)``."""
    return field(obj, path, kind, optional=True, prefix=prefix)
