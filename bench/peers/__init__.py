"""Peer PostgreSQL job queues that Switchboard's run lifecycle is benchmarked against.

Each module exposes the same three names:

* ``NAME``: the library and its installed version, e.g. ``"pgqueuer 1.6.0"``.
* ``async prepare(dsn, jobs)``: install the library's schema in the (fresh, empty) database
  ``dsn`` and enqueue ``jobs`` jobs of one task with a small JSON payload, in bulk. Not timed.
* ``async drain(dsn, workers, jobs)``: run ``workers`` concurrent consumers until all ``jobs``
  jobs are done; return the elapsed wall time in seconds. Leaves no task or connection open.

The libraries are optional (the ``bench`` extra); importing a peer module without its library
raises ImportError.
"""

PEERS = ("pgqueuer_jobs", "procrastinate_jobs")
