"""One HTTP client per upstream.

Connections go to the address that passed the private-address check (the URL's host is replaced
by it), so a shared pool would key them by IP alone: two upstreams behind one address (a CDN) would
then share a TLS connection whose certificate was checked for the other name. A client per upstream
keeps every connection to the upstream it was opened and verified for.
"""

from __future__ import annotations

import asyncio

import httpx


class UpstreamClients:
    def __init__(self, *, connect_timeout: float, read_timeout: float):
        # Bounded waits; no redirects (a redirect goes back to the worker, whose next request is
        # checked again); no proxy from the environment.
        self._timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        self._clients: dict[str, httpx.AsyncClient] = {}

    def for_upstream(self, name: str) -> httpx.AsyncClient:
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
                follow_redirects=False,
                trust_env=False,
            )
        return client

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        self._clients.clear()
