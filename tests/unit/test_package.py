"""The installed package names only itself, and a running service needs no code generator."""

from __future__ import annotations

import subprocess
import sys

GENERIC_NAMES = ["services", "shared", "migrations"]


def test_the_install_puts_no_generic_top_level_package_on_the_path(tmp_path):
    # From an empty folder (not the checkout), only what the install put on sys.path is importable.
    for name in GENERIC_NAMES:
        result = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, f"import {name} worked"
    found = subprocess.run(
        [sys.executable, "-c", "import switchboard.services, switchboard.shared, switchboard.migrations"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert found.returncode == 0, found.stderr


def test_serving_works_without_the_code_generator(tmp_path):
    # grpcio-tools is the `dev` extra: with it made unimportable, every service and the CLI still load
    # (grpcio itself probes for grpc_tools at import and carries on without it).
    script = (
        "import importlib.abc, sys\n"
        "class NoGenerator(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'grpc_tools':\n"
        "            raise ImportError('grpc_tools is not installed')\n"
        "sys.meta_path.insert(0, NoGenerator())\n"
        "import switchboard.cli, switchboard.serve\n"
        "for name in ('identity', 'interactions', 'runs', 'secretproxy', 'edge'):\n"
        "    __import__(f'switchboard.services.{name}.app')\n"
        "print('loaded')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded"
