"""The names of the HTTP headers and gRPC metadata keys Switchboard's own processes exchange, and
the shape of a request id: each defined once, here, because a sender and a receiver that spell a
name differently fail silently (the header is simply not there)."""

from __future__ import annotations

import re

# gRPC metadata from internal callers.
ACTING_USER_HEADER = "x-switchboard-user-id"
# The edge sends the internal token here beside a worker's own token, so that the secret proxy
# can trust what the edge says about the worker's request (the client address).
EDGE_TOKEN_HEADER = "x-switchboard-edge-token"

# HTTP, from a worker to the edge's proxy route: its worker token (never forwarded upstream).
WORKER_TOKEN_HEADER = "x-switchboard-token"
# The secret proxy's acceptance of a Forward request (initial metadata), with the most body it takes.
BODY_LIMIT_METADATA = "x-switchboard-body-limit"
# The interactions service's acceptance of a Subscribe call (initial metadata); a refusal comes
# as a status instead.
SUBSCRIBED_HEADER = "x-switchboard-subscribed"

# A request id, in and out, over HTTP at the edge and as gRPC metadata between services. One
# given by the caller is kept when it has this shape (safe to log and to echo), else one is minted.
REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}\Z")
