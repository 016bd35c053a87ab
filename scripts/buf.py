#!/usr/bin/env python3
"""Install buf (the protobuf linter and breaking-change checker) into ``.venv/bin`` once.

buf is a single Go binary; the npm registry publishes it as ``@bufbuild/buf``, whose platform
packages (``@bufbuild/buf-linux-x64``, …) carry ``bin/buf``. We fetch that tarball with the
standard library so that the test command needs neither node nor npm, check it against a pinned
SHA-512 (the registry's ``integrity`` for that version: a mirror or a proxy cannot swap the
binary), and extract ``bin/buf`` alone. A present binary of the pinned version is left alone, so
only the first run downloads (about 33 MB).

Usage: ``python scripts/buf.py [DEST_DIR]`` (default ``.venv/bin``); prints the binary's path.
Exits 2 with one line on stderr when buf cannot be installed. ``npm_config_registry`` (npm's own
variable) points it at a mirror; the pinned digest still decides what is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "1.75.0"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
# (sys.platform, machine) → (npm package, its `dist.integrity` for VERSION). To upgrade buf, take
# the new values from https://registry.npmjs.org/@bufbuild/buf-<platform>/<version>.
PACKAGES: dict[tuple[str, str], tuple[str, str]] = {
    ("linux", "x86_64"): (
        "buf-linux-x64",
        "sha512-YGGJAx0lpMCE7aMWjNOJcfoEaG/e+iYHnTC4SZ0P5eS4IffMryA9Z4/bb1m1wNXAEJ8ATFMEZOAk/5x9VE47ig==",
    ),
    ("linux", "arm64"): (
        "buf-linux-aarch64",
        "sha512-eX+XyokzJDqsNIFo8b1O3DBvbnksOozPJX4QVsNn61JqSUtWspyTNeYqwg8lRDancML+bDqZEDFPABjAsVCQGQ==",
    ),
    ("darwin", "x86_64"): (
        "buf-darwin-x64",
        "sha512-U2W+MRE9jJ7Am7x02ZWt87U5lfPrjKMdB1aZDslsuyOHo+fEUvZolupmhoW30v6syNAWBOfkoi0k5TLc2FNGqQ==",
    ),
    ("darwin", "arm64"): (
        "buf-darwin-arm64",
        "sha512-QiQYSmtVUcKy9DK/d+zJ3+D4iUQmmiDQ3i8/yBr8cf7Nr28lqKMAIKznJE/uGRsjr90fHaUQO+Xsedec0ArN5g==",
    ),
}
# platform.machine() names a machine several ways (Linux says aarch64, macOS arm64, Windows AMD64).
MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}
DOWNLOAD_TIMEOUT_SECONDS = 120
REPO_ROOT = Path(__file__).resolve().parent.parent


class InstallError(Exception):
    """buf could not be installed; the message is the one line shown to the user."""


def package_for(system: str = sys.platform, machine: str = platform.machine()) -> tuple[str, str]:
    """The npm package and pinned integrity for this platform; InstallError when there is none."""
    machine = MACHINE_ALIASES.get(machine.lower(), machine.lower())
    try:
        return PACKAGES[(system, machine)]
    except KeyError:
        raise InstallError(
            f"no pinned buf {VERSION} build for {system}/{machine}: install buf yourself "
            f"(https://buf.build/docs/installation) and put it at .venv/bin/buf"
        ) from None


def installed_version(binary: Path) -> str | None:
    """The version a present buf binary reports, or None when it is missing or does not run."""
    if not binary.is_file():
        return None
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def verify(data: bytes, integrity: str) -> None:
    """Raise InstallError unless ``data`` has the SHA-512 that npm's ``integrity`` string names."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise InstallError(f"unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise InstallError(f"buf tarball digest mismatch: expected {expected}, got {actual}")


def extract_buf(tarball: bytes) -> bytes:
    """The bytes of ``package/bin/buf`` in an npm tarball (nothing else is extracted)."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        try:
            member = archive.getmember("package/bin/buf")
        except KeyError:
            raise InstallError("the buf tarball has no package/bin/buf") from None
        handle = archive.extractfile(member)
        if handle is None:
            raise InstallError("package/bin/buf in the buf tarball is not a file")
        return handle.read()


def download(url: str) -> bytes:
    """GET ``url`` (honours HTTPS_PROXY); InstallError naming the URL and the reason on failure."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InstallError(
            f"could not download buf {VERSION} from {url} ({reason}); the tests need it: check the "
            f"network or put a buf {VERSION} binary at .venv/bin/buf"
        ) from None


def registry() -> str:
    """The npm registry to fetch from: ``npm_config_registry`` when set, else npmjs.org."""
    return (os.environ.get("npm_config_registry") or DEFAULT_REGISTRY).rstrip("/")


def install(dest_dir: Path) -> Path:
    """Make ``dest_dir/buf`` the pinned buf; download only when it is missing or another version."""
    binary = dest_dir / "buf"
    if installed_version(binary) == VERSION:
        return binary
    name, integrity = package_for()
    url = f"{registry()}/@bufbuild/{name}/-/{name}-{VERSION}.tgz"
    tarball = download(url)
    verify(tarball, integrity)
    content = extract_buf(tarball)
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a run interrupted half-way leaves no truncated buf that
    # the next run would take for installed (it would fail --version and be fetched again anyway).
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".buf-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    found = installed_version(binary)
    if found != VERSION:
        raise InstallError(f"the downloaded buf does not run here (it reports {found!r})")
    return binary


def main(argv: list[str]) -> int:
    dest_dir = Path(argv[1]) if len(argv) > 1 else REPO_ROOT / ".venv" / "bin"
    try:
        print(install(dest_dir))
    except InstallError as exc:
        print(f"scripts/buf.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
