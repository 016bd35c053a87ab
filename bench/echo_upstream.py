"""A minimal provider stand-in for the proxy benchmark, in its own process (so that it does not
share the client's core): a raw ASGI app on uvicorn that answers every request with a small JSON
body, as an LLM API's cheap endpoints do.

    python -m bench.echo_upstream --port 9000
"""

from __future__ import annotations

import argparse

import uvicorn

BODY = b'{"object": "list", "data": [{"id": "model-1"}, {"id": "model-2"}]}'


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off")
