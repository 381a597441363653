"""The quick start: `python examples/hello.py`, then `curl http://localhost:8080/hello/world`.

Also served by gunicorn as is: `gunicorn --chdir examples hello:server`, and the container
image's default app, whose HEALTHCHECK asks `/healthz`.
"""

import os

from microwsgi import Server, abort

server = Server()
server.health()  # GET /healthz: {"status": "ok", "checks": {}} for load balancers and containers


@server.register("GET /hello")
def hello(request):
    return {"message": "Hello, World!"}


@server.register("GET /hello/:name")
def hello_name(request):
    name = request["params"]["name"]
    n = request["query"].get("n", "1")
    if not n.isdigit() or not 1 <= int(n) <= 100:
        abort(400, "n must be a whole number from 1 to 100")
    return {"message": " ".join([f"Hello, {name}!"] * int(n))}


if __name__ == "__main__":
    server.start_server(
        host=os.environ.get("HOST", "localhost"),
        port=int(os.environ.get("PORT", "8080")),
        listen_msg=True,
    )
