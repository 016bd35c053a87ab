"""A worker's install: switchboard.worker imports and works with only the base dependencies
(grpcio, protobuf, httpx), and the `switchboard` command says in one line what is missing."""

from __future__ import annotations

import subprocess
import sys

from switchboard.cli import SERVER_PACKAGES

# The `server` extra, made unimportable as on a worker's machine (and the generator of `dev`).
BLOCKER = (
    "import importlib.abc, sys\n"
    f"BLOCKED = {sorted(SERVER_PACKAGES | {'grpc_tools'})!r}\n"
    "class NoServer(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoServer())\n"
    "for name in BLOCKED:\n"
    "    sys.modules.pop(name, None)\n"
)


def run(script: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + script], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_the_worker_library_imports_and_works_without_the_servers_dependencies(tmp_path):
    result = run(
        "import asyncio, json\n"
        "import switchboard.worker as w\n"
        "from switchboard.runs.v1 import run_service_pb2 as runs_pb\n"
        "async def main():\n"
        "    async with await w.WorkerTools.open('127.0.0.1:1', 'token', 'http://127.0.0.1:1') as tools:\n"
        "        run = runs_pb.Run(id='r', organization_id='o', agent_id='a', attempt=3, payload_json=json.dumps({'x': 1}))\n"
        "        ctx = tools.context_for(run)\n"
        "        assert (ctx.attempt, ctx.payload, ctx._stream(None)) == (3, {'x': 1}, 'agents/a')\n"
        "        assert str(ctx.http.base_url) == 'http://127.0.0.1:1/v1/proxy/'\n"
        "asyncio.run(main())\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED or m.startswith(('switchboard.services', 'switchboard.shared')))\n"
        "assert not loaded, loaded\n"
        "print('worked')\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "worked"


def test_the_command_without_the_server_says_what_to_install_in_one_line(tmp_path):
    result = run("from switchboard.cli import main\nsys.exit(main(['up']))\n", tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "pip install 'switchboard[server]'" in result.stderr, result.stderr
    assert result.stdout == ""
