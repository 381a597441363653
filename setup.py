"""The optional compiled build; the project's metadata is all in pyproject.toml.

``MICROWSGI_MYPYC=1 pip install .`` compiles, with mypyc and from the same typed source, the
modules every request runs through: the HTTP/1.1 protocol (``microwsgi/server/protocol/``) and
the WSGI bridge (``wsgi.py``, ``exchange.py``, ``answers.py``). Without the variable this file
adds nothing and the package is pure Python. docs/performance.md has the figures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

COMPILED = [
    *sorted(str(path) for path in Path("microwsgi/server/protocol").glob("*.py")),
    "microwsgi/server/wsgi.py",
    "microwsgi/server/exchange.py",
    "microwsgi/server/answers.py",
]
# The commands that build code. pip first runs this file to learn the metadata and what the
# build needs (_build/backend.py adds mypy), before mypy is there: nothing to compile then.
BUILDING = {"bdist_wheel", "editable_wheel", "build_ext"}

if os.environ.get("MICROWSGI_MYPYC") == "1" and BUILDING & set(sys.argv):
    from mypyc.build import mypycify

    # The modules compiled are checked as strictly as ever (pyproject.toml's mypy settings);
    # the rest of the package is only read for its types, and the optional extras it imports
    # (Jinja2, prometheus_client...) need not be in the build environment.
    options = ["--follow-imports=silent", "--ignore-missing-imports"]
    setup(ext_modules=mypycify([*options, *COMPILED], group_name="microwsgi"))
else:
    setup()
