"""Memos: what the protocol and the WSGI bridge work out once for inputs that come back.

A keep-alive client sends the same request line and the same field lines request after request
(Host, User-Agent, Accept...), and applications answer with the same few response fields: the
results of checking and splitting them are kept in plain dicts (read with ``get``, at C speed;
a dict subclass would double the cost of each lookup), so that the next time costs one lookup.
This module owns only the policy, `remember`: a memo is bounded, and emptied when it is full,
so that what it holds follows the traffic and no client can grow it. What is remembered, and
the rules that produce it, stay with their owners (``head.py``, ``connection.py``,
``wsgi.py``); a memo only ever holds what those rules would compute again.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, limit: int) -> V:
    """Keep `value` for `key` in `memo`, emptying it first if it holds `limit` entries; the
    value, for the caller to use."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
