"""Generate the Python code (messages, typed ``.pyi`` stubs, gRPC stubs) from ``protos/``.

The output is checked in, so that internal callers import typed stubs without a build step;
``tests/unit/test_codegen.py`` regenerates into a temporary folder and fails when the tree is stale.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every ``.proto`` under ``proto_root``, sorted so that generation is deterministic."""
    return sorted(proto_root.rglob("*.proto"))


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) over every proto and write the modules under ``out_dir``.

    Returns the generated files, relative to ``out_dir``. Raises RuntimeError when protoc fails.
    """
    try:
        from grpc_tools import protoc  # dev-time dependency, imported only when generating
    except ImportError as exc:
        raise RuntimeError("switchboard codegen needs grpcio-tools: pip install -e '.[dev]'") from exc

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    files = proto_files(proto_root)
    if not files:
        raise RuntimeError(f"no .proto files under {proto_root}")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(f.relative_to(proto_root)) for f in files),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see its message above")
    generated = sorted(
        p.relative_to(out_dir) for p in out_dir.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)
    )
    for path in generated:
        _ensure_packages(out_dir, path.parent)
    return generated


def generated_files(root: Path = REPO_ROOT) -> list[Path]:
    """The generated modules currently in the tree, relative to ``root``."""
    package = root / "switchboard"
    return sorted(
        p.relative_to(root) for p in package.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)
    )


def _ensure_packages(out_dir: Path, package: Path) -> None:
    # protoc writes modules but no __init__.py; make every folder on the way an importable package.
    current = out_dir
    for part in package.parts:
        current = current / part
        init = current / "__init__.py"
        if not init.exists():
            init.write_text("")


def main() -> int:
    """Regenerate in place (``switchboard codegen``) and list what was written."""
    try:
        written = generate(REPO_ROOT)
    except RuntimeError as exc:
        print(f"switchboard codegen: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
