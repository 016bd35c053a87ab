"""Code that every Switchboard service shares: configuration, logging, database, gRPC plumbing.

Nothing in here knows about a domain; services import from here, never from each other.
"""
