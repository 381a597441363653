"""The parser against gunicorn's, the strictest of the usual peers, over the whole corpus.

Every raw request of tests/server/corpus/*.json is fed, whole, to gunicorn's own request parser
(gunicorn is in the test extra) and to ours. Whatever gunicorn refuses, we refuse too; where
both accept an origin-form request, both see the same path and query. We refuse more than
gunicorn in places (a missing Host on HTTP/1.1, bare LF endings, oversized chunk sizes...):
that direction is not checked here but in the corpus itself.
"""

from __future__ import annotations

from typing import Any

import pytest
import tools
from test_protocol import CASES, replay

from microwsgi.server.protocol import Limits

tools.require_extra("gunicorn.http.parser")
from gunicorn.config import Config  # noqa: E402 - after require_extra
from gunicorn.http.errors import NoMoreData  # noqa: E402 - after require_extra
from gunicorn.http.parser import RequestParser  # noqa: E402 - after require_extra


def gunicorn_reads(raw: bytes) -> tuple[list[tuple[str, str]], Exception | None]:
    """The (path, query) of each request gunicorn's parser reads from `raw`, and its refusal."""
    parser = RequestParser(Config(), iter([raw]), ("127.0.0.1", 5000))
    seen: list[tuple[str, str]] = []
    try:
        for request in parser:
            request.body.read()
            seen.append((request.path, request.query))
            if request.should_close():
                break
    except NoMoreData:
        pass  # the stream ended mid-request: gunicorn waits, we answer 400 at EOF
    except Exception as exc:  # every gunicorn ParseException: a refusal with a status
        return seen, exc
    return seen, None


@pytest.mark.parametrize("case", CASES)
def test_what_gunicorn_refuses_we_refuse_and_what_both_read_is_the_same(
    case: dict[str, Any],
) -> None:
    raw = "".join(case["raw"]).encode("latin-1")
    ours = replay([raw], case.get("eof", False), Limits(**case.get("limits", {})))
    refused = any(isinstance(event, dict) and "error" in event for event in ours)
    theirs, refusal = gunicorn_reads(raw)
    if refusal is not None:
        assert refused, f"gunicorn refuses ({refusal!r}) what we accept: {ours}"
    heads = [event["request"] for event in ours if isinstance(event, dict) and "request" in event]
    for head, (their_path, their_query) in zip(heads, theirs, strict=False):
        if head["target"].startswith("/"):  # other forms: gunicorn keeps Host, we use the URI
            assert (head["path"], head["query"]) == (their_path, their_query)
