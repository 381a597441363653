"""Section 4: runs the development-server benchmark, ``benchmarks/bench_devserver.py``.

Its contract is ``main(argv) -> dict`` accepting ``--duration SECONDS``. When it is missing,
or only prints its dict as JSON, this hook copes and says so in the results rather than
failing the whole run.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from typing import Any


def run_devserver(duration: int) -> dict[str, Any]:
    """Call ``benchmarks.bench_devserver.main(['--duration', N])``; return its dict."""
    try:
        module = importlib.import_module("benchmarks.bench_devserver")
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks.bench_devserver":
            raise
        return {"unavailable": "benchmarks/bench_devserver.py does not exist yet"}
    main = getattr(module, "main", None)
    if main is None:
        return {"unavailable": "benchmarks/bench_devserver.py has no main(argv)"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = main(["--duration", str(duration)])
    output = printed.getvalue()
    sys.stderr.write(output)
    if isinstance(result, dict):
        return {"result": result}
    # The contract allows printing the dict instead: take the last JSON object printed.
    for line in reversed(output.strip().splitlines()):
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                return {"result": parsed}
    with contextlib.suppress(ValueError):
        parsed = json.loads(output)
        if isinstance(parsed, dict):
            return {"result": parsed}
    return {"unavailable": f"bench_devserver.main returned {type(result).__name__}, no dict"}
