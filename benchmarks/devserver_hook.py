"""Section 4: runs the development-server benchmark, ``benchmarks/bench_devserver.py``.

`bench_devserver.main(argv)` prints its results as JSON and returns them as a dict; the
suite wants only the dict (the printout goes to stderr, with the suite's progress).
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

from benchmarks import bench_devserver


def run_devserver(duration: int) -> dict[str, Any]:
    """``bench_devserver.main(['--duration', N])``, as ``{"result": ...}`` for the report."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = bench_devserver.main(["--duration", str(duration)])
    sys.stderr.write(printed.getvalue())
    return {"result": result}
