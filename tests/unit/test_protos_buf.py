"""The contracts pass `buf lint` and `buf breaking` (rules in buf.yaml).

`buf breaking` compares the protos of the working tree with a baseline commit of this checkout:

- where the current branch left main (``git merge-base HEAD main``), when the protos changed since
  (committed on the branch or not): every change the branch brings is checked at once;
- otherwise (on main itself, as in CI on a fresh clone, or on a branch that leaves the protos
  alone) the first parent of the last commit on the first-parent line that changed protos/: main's
  last change to the contracts, a merge as a whole, is checked again.

Without the history (a shallow clone) it compares against the committed image of the contracts,
tests/unit/buf-baseline.binpb, and the current protos must also stay compatible with that image. buf itself is installed into
.venv/bin by ./scripts/test (scripts/buf.py); without it these tests fail, they do not skip. The
installer's refusals (a tarball that is not the pinned one, a registry out of reach) are tested
last, against a registry on loopback.
"""

from __future__ import annotations

import http.server
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOS = "protos"
BUF = REPO_ROOT / ".venv" / "bin" / "buf"  # where scripts/buf.py puts it
# The contracts as built at a landed commit (`buf build -o tests/unit/buf-baseline.binpb`): the
# baseline where the history is not there (a shallow clone). An older image is still a valid
# baseline (it checks less recent history); rebuild it when the contracts change.
BASELINE_IMAGE = REPO_ROOT / "tests" / "unit" / "buf-baseline.binpb"


