"""microwsgi's gunicorn worker class: gunicorn's processes, microwsgi's HTTP engine in each.

- ``worker.py``: `Worker`, the class gunicorn loads (``-k microwsgi.gunicorn.Worker``, or the
  documented alias ``-k microwsgi.workers.Worker``): settings, hooks, the worker's life;
- ``adapter.py``: a request as gunicorn's own workers present it (proxy rules, the views the
  pre/post_request hooks and the access log read);
- ``shares.py``: `Shares`, the table in shared memory in which the workers of one master
  compare their loads, so that a burst of connections is spread across them.

Importing this package imports gunicorn and the engine; ``import microwsgi`` never does.
"""

try:
    import gunicorn  # noqa: F401
except ImportError as exc:  # the one place a missing gunicorn is explained
    raise ImportError(
        "microwsgi's gunicorn worker needs gunicorn: pip install 'microwsgi[gunicorn]'"
    ) from exc

from .worker import Worker

__all__ = ["Worker"]
