"""Code that every Switchboard service shares: configuration, logging, database, gRPC plumbing.

Nothing in here knows about a domain; services import from here, never from each other.
"""

import os as _os

# gRPC's fork support installs pthread_atfork handlers; a process that forks while gRPC threads
# run (subprocesses started by `up`, pg_ctl run as another user) can crash in the child before it
# execs. Switchboard never forks to keep using gRPC in a child, so the support is turned off
# before grpc is first imported anywhere in the process.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