def buf(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run the buf that ./scripts/test installs; fail the test (never skip) when it is missing."""
    if not BUF.is_file():
        pytest.fail(f"buf is not installed at {BUF}: run ./scripts/test (or python scripts/buf.py)")
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def git(*args: str) -> str:
    """The output of a git command in this checkout; RuntimeError with git's message on failure."""
    done = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def main_ref() -> str:
    """The local main branch, else the remote's; HEAD when neither exists (a detached checkout)."""
    for ref in ("refs/heads/main", "refs/remotes/origin/main"):
        try:
            git("rev-parse", "--verify", "--quiet", ref)
            return ref
        except RuntimeError:
            continue
    return "HEAD"


def protos_changed_since(commit: str) -> bool:
    """Whether the work tree's protos/ differ from ``commit``'s (uncommitted and new files too)."""
    diff = subprocess.run(
        ["git", "diff", "--quiet", commit, "--", PROTOS], cwd=REPO_ROOT, timeout=60, check=False
    )
    untracked = git("ls-files", "--others", "--exclude-standard", "--", PROTOS)
    return diff.returncode != 0 or bool(untracked)


def baseline_commit() -> tuple[str, str]:
    """The commit whose protos the working tree must stay compatible with, and why that one."""
    try:
        git("rev-parse", "--git-dir")
    except (RuntimeError, OSError):
        return "", "not a git checkout: the committed image of the contracts (tests/unit/buf-baseline.binpb)"
    fork = git("merge-base", "HEAD", main_ref())
    if protos_changed_since(fork):
        on_main = fork == git("rev-parse", "HEAD")
        return fork, "HEAD; protos/ changed in the work tree" if on_main else "where HEAD left main"
    last = git("log", "--first-parent", "-1", "--format=%H", "--", PROTOS)
    try:
        return git("rev-parse", "--verify", "--quiet", f"{last}^1"), f"before {last[:12]}"
    except RuntimeError:
        if git("rev-parse", "--is-shallow-repository") == "true":
            return "", "a shallow clone: the committed image of the contracts (tests/unit/buf-baseline.binpb)"
        pytest.fail(f"{last[:12]} created protos/ and has no parent: nothing to compare against")


def extract_protos(commit: str, into: Path) -> Path:
    """protos/ as of ``commit``, written under ``into`` (git archive: no checkout, no network)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, PROTOS],
        cwd=REPO_ROOT, capture_output=True, timeout=60, check=True,
    ).stdout
    # Our own history, but extract with the "data" filter where this Python has it (3.11.4+).
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, **safe)
    return into / PROTOS


def test_protos_pass_buf_lint():
    done = buf("lint")
    assert done.returncode == 0, f"buf lint:\n{done.stdout}{done.stderr}"


def test_protos_have_no_breaking_change_against_the_baseline(tmp_path):
    commit, why = baseline_commit()
    against = extract_protos(commit, tmp_path) if commit else BASELINE_IMAGE
    done = buf("breaking", "--against", str(against))
    assert done.returncode == 0, (
        f"buf breaking against {commit[:12]} ({why}):\n{done.stdout}{done.stderr}"
    )


# The rules themselves, on a small fixed module (so that they are shown to work whatever the real
# protos say): buf.yaml is the repository's own.
DEMO = Path("switchboard/demo/v1")
THING = """syntax = "proto3";

package switchboard.demo.v1;

// A thing.
message Thing {
  // Its id.
  string id = 1;
  // Its colour.
  Colour colour = 2;
}

// A colour.
enum Colour {
  // Not set.
  COLOUR_UNSPECIFIED = 0;
  // Red.
  COLOUR_RED = 1;
}
"""
SERVICE = """syntax = "proto3";

package switchboard.demo.v1;

import "switchboard/demo/v1/thing.proto";

// DemoService serves things.
service DemoService {
  // Returns a thing.
  rpc GetThing(GetThingRequest) returns (GetThingResponse);
}

// Request of DemoService.GetThing.
message GetThingRequest {
  // The thing's id.
  string id = 1;
}

// Response of DemoService.GetThing.
message GetThingResponse {
  // The thing.
  Thing thing = 1;
}
"""


def module(root: Path, thing: str = THING, service: str = SERVICE) -> Path:
    """A workspace at ``root`` (the repository's buf.yaml) with the demo module in its protos/."""
    (root / PROTOS / DEMO).mkdir(parents=True)
    shutil.copy(REPO_ROOT / "buf.yaml", root / "buf.yaml")
    (root / PROTOS / DEMO / "thing.proto").write_text(thing)
    (root / PROTOS / DEMO / "demo_service.proto").write_text(service)
    return root


def breaking(tmp_path: Path, **after: str) -> subprocess.CompletedProcess[str]:
    """`buf breaking` of the demo module changed as ``after`` says, against the demo as it is."""
    before = module(tmp_path / "before")
    changed = module(tmp_path / "after", **after)
    return buf("breaking", "--against", str(before / PROTOS), cwd=changed)


def test_the_demo_module_passes_lint_and_breaking(tmp_path):
    done = buf("lint", cwd=module(tmp_path / "lint"))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"
    done = breaking(tmp_path)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"


def test_buf_lint_refuses_an_enum_without_its_unspecified_zero_value(tmp_path):
    thing = THING.replace("COLOUR_UNSPECIFIED = 0", "COLOUR_NONE = 0")
    done = buf("lint", cwd=module(tmp_path, thing=thing))
    assert done.returncode != 0
    assert 'zero value name "COLOUR_NONE" should be suffixed with "_UNSPECIFIED"' in done.stdout


def test_buf_lint_refuses_an_undocumented_field(tmp_path):
    done = buf("lint", cwd=module(tmp_path, thing=THING.replace("  // Its id.\n", "")))
    assert done.returncode != 0
    assert 'Field "id" should have a non-empty comment for documentation' in done.stdout


def test_buf_breaking_refuses_a_deleted_field(tmp_path):
    done = breaking(tmp_path, thing=THING.replace("  // Its colour.\n  Colour colour = 2;\n", ""))
    assert done.returncode != 0
    assert 'field "2" with name "colour" on message "Thing" was deleted' in done.stdout


def test_buf_breaking_refuses_a_message_moved_to_another_file(tmp_path):
    # The wire does not change, but generated code imports Thing from thing_pb2: the FILE category.
    message = THING[THING.index("// A thing.") : THING.index("// A colour.")]
    service = SERVICE + "\n" + message
    done = breaking(tmp_path, thing=THING.replace(message, ""), service=service)
    assert done.returncode != 0
    assert 'Previously present message "Thing" was deleted from file' in done.stdout


def test_buf_breaking_accepts_an_added_field_and_rpc(tmp_path):
    field = "  Colour colour = 2;\n"
    thing = THING.replace(field, field + "  // Its name.\n  string name = 3;\n")
    rpc = "  rpc GetThing(GetThingRequest) returns (GetThingResponse);\n"
    new_rpc = "  // Pings.\n  rpc PingThings(PingThingsRequest) returns (PingThingsResponse);\n"
    service = SERVICE.replace(rpc, rpc + new_rpc) + (
        "\n// Request of DemoService.PingThings.\nmessage PingThingsRequest {}\n"
        "\n// Response of DemoService.PingThings.\nmessage PingThingsResponse {}\n"
    )
    assert thing != THING and service != SERVICE
    done = buf("lint", cwd=module(tmp_path / "lint", thing=thing, service=service))
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"
    done = breaking(tmp_path, thing=thing, service=service)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"


# The installer (scripts/buf.py), run as ./scripts/test runs it, against a registry on loopback.
INSTALLER = REPO_ROOT / "scripts" / "buf.py"
_spec = importlib.util.spec_from_file_location("buf_installer", INSTALLER)
assert _spec is not None and _spec.loader is not None
_installer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_installer)
PINNED: str = _installer.VERSION


def install_buf(dest: Path, registry: str) -> subprocess.CompletedProcess[str]:
    """scripts/buf.py installing into ``dest`` from ``registry`` (no proxy: it is on loopback)."""
    env = {**os.environ, "npm_config_registry": registry, "no_proxy": "*", "NO_PROXY": "*"}
    return subprocess.run(
        [sys.executable, str(INSTALLER), str(dest)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def npm_tarball(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of ``files`` (name → content), as npm packs a package."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


@pytest.fixture
def registry_serving() -> Iterator[tuple[str, list[str]]]:
    """A registry on loopback that answers every GET with a buf package that is not the pinned one
    (its bin/buf would even claim the pinned version); yields its URL and the paths asked for."""
    body = npm_tarball({"package/bin/buf": f"#!/bin/sh\necho {PINNED}\n".encode()})
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_installer_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path, registry_serving):
    url, asked = registry_serving
    done = install_buf(tmp_path, url)
    assert done.returncode == 2
    assert len(asked) == 1 and asked[0].startswith("/@bufbuild/buf-") and asked[0].endswith(".tgz")
    assert done.stderr.startswith("scripts/buf.py: buf tarball digest mismatch: expected ")
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert not (tmp_path / "buf").exists() and list(tmp_path.iterdir()) == []


def test_the_installer_says_in_one_line_that_the_registry_is_out_of_reach(tmp_path):
    with socket.socket() as bound:  # bound, never listening: connections to it are refused
        bound.bind(("127.0.0.1", 0))
        registry = f"http://127.0.0.1:{bound.getsockname()[1]}"
        done = install_buf(tmp_path, registry)
    assert done.returncode == 2
    expected = f"scripts/buf.py: could not download buf {PINNED} from {registry}/@bufbuild/buf-"
    assert done.stderr.startswith(expected), done.stderr
    assert "Connection refused" in done.stderr and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_protos_have_no_breaking_change_against_the_committed_image():
    done = buf("breaking", "--against", str(BASELINE_IMAGE))
    assert done.returncode == 0, f"buf breaking against {BASELINE_IMAGE.name}:\n{done.stdout}{done.stderr}"
