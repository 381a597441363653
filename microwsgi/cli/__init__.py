"""The `microwsgi` command line: ``microwsgi run | routes APP``, also ``python -m microwsgi``.

- ``commands.py``: the arguments, the commands, and one line on stderr for each failure;
- ``loading.py``: an app reference (``module:attr`` or ``path/to/app.py[:attr]``) imported.

Serving and reloading are the engine's (``microwsgi/server/``).
"""

# The console script's entry point (``microwsgi = "microwsgi.cli:main"`` in pyproject.toml).
from .commands import main as main

__all__: list[str] = []  # the command is the interface
