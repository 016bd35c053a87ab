"""Nchan, the nginx pub/sub module (C, in-memory history), from Debian's ``nginx`` and
``libnginx-mod-nchan``: installed with apt-get when missing (services kept from starting), run as
one nginx with one worker on loopback. ``POST /pub/{channel}`` publishes, ``GET /sub/{channel}``
is an EventSource subscription."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
PACKAGES = ["nginx", "libnginx-mod-nchan"]

CONFIG = """
load_module {module};
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location ~ ^/pub/(\\w+)$ {{ nchan_publisher; nchan_channel_id $1; nchan_message_buffer_length 1000; }}
    location ~ ^/sub/(\\w+)$ {{ nchan_subscriber eventsource; nchan_channel_id $1; }}
  }}
}}
"""


def ensure_installed() -> str | None:
    """None when nginx with Nchan is there (installing it if it can); else why it is not."""
    if shutil.which("nginx") and MODULE.exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Nchan not installed and apt-get not usable here (needs root on Debian)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    # Keep the package from starting its own nginx on port 80 (policy-rc.d says: start nothing).
    policy = Path("/usr/sbin/policy-rc.d")
    added = not policy.exists()
    try:
        if added:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode:
                return f"apt-get failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    finally:
        if added:
            policy.unlink(missing_ok=True)
    return None if shutil.which("nginx") and MODULE.exists() else "Nchan's module is missing after installing"


class Nchan:
    """One nginx with Nchan on ``port`` until ``stop``."""

    def __init__(self, port: int):
        self.port = port
        self._dir = Path(tempfile.mkdtemp(prefix="bench-nchan-"))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        config = self._dir / "nginx.conf"
        config.write_text(CONFIG.format(module=MODULE, dir=self._dir, port=self.port))
        self.process = await asyncio.create_subprocess_exec(
            shutil.which("nginx") or "nginx", "-c", str(config), "-p", str(self._dir), "-e", str(self._dir / "error.log"),
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
