"""What operators watch: the health endpoint (``health.py``) and request metrics (``metrics.py``).

`Server.health()` and `Server.metrics()` (``app.py``) register these as the framework's own
routes, marked internal so that API documents leave them out. Nothing is imported here:
``metrics.py`` pulls in prometheus_client (the ``metrics`` extra) only when it is used.
"""

__all__: list[str] = []
