"""Reading JSON someone else wrote (a preview, a declared object): every value checked where it is read. A value of
the wrong shape raises WrongShape naming where and what is wrong, never the value itself (the message ends up in a
pull request comment); only a number, which cannot carry markup, is shown."""

from __future__ import annotations

from typing import Any


class WrongShape(ValueError):
    """Valid JSON, but not of the shape the reader expects; the message names where and what is wrong."""


def what(value: object) -> str:
    """The JSON type of `value` in words ("a list", "null" ...)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "null"


def optional_object(value: object, where: str) -> dict[str, Any]:
    """An optional object: null or absent is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WrongShape(f"{where} is {what(value)}, not an object")
    return value


def optional_objects(value: object, where: str) -> list[dict[str, Any]]:
    """An optional list of objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise WrongShape(f"{where} is {what(value)}, not a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):  # null too: Pulumi writes no holes in a list
            raise WrongShape(f"{where}[{index}] is {what(item)}, not an object")
    return value


def optional_string(value: object, where: str, *, required: bool = False) -> str:
    """A string; absent is "" unless `required`."""
    if value is None and required:
        raise WrongShape(f"{where} is missing")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WrongShape(f"{where} is {what(value)}, not a string")
    return value


def route_weight(value: object, where: str) -> int:
    """A route weight: a whole number from 0 to 100 (JSON may write it as 10.0); absent is 0, as Istio reads it."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongShape(f"{where} is {what(value)}, not a whole number from 0 to 100")
    if 0 <= value <= 100 and float(value).is_integer():
        return int(value)
    shown = repr(value) if -1e6 < value < 1e6 else "a number out of range"  # a number is safe to show; a short one
    raise WrongShape(f"{where} is {shown}, not a whole number from 0 to 100")
