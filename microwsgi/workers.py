"""``gunicorn -k microwsgi.workers.Worker``: the documented name of microwsgi's worker class.

The class itself, and everything about it, is ``microwsgi/gunicorn/``.
"""

from .gunicorn import Worker

__all__ = ["Worker"]
