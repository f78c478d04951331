"""Reading raw setting values as every check does: a value of the wrong type is a finding, never
a crash of ``manage.py check``."""

from __future__ import annotations

from typing import Any


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def dotted_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else repr(obj)
