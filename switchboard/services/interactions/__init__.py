"""The interactions service: chat connections, pending questions claimed exactly once, event streams."""
