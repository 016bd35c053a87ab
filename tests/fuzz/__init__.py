"""The fuzz suite: every RPC of every service and every route of the edge, with generated and
known-hostile inputs, against the whole platform served in this process.

- ``test_rpcs.py``: requests built from the proto descriptors (strategies.py, sent as wire bytes by
  wire.py so that invalid UTF-8 can be sent at all), as the operator, as a worker of organisation A
  and as A's owner; plus a fixed corpus (corpus.py) of each field set to each known-hostile value.
- ``test_edge_routes.py``: bodies and headers for the Slack and Telegram webhooks, the SSE streams,
  the proxy, health, metrics and unknown routes; plus a fixed corpus of requests that broke them.
- Every case asserts no INTERNAL, UNKNOWN or DATA_LOSS (HTTP 500, or a 502 the edge made up) and
  that no row of organisation B changed (tenancy.py).

Budget and knobs are in budget.py: ``SWITCHBOARD_FUZZ_EXAMPLES=<n>`` for a larger, randomly seeded
run, ``SWITCHBOARD_FUZZ_SEED=<n>`` to replay one, ``SWITCHBOARD_FUZZ_SHRINK=0`` to survey without
shrinking, ``SWITCHBOARD_FUZZ_FINDINGS=<file>`` to record every failing call.
"""
