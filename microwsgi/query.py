"""`request['query']`: the query string as a dict of first values, with every value on request.

PyMicroHTTP documents the query as a plain dict (`request['query'].get('n', 3)`), so `QueryDict`
is one: a key maps to its first value, and `getlist(key)` returns all of them for repeated
keys (``?tag=a&tag=b``). It is built on every request that reads the query, which is why it is
a dict subclass filled in one pass rather than a werkzeug `MultiDict` (several times the cost
for the one- or two-pair queries most requests carry).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

__all__ = ["QueryDict"]


class QueryDict(dict[str, str]):
    """First value per key; `getlist` for all values of a repeated key."""

    # PERF: no __init__, so building one stays a C call; repeated keys are rare, so their
    # lists live in an attribute created by the first repeat only.
    __slots__ = ("_repeats",)
    _repeats: dict[str, list[str]]

    def add(self, key: str, value: str) -> None:
        """Record one more ``key=value`` pair, keeping the first value as the dict value."""
        if key not in self:
            self[key] = value
            return
        repeats: dict[str, list[str]] | None = getattr(self, "_repeats", None)
        if repeats is None:
            repeats = {}
            self._repeats = repeats
        if key in repeats:
            repeats[key].append(value)
        else:
            repeats[key] = [self[key], value]

    def getlist(self, key: str) -> list[str]:
        """Every value given for `key`, in order (``[]`` when absent)."""
        repeated = getattr(self, "_repeats", {}).get(key)
        if repeated is not None:
            return list(repeated)
        return [self[key]] if key in self else []

    def __repr__(self) -> str:
        pairs = [(key, value) for key in self for value in self.getlist(key)]
        return f"QueryDict({pairs!r})"


def parse_query(raw: str) -> QueryDict:
    """Parse a WSGI QUERY_STRING (latin-1 str per PEP 3333) into a `QueryDict`.

    Values are percent-decoded as UTF-8, ``+`` is a space, blank values are kept; undecodable
    bytes become U+FFFD rather than failing the request.
    """
    query = QueryDict()
    if not raw:
        return query
    if "%" in raw or "+" in raw or not raw.isascii():
        if not raw.isascii():
            raw = raw.encode("latin-1").decode("utf-8", "replace")
        for key, value in parse_qsl(raw, keep_blank_values=True, errors="replace"):
            query.add(key, value)
        return query
    # PERF: nothing to decode, so splitting is all parse_qsl would do, minus its overhead
    # (about half the cost for the one- or two-pair queries most requests carry).
    for pair in raw.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            if key in query:
                query.add(key, value)
            else:
                query[key] = value
    return query
