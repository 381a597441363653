"""Routing: from a route spec to the resource that serves a path, and back to a URL.

- ``spec.py``: the ``VERB /path`` grammar, checked at registration;
- ``converters.py``: parameter types (``:id<int>``), built-in and the application's;
- ``router.py``: the router, mapping a request path to a resource and its parameters;
- ``table.py``: the routes a server records (resources by pattern, names, unapplied decorators);
- ``groups.py``: the registration API `Server` and `Group` share, and groups;
- ``urls.py``: route names and URL building (``url_for``);
- ``listing.py``: the route table described for people and tools (``microwsgi routes``).

What runs for a matched route (middleware chains) is ``chains.py``'s business; the request
and the answer are ``request.py``'s and ``response.py``'s.
"""

__all__: list[str] = []
