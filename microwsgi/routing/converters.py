"""Parameter types: what a ``:name<type>`` segment must look like, and its value both ways.

A `Converter` is a regex the whole percent-decoded segment must match and a conversion each
way (segment text to the value handlers see, value back to text for URL building). The
built-in types are ``int``, ``float`` and ``uuid``; an application adds its own with
``server.converter(...)``. Which segments are typed is the grammar's business (``spec.py``);
trying the types in order is the router's.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__: list[str] = []


@dataclass(eq=False)
class Converter:
    """A parameter type: the regex a whole segment must match, and conversions both ways.

    `to_python` turns the matched (percent-decoded) segment into the parameter's value; a
    `ValueError` from it means the segment does not match, like a failed regex. `to_url` turns
    a value back into segment text for URL building.
    """

    name: str
    pattern: str
    to_python: Callable[[str], Any] = str
    to_url: Callable[[Any], str] = str
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        label = f"converter {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"{label}: the name must be a Python identifier, like 'slug'")
        if not isinstance(self.pattern, str):
            raise ValueError(f"{label}: pattern must be a regex string, got {self.pattern!r}")
        try:
            self.regex = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(
                f"{label}: pattern {self.pattern!r} is not a valid regex: {exc}"
            ) from None
        for role, function in (("to_python", self.to_python), ("to_url", self.to_url)):
            if not callable(function):
                raise ValueError(f"{label}: {role} {function!r} is not callable")

    def convert(self, segment: str) -> Any:
        """The segment's value, or `NO_MATCH` when the segment is not of this type."""
        if self.regex.fullmatch(segment) is None:
            return NO_MATCH
        try:
            return self.to_python(segment)
        except ValueError:
            return NO_MATCH


NO_MATCH: Any = object()


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # '1e999' is a float literal, but not a usable number
        raise ValueError(text)
    return value


_HEX = "[0-9a-fA-F]"
BUILTIN_CONVERTERS: Mapping[str, Converter] = {
    converter.name: converter
    for converter in (
        Converter("int", "-?[0-9]+", int),
        Converter("float", r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", _finite_float),
        Converter(
            "uuid", f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}", uuid.UUID
        ),
    )
}
