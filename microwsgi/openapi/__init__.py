"""Declared input and output types, and the OpenAPI document built from the routes.

- ``declared.py``: what a route declares (``body=``, ``query=``, ``returns=``, ``status=``),
  checked at registration;
- ``validation.py``: the declared types applied to each request and answer (pydantic v2, the
  ``validation`` extra);
- ``document.py``: the OpenAPI 3.1 document (`Server.openapi`);
- ``docs.py``: the interactive documentation page and its assets (`Server.api_docs`).

Nothing here is loaded by a route that declares nothing. Registration is ``routing/``'s, serving
``app.py``'s and ``chains.py``'s (which put a route's checks innermost, just before its handler).
"""

__all__: list[str] = []
